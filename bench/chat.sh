#!/usr/bin/env bash
# Chat fan-out, side by side on one machine over loopback: 50 receivers,
# one sender, 2000 lines sent one per write, through ferry's plain-text door
# and through `ncat --chat`, driven by the same script (bench/chat_fanout.py).
# Prints deliveries per second, latency from send to the last receiver
# (p50, p99), the CPU time the hub process used, and the ratio. Sent in a
# burst, a line's latency is mostly its place in the queue; a paced run
# (one line every 2 ms) shows the hub's own latency. The client
# script shares the machine's two cores with the hub, so deliveries per
# second are partly the client's limit; the hub's CPU time is the hub's
# own cost. Then again with 4 KiB lines and one receiver
# that never reads: ferry drops it and the others get everything; ncat's hub
# stalls once that receiver's socket buffers are full.
# ferry runs with --chat-rate raised out of the way: this measures fan-out,
# not the per-client rate limit (20 lines/s by default); and with
# --chat-max-message raised for the 4 KiB lines (2000 bytes by default).
# Usage: bench/chat.sh [RECEIVERS] [COUNT]   (defaults 50 and 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
receivers=${1:-50}
count=${2:-2000}
if ! command -v ncat >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ncat </dev/null
fi
cargo build --release -q
ferry=$PWD/target/release/ferry
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/state"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { python3 -c "import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print('nan' if v is None else v)" "$1" "$2"; }

# CPU time (ms) a process has used so far.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }

run() { # name port pid [--stall] [--pad N]
  local name=$1 p=$2 pid=$3; shift 3
  local best="" out dps a b cpu best_cpu=""
  for _ in 1 2 3; do
    a=$(cpu_ms "$pid")
    out=$(python3 bench/chat_fanout.py "$p" --receivers "$receivers" --count "$count" --limit 30 "$@")
    b=$(cpu_ms "$pid")
    cpu=$(echo "$b - $a" | bc)
    if [ -z "$best_cpu" ] || [ "$(echo "$cpu < $best_cpu" | bc)" = 1 ]; then best_cpu=$cpu; fi
    dps=$(field "$out" deliveries_per_s)
    if [ -z "$best" ] || [ "$dps" -gt "$(field "$best" deliveries_per_s)" ]; then best=$out; fi
  done
  printf '  %-8s %9s deliveries/s  p50 %7.2f ms  p99 %7.2f ms  hub CPU %5s ms  complete=%s (%s of %s)\n' \
    "$name" "$(field "$best" deliveries_per_s)" "$(field "$best" p50_ms)" "$(field "$best" p99_ms)" \
    "$best_cpu" "$(field "$best" complete)" "$(field "$best" delivered)" "$((receivers * count))"
  eval "dps_$name=$(field "$best" deliveries_per_s)"
}

fp=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$fp --state-dir "$work/state" \
  --no-discovery --chat-rate 1000000 --chat-max-message 8192 >/dev/null 2>&1 &
fpid=$!
np=$(port)
ncat -l --chat --max-conns 1000 127.0.0.1 $np >/dev/null 2>&1 &
npid=$!
sleep 1

echo "fan-out: $receivers receivers, 1 sender, $count lines (best of 3)"
run ferry $fp $fpid
run ncat $np $npid
printf '  %-8s %9.2fx (target >= 1)\n' "ferry/ncat" "$(echo "$dps_ferry / $dps_ncat" | bc -l)"

echo "latency, paced: 500 lines, one every 2 ms"
count=500
run ferry $fp $fpid --interval 0.002
run ncat $np $npid --interval 0.002

count=${2:-2000}
echo "the same with 4 KiB lines and one more receiver that never reads (30 s limit)"
run ferry $fp $fpid --stall --pad 4096
run ncat $np $npid --stall --pad 4096
