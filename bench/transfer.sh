#!/usr/bin/env bash
# Side by side on one machine, over loopback: a 2 GiB file copied with cp,
# sent with `ferry put` and `ferry get` (verified end to end: BLAKE3, and
# once more with --sha256 for the digest every older client uses; get_new
# is a get of a file changed since the server last sent it, which the
# server hashes on the way; put_new is a put of a file changed since the
# client last hashed it, which the client hashes on the way, where put
# sends a file whose digest it remembers), and piped through ncat and
# socat (no verification). Rounds alternate the
# contenders' order; prints each round, then each contender's median and
# spread, and the ratios of medians: once for the command's own time, once
# until its bytes are on the disk (the command, then `sync`; ferry starts
# the disk writes as it receives, a plain cp leaves them all for later).
# Targets: ferry get and put each at most 1.2x cp's time, and below
# ncat's in every round. cp_b3 is cp made to do what ferry does besides
# copying, for an equal-work comparison on one machine: BLAKE3 of the
# source and of the copy (b3sum, as it runs by default), as `put` does
# (a `get` of a file whose digest the server remembers hashes only the
# copy).
# (a put of a file whose digest the client remembers hashes only the copy
# too; put_new hashes both).
# Usage: bench/transfer.sh [SIZE_MIB] [ROUNDS]   (defaults 2048 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
size_mib=${1:-2048}
rounds=${2:-5}
for tool in ncat socat bc b3sum; do
  if ! command -v $tool >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ncat socat bc b3sum </dev/null
  fi
done
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/out" "$work/state"
# The client's remembered digests (see README, "Transfers") live with the
# run, not in the user's cache.
export FERRY_DIGESTS="$work/digests"
echo "making a ${size_mib} MiB file of random bytes..."
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/src.bin"
cat "$work/src.bin" > /dev/null   # warm the page cache for everyone alike

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

p=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$p --allow-all --state-dir "$work/state" \
  --no-discovery >/dev/null 2>&1 &
sleep 0.5
cp "$work/src.bin" "$work/srv/src.bin"
# get_new and put_new touch their own copies: a touched src.bin would be
# a new version for the get and put that follow, hashed again.
cp "$work/src.bin" "$work/srv/src_new.bin"
cp "$work/src.bin" "$work/src_new.bin"

t_cp() { cp "$work/src.bin" "$work/out/cp.bin"; }
t_cp_b3() { cp "$work/src.bin" "$work/out/cp.bin" && b3sum "$work/src.bin" "$work/out/cp.bin" >/dev/null; }
t_put() { "$ferry" put --force "$work/src.bin" 127.0.0.1:$p:/up.bin >/dev/null; }
t_get() { "$ferry" get --force 127.0.0.1:$p:/src.bin "$work/out/get.bin" >/dev/null; }
# A file the server has not sent since it last changed: hashed as it goes.
t_get_new() {
  touch "$work/srv/src_new.bin"
  "$ferry" get --force 127.0.0.1:$p:/src_new.bin "$work/out/get.bin" >/dev/null
}
# A file the client has not hashed since it last changed: hashed as it goes.
t_put_new() {
  touch "$work/src_new.bin"
  "$ferry" put --force "$work/src_new.bin" 127.0.0.1:$p:/up.bin >/dev/null
}
t_put_sha256() { "$ferry" put --sha256 --force "$work/src.bin" 127.0.0.1:$p:/up.bin >/dev/null; }
t_get_sha256() { "$ferry" get --sha256 --force 127.0.0.1:$p:/src.bin "$work/out/get.bin" >/dev/null; }
t_ncat() {
  local q; q=$(port)
  ncat -l 127.0.0.1 $q > "$work/out/ncat.bin" & local l=$!
  sleep 0.3
  local a; a=$(now)
  ncat --send-only 127.0.0.1 $q < "$work/src.bin"
  wait $l
  echo "$a" > "$work/started"
}
t_socat() {
  local q; q=$(port)
  socat -u TCP-LISTEN:$q,bind=127.0.0.1,reuseaddr "OPEN:$work/out/socat.bin,creat,trunc" & local l=$!
  sleep 0.3
  local a; a=$(now)
  socat -u "OPEN:$work/src.bin" TCP:127.0.0.1:$q
  wait $l
  echo "$a" > "$work/started"
}

