#!/usr/bin/env bash
# Chat fan-out across nodes, side by side on one machine over loopback:
# 50 receivers and one sender through the plain-text door
# (bench/chat_fanout.py), on
#   one   - one ferry server on its own (history in SQLite: one machine's
#           default),
#   bus1  - one node of a cluster on nats-server -js (every line goes
#           through the JetStream stream and back), all receivers on it,
#   bus2  - two nodes of that cluster, the sender on A and the receivers
#           spread over A and B.
# Rounds alternate the three so that the machine's drift falls on all alike.
# Prints, for each, the median deliveries/s (burst of COUNT lines) and the
# median p50/p99 latency from send to the last receiver (paced: 500 lines,
# one every 2 ms, so that latency is the hub's and not a burst's queue),
# whether every receiver got every line in every run, the CPU time the
# servers used per 100,000 deliveries (ferry, plus nats-server for the
# cluster: on one machine the cluster's processes share its cores, so
# this is what a cluster would cost spread over machines), and the ratios
# bus2/one and bus2/bus1. Everything (nats-server, two or three ferry
# servers, 51 clients) shares the machine's cores.
# Targets: bus2 >= 0.5x one's deliveries/s, p99 under 50 ms, no line lost.
# Usage: [ROUNDS=5] bench/chat_cluster.sh [RECEIVERS] [COUNT]   (defaults 50 and 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
receivers=${1:-50}
count=${2:-2000}
rounds=${ROUNDS:-5}
if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server </dev/null
fi
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/js" "$work/s1" "$work/sa" "$work/sb"

np=$(port)
"$nats" -js -sd "$work/js" -a 127.0.0.1 -p "$np" >"$work/nats.log" 2>&1 &
npid=$!
sleep 0.5
opts=(--no-discovery --chat-rate 1000000 --chat-max-message 8192)
p1=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$p1 --state-dir "$work/s1" "${opts[@]}" >/dev/null 2>&1 &
pid1=$!
pa=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$pa --state-dir "$work/sa" "${opts[@]}" \
  --chat-bus "nats://127.0.0.1:$np" >/dev/null 2>&1 &
pida=$!
pb=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$pb --state-dir "$work/sb" "${opts[@]}" \
  --chat-bus "nats://127.0.0.1:$np" >/dev/null 2>&1 &
pidb=$!
sleep 2

# CPU time (ms) the processes given have used so far, together.
cpu_ms() {
  local hz t=0 p
  hz=$(getconf CLK_TCK)
  for p in "$@"; do t=$(awk -v hz="$hz" -v t="$t" '{print t + ($14 + $15) * 1000 / hz}' "/proc/$p/stat"); done
  echo "$t"
}

log="$work/runs.jsonl"
: >"$log"
run() { # name, then the fan-out script's arguments
  local name=$1; shift
  local out a b pids
  case $name in
    one-*) pids=("$pid1") ;;
    bus1-*) pids=("$pida" "$npid") ;;
    *) pids=("$pida" "$pidb" "$npid") ;;
  esac
  a=$(cpu_ms "${pids[@]}")
  out=$(python3 bench/chat_fanout.py "$@" --receivers "$receivers" --limit 30)
  b=$(cpu_ms "${pids[@]}")
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["name"]=sys.argv[2]; d["cpu_ms"]=float(sys.argv[3])-float(sys.argv[4]); print(json.dumps(d))' \
    "$out" "$name" "$b" "$a" >>"$log"
}
echo "chat fan-out across nodes: $receivers receivers, 1 sender ($rounds rounds, alternating)"
for _ in $(seq "$rounds"); do
  for mode in burst paced; do
    if [ $mode = burst ]; then extra=(--count "$count"); else extra=(--count 500 --interval 0.002); fi
    run "one-$mode" "$p1" "${extra[@]}"
    run "bus1-$mode" "$pa" "${extra[@]}"
    run "bus2-$mode" "$pa" --spread "$pb" "${extra[@]}"
  done
done
python3 - "$log" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def of(name):
    return [r for r in runs if r["name"] == name]
med = {}
for n in ("one", "bus1", "bus2"):
    burst, paced = of(n + "-burst"), of(n + "-paced")
    dps = [r["deliveries_per_s"] for r in burst]
    med[n] = statistics.median(dps)
    m = lambda rs, k: statistics.median([r[k] for r in rs if r[k] is not None] or [float("nan")])
    done = sum(r["complete"] for r in burst + paced)
    lost = max(r["receivers"] * r["count"] - r["delivered"] for r in burst + paced)
    cpu = statistics.median(r["cpu_ms"] * 1e5 / max(r["delivered"], 1) for r in burst)
    print(f"  {n:5s} median {med[n]:9.0f} deliveries/s (spread {min(dps):.0f}-{max(dps):.0f})  "
          f"burst p99 {m(burst, 'p99_ms'):7.2f} ms  paced p50 {m(paced, 'p50_ms'):6.2f} ms  "
          f"p99 {m(paced, 'p99_ms'):6.2f} ms  servers' CPU {cpu:5.1f} ms/100k deliveries  "
          f"complete {done}/{len(burst + paced)} (most lost in a run: {lost})")
print(f"  bus2/one  {med['bus2'] / med['one']:5.2f}x   bus2/bus1 {med['bus2'] / med['bus1']:5.2f}x (medians)")
print("  (targets: bus2/one >= 0.5, paced p99 < 50 ms, nothing lost)")
PY
