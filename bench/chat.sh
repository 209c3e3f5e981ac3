#!/usr/bin/env bash
# Chat fan-out, side by side on one machine over loopback: 50 receivers,
# one sender, 2000 lines sent one per write, through ferry's plain-text door
# and through `ncat --chat`, driven by the same script (bench/chat_fanout.py).
# Prints deliveries per second, latency from send to the last receiver
# (p50, p99), the CPU time the hub process used, the bytes a receiver read
# per line, and the ratio; then the fan-out again with ncat's lines padded
# to the length of ferry's, which name room and sender on every line. Sent in a
# burst, a line's latency is mostly its place in the queue; a paced run
# (one line every 2 ms) shows the hub's own latency. The receivers only
# read into memory made ready beforehand and note when each read came,
# counting and parsing the lines after the run (counting as they came
# made their time grow with the bytes a hub sends), so that the hub, not
# Python, sets the pace; the client still
# shares the machine's two cores with the hub, and the hub's CPU time is
# the hub's own cost. Then again with 4 KiB lines and one receiver
# that never reads: ferry drops it and the others get everything; ncat's hub
# stalls once that receiver's socket buffers are full.
# ferry runs with --chat-rate raised out of the way: this measures fan-out,
# not the per-client rate limit (20 lines/s by default); and with
# --chat-max-message raised for the 4 KiB lines (2000 bytes by default).
# Usage: [ROUNDS=11] [STALL_ROUNDS=3] bench/chat.sh [RECEIVERS] [COUNT]   (defaults 50 and 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
receivers=${1:-50}
count=${2:-2000}
if ! command -v ncat >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ncat </dev/null
fi
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/state"

# CPU time (ms) a process has used so far.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }

# One round: ferry then ncat, the same script for both; ROUNDS rounds
# alternate the two so that the machine's drift falls on both alike.
# Prints, for each, the median and the best deliveries/s over the rounds,
# the median latencies and hub CPU, and whether every run was complete;
# the ratio is of the medians.
rounds=${ROUNDS:-11}
compare() { # title, then the fan-out script's options
  local title=$1; shift
  local log="$work/runs.jsonl" a b out name p pid
  : >"$log"
  echo "$title ($rounds rounds, alternating)"
  for _ in $(seq "$rounds"); do
    for name in ferry ncat; do
      if [ $name = ferry ]; then p=$fp pid=$fpid; else p=$np pid=$npid; fi
      a=$(cpu_ms "$pid")
      # shellcheck disable=SC2086 # NCAT_EXTRA is a list of options
      out=$(python3 bench/chat_fanout.py "$p" --receivers "$receivers" --limit 30 "$@" \
        $([ $name = ncat ] && echo "${NCAT_EXTRA:-}"))
      b=$(cpu_ms "$pid")
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["name"]=sys.argv[2]; d["cpu_ms"]=float(sys.argv[3])-float(sys.argv[4]); print(json.dumps(d))' \
        "$out" $name "$b" "$a" >>"$log"
    done
  done
  python3 - "$log" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for name in ("ferry", "ncat"):
    rs = [r for r in runs if r["name"] == name]
    dps = [r["deliveries_per_s"] for r in rs]
    m = lambda k: statistics.median([r[k] for r in rs if r[k] is not None] or [float("nan")])
    med[name] = statistics.median(dps)
    done = sum(r["complete"] for r in rs)
    lost = max(r["receivers"] * r["count"] - r["delivered"] for r in rs)
    named = 100 * sum(r["named"] for r in rs) / max(1, sum(r["delivered"] for r in rs))
    print(f"  {name:8s} median {med[name]:9.0f} deliveries/s (best {max(dps):7.0f})  "
          f"p50 {m('p50_ms'):7.2f} ms  p99 {m('p99_ms'):7.2f} ms  hub CPU {m('cpu_ms'):4.0f} ms  "
          f"{m('bytes_per_line'):5.1f} bytes/line  "
          f"complete {done}/{len(rs)} (most lost in a run: {lost})  "
          f"lines naming their sender {named:.1f}%")
print(f"  ferry/ncat {med['ferry'] / med['ncat']:5.2f}x (medians)")
PY
}

fp=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$fp --state-dir "$work/state" \
  --no-discovery --chat-rate 1000000 --chat-max-message 8192 >/dev/null 2>&1 &
fpid=$!
np=$(port)
ncat -l --chat --max-conns 1000 127.0.0.1 $np >/dev/null 2>&1 &
npid=$!
sleep 1

compare "fan-out: $receivers receivers, 1 sender, $count lines" --count "$count"
echo "  (target: ferry/ncat >= 1)"
# ferry names the sender and the room on every line ("[room] <nick> text",
# CR LF); ncat --chat puts "<userN> " before each read it passes on, so most
# of its lines are the bare text. The cost of a delivery is mostly its bytes
# crossing the kernel, so the same comparison again with ncat's lines padded
# (by the sender) to the length of ferry's: the hubs' own cost per byte.
pad=$(python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
bpl = {n: statistics.median(r["bytes_per_line"] for r in runs if r["name"] == n) for n in ("ferry", "ncat")}
print(max(0, round(bpl["ferry"] - bpl["ncat"]) - 1))  # --pad N adds N + 1 bytes
PY
)
NCAT_EXTRA="--pad $pad" compare "fan-out, ncat's lines padded by $((pad + 1)) bytes to ferry's length" \
  --count "$count"
compare "latency, paced: 500 lines, one every 2 ms" --count 500 --interval 0.002
rounds=${STALL_ROUNDS:-3}
compare "4 KiB lines and one more receiver that never reads (30 s limit)" \
  --count "$count" --stall --pad 4096