names=(cp put get get_new put_new put_sha256 get_sha256 ncat socat cp_b3)
echo "${size_mib} MiB over loopback, $rounds rounds, order alternating:"
# ferry picks CUBIC for a connection between two programs on one machine
# (see wire::stream::tune); ncat and socat get the system's default.
echo "system congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)"
for r in $(seq "$rounds"); do
  order=("${names[@]}")
  if [ $((r % 2)) = 0 ]; then order=($(printf '%s\n' "${names[@]}" | tac)); fi
  for n in "${order[@]}"; do
    rm -f "$work/out/"* "$work/started" "$work/srv/up.bin"
    # Every contender starts from a quiet disk: the last one's writeback
    # done, and a moment for the memory it freed to settle.
    sync
    # The sources read again: a machine short of memory (or one that
    # reclaims idle page cache on its own) may have dropped some of them
    # since the last contender, which would then read from the disk.
    cat "$work/src.bin" "$work/srv/src.bin" "$work/src_new.bin" "$work/srv/src_new.bin" > /dev/null
    sleep 1
    a=$(now)
    "t_$n"
    b=$(now)
    # Until the bytes are on the disk: what a later sync (or the next
    # writer) would otherwise wait for.
    sync
    c=$(now)
    # The pipes start timing once their listener is up.
    [ -f "$work/started" ] && a=$(cat "$work/started")
    t=$(elapsed "$a" "$b")
    d=$(elapsed "$a" "$c")
    printf 'round %d %-11s %7.3f s   on disk %7.3f s\n' "$r" "$n" "$t" "$d"
    echo "$n $t $d" >> "$work/times"
  done
done
"$ferry" get --force 127.0.0.1:$p:/src.bin "$work/out/check.bin" >/dev/null
cmp "$work/src.bin" "$work/out/check.bin" && echo "ferry copy verified byte for byte"
python3 - "$work/times" <<'PY'
import statistics, sys
t, d = {}, {}
for line in open(sys.argv[1]):
    n, v, w = line.split()
    t.setdefault(n, []).append(float(v))
    d.setdefault(n, []).append(float(w))
m = {n: statistics.median(v) for n, v in t.items()}
md = {n: statistics.median(v) for n, v in d.items()}
print("\nmedian and spread (done; and with its bytes on the disk, after sync):")
for n, v in t.items():
    print(f"  {n:11s} {m[n]:7.3f} s   ({min(v):.3f}-{max(v):.3f})"
          f"   on disk {md[n]:7.3f} s   ({min(d[n]):.3f}-{max(d[n]):.3f})")
print("ratios of medians (target: get and put at most 1.2x cp, below ncat):")
for a, b in [("get", "cp"), ("put", "cp"), ("get_new", "cp"), ("put_new", "cp"), ("get", "ncat"), ("put", "ncat"),
             ("get", "socat"), ("put", "socat"), ("get_sha256", "get"), ("put_sha256", "put"), ("get", "cp_b3"),
             ("put", "cp_b3"), ("put_new", "cp_b3")]:
    print(f"  {a + ' / ' + b:22s} {m[a] / m[b]:5.2f}x   on disk {md[a] / md[b]:5.2f}x")
rounds = len(t["ncat"])
for x in ("get", "put", "get_new", "put_new"):
    below = sum(1 for i in range(rounds) if t[x][i] < t["ncat"][i])
    print(f"  {x} below ncat in {below} of {rounds} rounds")
PY
