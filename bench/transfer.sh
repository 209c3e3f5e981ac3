#!/usr/bin/env bash
# Side by side on one machine, over loopback: a 2 GiB file copied with cp,
# sent with `ferry put` and `ferry get` (SHA-256 verified end to end), and
# piped through ncat and socat (no verification). Prints each time and the
# ratios. Usage: bench/transfer.sh [SIZE_MIB]   (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
size_mib=${1:-2048}
for tool in ncat socat; do
  if ! command -v $tool >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ncat socat </dev/null
  fi
done
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/out"
echo "making a ${size_mib} MiB file of random bytes..."
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/src.bin"
cat "$work/src.bin" > /dev/null   # warm the page cache for everyone alike

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
best=()

# Each contender runs 3 times; the best time counts (the machine is shared).
run3() {
  local name=$1; shift
  local t best_t=""
  for _ in 1 2 3; do
    rm -f "$work/out/"* "$work/srv/up.bin"
    t=$("$@")
    if [ -z "$best_t" ] || [ "$(echo "$t < $best_t" | bc)" = 1 ]; then best_t=$t; fi
  done
  printf '%-12s %8.3f s\n' "$name" "$best_t"
  eval "t_$name=$best_t"
}

t_cp_run() { local a; a=$(now); cp "$work/src.bin" "$work/out/cp.bin"; elapsed "$a" "$(now)"; }

p=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$p --allow-all >/dev/null 2>&1 &
sleep 0.5
cp "$work/src.bin" "$work/srv/src.bin"
t_put_run() { local a; a=$(now); "$ferry" put "$work/src.bin" 127.0.0.1:$p:/up.bin >/dev/null; elapsed "$a" "$(now)"; }
t_get_run() { local a; a=$(now); "$ferry" get 127.0.0.1:$p:/src.bin "$work/out/get.bin" >/dev/null; elapsed "$a" "$(now)"; }

t_ncat_run() {
  local q a; q=$(port)
  ncat -l 127.0.0.1 $q > "$work/out/ncat.bin" & local l=$!
  sleep 0.3; a=$(now)
  ncat --send-only 127.0.0.1 $q < "$work/src.bin"
  wait $l; elapsed "$a" "$(now)"
}
t_socat_run() {
  local q a; q=$(port)
  socat -u TCP-LISTEN:$q,bind=127.0.0.1,reuseaddr "OPEN:$work/out/socat.bin,creat,trunc" & local l=$!
  sleep 0.3; a=$(now)
  socat -u "OPEN:$work/src.bin" TCP:127.0.0.1:$q
  wait $l; elapsed "$a" "$(now)"
}

echo "best of 3, ${size_mib} MiB over loopback:"
run3 cp t_cp_run
run3 ferry_put t_put_run
run3 ferry_get t_get_run
run3 ncat t_ncat_run
run3 socat t_socat_run
"$ferry" get --force 127.0.0.1:$p:/src.bin "$work/out/check.bin" >/dev/null
cmp "$work/src.bin" "$work/out/check.bin" && echo "ferry copy verified byte for byte"

ratio() { printf '%-28s %6.2fx\n' "$1" "$(echo "$2 / $3" | bc -l)"; }
echo "ratios (target: ferry within 1.2x of cp, faster than ncat):"
ratio "ferry get / cp" "$t_ferry_get" "$t_cp"
ratio "ferry put / cp" "$t_ferry_put" "$t_cp"
ratio "ferry get / ncat" "$t_ferry_get" "$t_ncat"
ratio "ferry put / ncat" "$t_ferry_put" "$t_ncat"
ratio "ferry get / socat" "$t_ferry_get" "$t_socat"
