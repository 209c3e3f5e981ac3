#!/usr/bin/env bash
# Time until a page of a 10,000-entry folder has rendered in Chromium
# (its performance clock, from the navigation to a painted frame showing
# the first entry), ferry beside dufs and miniserve serving the same
# folder on one machine, in one run, rounds alternating.
# Target: ferry the fastest of the three.
# dufs and miniserve are installed with `cargo install` when missing.
# Usage: bench/page.sh [ROUNDS] [ENTRIES]   (defaults 5 and 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}
entries=${2:-10000}
for peer in dufs miniserve; do
  command -v "$peer" >/dev/null || cargo install --locked "$peer"
done
python3 -c "import selenium" 2>/dev/null || python3 -m pip install -q selenium
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/state"
python3 - "$work/srv" "$entries" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "f%05d.txt" % i), "w") as f:
        f.write("x" * (i % 5000))
PY
fp=$(port); dp=$(port); mp=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$fp --state-dir "$work/state" --no-discovery \
  >/dev/null 2>"$work/ferry.log" &
dufs "$work/srv" -b 127.0.0.1 -p "$dp" >/dev/null 2>&1 &
miniserve "$work/srv" -i 127.0.0.1 -p "$mp" >/dev/null 2>&1 &
for p in $fp $dp $mp; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done
echo "ferry $("$ferry" --version), $(dufs --version), $(miniserve --version); $entries entries, $rounds rounds"
python3 bench/page_render.py "$rounds" f00000.txt \
  ferry="http://127.0.0.1:$fp/" dufs="http://127.0.0.1:$dp/" miniserve="http://127.0.0.1:$mp/"
