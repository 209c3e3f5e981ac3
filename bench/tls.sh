#!/usr/bin/env bash
# Side by side on one machine, over loopback: a 2 GiB file fetched with
# `ferry get` in clear and over TLS (one server, the same port), and with
# curl over http and https from the same server. Prints each time and the
# TLS/plain ratios. Usage: bench/tls.sh [SIZE_MIB]   (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
for tool in openssl curl bc; do
  if ! command -v $tool >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl curl bc </dev/null
  fi
done
cargo build --release -q
ferry=$PWD/target/release/ferry
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/out" "$work/state"
echo "making a ${size_mib} MiB file of random bytes..."
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/srv/src.bin"
cat "$work/srv/src.bin" > /dev/null   # warm the page cache for everyone alike

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ferry" serve "$work/srv" --listen 127.0.0.1:$p --tls --state-dir "$work/state" --no-discovery >/dev/null 2>&1 &
for _ in $(seq 50); do [ -s "$work/state/tls/cert.pem" ] && break; sleep 0.1; done
sleep 0.3
cert=$work/state/tls/cert.pem
fp=$(openssl x509 -noout -fingerprint -sha256 -in "$cert" | cut -d= -f2)
export FERRY_KNOWN_HOSTS=$work/known_hosts   # empty: plain stays plain
grep -qw aes /proc/cpuinfo && echo "CPU has AES instructions" || echo "CPU has no AES instructions"

# Each contender runs 3 times; the best time counts (the machine is shared).
run3() {
  local name=$1; shift
  local t best_t=""
  for _ in 1 2 3; do
    rm -f "$work/out/"*
    t=$("$@")
    if [ -z "$best_t" ] || [ "$(echo "$t < $best_t" | bc)" = 1 ]; then best_t=$t; fi
  done
  printf '%-14s %8.3f s  %7.0f MiB/s\n' "$name" "$best_t" "$(echo "$size_mib / $best_t" | bc -l)"
  eval "t_$name=$best_t"
}
t_plain_run() { local a; a=$(now); "$ferry" get 127.0.0.1:$p:/src.bin "$work/out/g.bin" >/dev/null; elapsed "$a" "$(now)"; }
t_tls_run() {
  local a; a=$(now)
  "$ferry" get --fingerprint "$fp" 127.0.0.1:$p:/src.bin "$work/out/g.bin" >/dev/null 2>&1
  elapsed "$a" "$(now)"
}
t_http_run() { local a; a=$(now); curl -sS -o "$work/out/c.bin" http://127.0.0.1:$p/src.bin; elapsed "$a" "$(now)"; }
t_https_run() { local a; a=$(now); curl -sS --cacert "$cert" -o "$work/out/c.bin" https://localhost:$p/src.bin; elapsed "$a" "$(now)"; }

echo "best of 3, ${size_mib} MiB over loopback:"
run3 ferry_plain t_plain_run
run3 ferry_tls t_tls_run
run3 curl_http t_http_run
run3 curl_https t_https_run
rm -f "$FERRY_KNOWN_HOSTS"
"$ferry" get --fingerprint "$fp" 127.0.0.1:$p:/src.bin "$work/out/check.bin" >/dev/null 2>&1
cmp "$work/srv/src.bin" "$work/out/check.bin" && echo "TLS copy verified byte for byte"

ratio() { printf '%-32s %6.2fx\n' "$1" "$(echo "$2 / $3" | bc -l)"; }
echo "ratios (target: ferry get over TLS within 1.5x of plain):"
ratio "ferry get: TLS / plain" "$t_ferry_tls" "$t_ferry_plain"
ratio "curl: https / http" "$t_curl_https" "$t_curl_http"
