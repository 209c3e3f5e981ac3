#!/usr/bin/env bash
# The WebDAV door beside `rclone serve webdav` (Debian's rclone) and dufs
# (`cargo install dufs`), on one machine over loopback, in the same run,
# rounds alternating between the servers:
#  1. PROPFIND Depth 1 of a folder of FILES files (curl; the answer of each
#     is checked to list them all first): median time of each, and ferry's
#     over the faster peer's (target: at most 0.5);
#  2. a PUT of SIZE MiB (curl -T) and a GET of it back (curl), median time
#     of each; ferry's PUT over its own tus upload of the same file (the
#     web door's other upload: a POST, then one PATCH; target at most 1.1),
#     and ferry's WebDAV GET (with Windows' `Translate: f`) over its plain
#     GET (target at most 1.1).
# Every server writes into a folder of its own; uploads are compared with
# the source before timing.
# Usage: bench/webdav.sh [ROUNDS] [SIZE_MIB] [FILES]   (defaults 5, 1024, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}
size_mib=${2:-1024}
files=${3:-10000}
need=()
command -v rclone >/dev/null || need+=(rclone)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null
fi
dufs=$(command -v dufs || echo "$HOME/.cargo/bin/dufs")
if [ ! -x "$dufs" ]; then
  echo "installing dufs (cargo install dufs --locked)" >&2
  cargo install dufs --locked -q
fi
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/big.bin"
for who in ferry rclone dufs; do
  mkdir -p "$work/$who/many"
  python3 - "$work/$who/many" "$files" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(top, f"file-{i:05d}.txt"), "w") as f:
        f.write("x" * (i % 500))
PY
done
fp=$(port); rp=$(port); dp=$(port)
"$ferry" serve "$work/ferry" --listen 127.0.0.1:$fp --allow-all --no-discovery \
  --state-dir "$work/state" >/dev/null 2>"$work/ferry.log" &
rclone serve webdav "$work/rclone" --addr 127.0.0.1:$rp --config /dev/null >/dev/null 2>"$work/rclone.log" &
"$dufs" "$work/dufs" -A -b 127.0.0.1 -p $dp >/dev/null 2>"$work/dufs.log" &
declare -A url=([ferry]="http://127.0.0.1:$fp" [rclone]="http://127.0.0.1:$rp" [dufs]="http://127.0.0.1:$dp")
for who in ferry rclone dufs; do
  for _ in $(seq 50); do curl -s -o /dev/null "${url[$who]}/" && break; sleep 0.1; done
done

propfind() { curl -s -X PROPFIND -H 'Depth: 1' "$1/many/" "${@:2}"; }
for who in ferry rclone dufs; do
  n=$(propfind "${url[$who]}" | grep -oi '<[a-z]*:response>' | wc -l)
  if [ "$n" -ne $((files + 1)) ]; then
    echo "$who's PROPFIND listed $n responses, not $((files + 1))" >&2; exit 1
  fi
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
spread() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.3f-%.3f", lo, hi}'; }

declare -A pf put get
for r in $(seq "$rounds"); do
  for who in ferry rclone dufs; do
    pf[$who]+="$(propfind "${url[$who]}" -o /dev/null -w '%{time_total}') "
  done
done
# ferry's own web door, for the same file: a tus upload and a plain GET.
tus_put() {
  local loc
  loc=$(curl -s -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' \
    -H "Upload-Length: $((size_mib * 1024 * 1024))" \
    -H "Upload-Metadata: filename $(printf tus.bin | base64)" "${url[ferry]}/.ferry/tus/" |
    awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  curl -s -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' -T "$work/big.bin" \
    -w '%{time_total}' "${url[ferry]}$loc"
}
# Each upload makes a new file, as the tus upload does (replacing a file
# adds the cost of freeing the old one's blocks), and starts with the
# disk's earlier writes flushed (not timed); ferry's tus upload takes its
# turn in the same rounds.
tus=""; plain=""; dav=""
for r in $(seq "$rounds"); do
  for who in ferry rclone dufs; do
    rm -f "$work/$who/up.bin"
    sync
    put[$who]+="$(curl -s -o /dev/null -T "$work/big.bin" -w '%{time_total}' "${url[$who]}/up.bin") "
    get[$who]+="$(curl -s -o /dev/null -w '%{time_total}' "${url[$who]}/up.bin") "
  done
  rm -f "$work/ferry/tus.bin"
  sync
  tus+="$(tus_put) "
  plain+="$(curl -s -o /dev/null -w '%{time_total}' "${url[ferry]}/up.bin") "
  dav+="$(curl -s -o /dev/null -H 'Translate: f' -w '%{time_total}' "${url[ferry]}/up.bin") "
done
for who in ferry rclone dufs; do
  cmp -s "$work/big.bin" "$work/$who/up.bin" || { echo "$who stored other bytes" >&2; exit 1; }
done
cmp -s "$work/big.bin" "$work/ferry/tus.bin" || { echo "tus stored other bytes" >&2; exit 1; }

m() { echo "$1" | tr ' ' '\n' | grep . | median; }
s() { echo "$1" | tr ' ' '\n' | grep . | spread; }
ratio() { echo "$1 / $2" | bc -l; }
echo "PROPFIND Depth 1 of $files files (median of $rounds, seconds, spread)"
for who in ferry rclone dufs; do printf '  %-7s %8.4f  (%s)\n' "$who" "$(m "${pf[$who]}")" "$(s "${pf[$who]}")"; done
best=$(printf '%s\n%s\n' "$(m "${pf[rclone]}")" "$(m "${pf[dufs]}")" | sort -g | head -1)
printf '  ferry / faster peer %5.2fx (target <= 0.5)\n' "$(ratio "$(m "${pf[ferry]}")" "$best")"
echo "PUT of ${size_mib} MiB with curl -T (median of $rounds, seconds, spread)"
for who in ferry rclone dufs; do printf '  %-7s %8.3f  (%s)\n' "$who" "$(m "${put[$who]}")" "$(s "${put[$who]}")"; done
printf '  ferry tus %6.3f  (%s)\n' "$(m "$tus")" "$(s "$tus")"
printf '  ferry WebDAV PUT / ferry tus %5.2fx (target <= 1.1)\n' "$(ratio "$(m "${put[ferry]}")" "$(m "$tus")")"
echo "GET of ${size_mib} MiB with curl (median of $rounds, seconds, spread)"
for who in ferry rclone dufs; do printf '  %-7s %8.3f  (%s)\n' "$who" "$(m "${get[$who]}")" "$(s "${get[$who]}")"; done
printf '  ferry plain %6.3f  WebDAV (Translate: f) %6.3f\n' "$(m "$plain")" "$(m "$dav")"
printf '  ferry WebDAV GET / ferry plain GET %5.2fx (target <= 1.1)\n' "$(ratio "$(m "$dav")" "$(m "$plain")")"
