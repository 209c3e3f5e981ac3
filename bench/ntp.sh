#!/usr/bin/env bash
# NTP replies per second over loopback, ferry beside chronyd serving as a
# local-clock server, driven by the same bounded load generator
# (examples/ntp_load.rs, 64 requests in flight) for the same time, in
# alternating rounds. Prints every round, each server's median and spread,
# the ratio of medians, the rounds ferry led, and the loss.
# Target: ferry at least chronyd's rate in the median and in at least 4 of
# 5 rounds, with 0% loss.
# On a machine of two or more cores each server runs on core 0 and the
# load generator on core 1 (taskset), so that both servers get one core
# alike and the scheduler does not move them onto each other between
# rounds; NTP_PIN=0 runs them unpinned.
# Usage: bench/ntp.sh [ROUNDS] [SECONDS]   (defaults 5 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}
secs=${2:-5}
export PATH="$PATH:/usr/sbin"
command -v chronyd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chrony </dev/null; }
ferry_binary
cargo build --release -q --example ntp_load
load=target/release/examples/ntp_load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

server_cpu=(); load_cpu=()
if [ "${NTP_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0); load_cpu=(taskset -c 1)
  echo "servers on core 0, load generator on core 1"
fi

fp=$(udp_port)
mkdir -p "$work/srv" "$work/state"
"${server_cpu[@]}" "$ferry" serve "$work/srv" --listen 127.0.0.1:$fp --state-dir "$work/state" --no-discovery >/dev/null 2>&1 &
cp=$(udp_port)
cat > "$work/chrony.conf" <<CONF
port $cp
bindaddress 127.0.0.1
cmdport 0
allow 127.0.0.1
local stratum 10
pidfile $work/chronyd.pid
CONF
"${server_cpu[@]}" chronyd -x -d -f "$work/chrony.conf" >/dev/null 2>&1 &
sleep 1
# One warm-up run each.
$load 127.0.0.1:$fp 1 >/dev/null; $load 127.0.0.1:$cp 1 >/dev/null

: > "$work/results"
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order="ferry chronyd"; else order="chronyd ferry"; fi
  for who in $order; do
    if [ "$who" = ferry ]; then p=$fp; else p=$cp; fi
    line=$("${load_cpu[@]}" $load 127.0.0.1:$p "$secs")
    printf 'round %d %-8s %s\n' "$r" "$who" "$line"
    echo "$r $who $line" >> "$work/results"
  done
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
rates, losses = {}, {}
for line in open(sys.argv[1]):
    r, who, rest = line.split(" ", 2)
    rates.setdefault(who, {})[int(r)] = float(re.search(r"rate ([0-9.]+)", rest).group(1))
    losses.setdefault(who, []).append(float(re.search(r"loss ([0-9.]+)", rest).group(1)))
print()
for who in ("ferry", "chronyd"):
    v = list(rates[who].values())
    print(f"{who:8s} median {statistics.median(v):9.0f}/s  spread {min(v):.0f}-{max(v):.0f}/s  "
          f"worst loss {max(losses[who]):.3f}%")
f, c = rates["ferry"], rates["chronyd"]
led = sum(1 for r in f if f[r] >= c[r])
print(f"ferry/chronyd = {statistics.median(f.values()) / statistics.median(c.values()):.2f}x "
      f"(medians); ferry ahead in {led} of {len(f)} rounds")
PY
