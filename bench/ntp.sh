#!/usr/bin/env bash
# NTP replies per second over loopback, ferry beside chronyd serving as a
# local-clock server, driven by the same bounded load generator
# (examples/ntp_load.rs) for the same time. Target: ferry at least
# chronyd's rate with no loss.   Usage: bench/ntp.sh [SECONDS]  (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
export PATH="$PATH:/usr/sbin"
command -v chronyd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chrony </dev/null; }
cargo build --release -q --bin ferry --example ntp_load
load=target/release/examples/ntp_load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

fp=$(port)
target/release/ferry serve "$work" --listen 127.0.0.1:$fp >/dev/null 2>&1 &
sleep 0.5
echo "ferry:   $($load 127.0.0.1:$fp "$secs")"
ferry_line=$($load 127.0.0.1:$fp "$secs")
echo "ferry:   $ferry_line"

cp=$(port)
cat > "$work/chrony.conf" <<CONF
port $cp
bindaddress 127.0.0.1
cmdport 0
allow 127.0.0.1
local stratum 10
pidfile $work/chronyd.pid
CONF
chronyd -x -d -f "$work/chrony.conf" >/dev/null 2>&1 &
sleep 1
echo "chronyd: $($load 127.0.0.1:$cp "$secs")"
chrony_line=$($load 127.0.0.1:$cp "$secs")
echo "chronyd: $chrony_line"

rate() { echo "$1" | sed -E 's/.*rate ([0-9]+).*/\1/'; }
fr=$(rate "$ferry_line"); cr=$(rate "$chrony_line")
printf 'second runs: ferry %s/s, chronyd %s/s, ratio ferry/chronyd %.2fx\n' "$fr" "$cr" "$(echo "$fr / $cr" | bc -l)"
