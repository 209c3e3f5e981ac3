#!/usr/bin/env bash
# What logging in costs, and what guessing gets, on one server over
# loopback:
#  1. keep-alive GETs of a 4 KiB file with wrk (2 threads, 50 connections),
#     anonymous against Basic auth as an account, rounds alternating:
#     requests per second of each (median) and the ratio (target: Basic at
#     least 0.9x anonymous; a password is hashed once, then remembered);
#  2. password guessing for SECS seconds: wrong passwords for one account,
#     from one address over 16 connections, then from 16 addresses
#     (127.0.0.2-17) at once: guesses checked per second (401s) and
#     refused unchecked (429s), for each.
# Usage: bench/auth.sh [ROUNDS] [SECS]   (defaults 3 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
secs=${2:-10}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null
fi
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/state"
head -c 4096 /dev/urandom | base64 -w 76 | head -c 4096 > "$work/srv/small.txt"
echo "a-long-bench-password" | "$ferry" passwd alice > "$work/ferry.toml"
fp=$(port)
"$ferry" serve "$work/srv" --listen "127.0.0.1:$fp" --state-dir "$work/state" --no-discovery \
  --config "$work/ferry.toml" >/dev/null 2>"$work/ferry.log" &
url="http://127.0.0.1:$fp/small.txt"
for _ in $(seq 50); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
basic="Authorization: Basic $(printf 'alice:a-long-bench-password' | base64 -w0)"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "$basic" "$url")" = 200 ] || {
  echo "Basic auth refused" >&2; tail -5 "$work/ferry.log" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
anon=""; auth=""
for _ in $(seq "$rounds"); do
  anon+="$(wrk -t2 -c50 -d"${secs}s" "$url" | awk '/Requests\/sec/ {print $2}') "
  auth+="$(wrk -t2 -c50 -d"${secs}s" -H "$basic" "$url" | awk '/Requests\/sec/ {print $2}') "
done
ma=$(echo "$anon" | tr ' ' '\n' | grep . | median)
mb=$(echo "$auth" | tr ' ' '\n' | grep . | median)
echo "keep-alive GETs of a 4 KiB file (wrk -t2 -c50 -d${secs}s, median of $rounds)"
printf '  anonymous   %10.0f requests/s  (%s)\n' "$ma" "$anon"
printf '  Basic auth  %10.0f requests/s  (%s)\n' "$mb" "$auth"
printf '  Basic/anonymous %5.2fx (target >= 0.9)\n' "$(echo "$mb / $ma" | bc -l)"

echo "password guessing for ${secs} s, one account"
python3 - "$fp" "$secs" <<'PY'
import base64, socket, sys, threading, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
wrong = base64.b64encode(b"alice:wrong-guess").decode()
req = (f"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {wrong}\r\n\r\n").encode()

def guesser(src, until, counts, lock):
    while time.time() < until:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0))
            while time.time() < until:
                s.sendall(req)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError
                    head += chunk
                code = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += s.recv(4096)
                with lock:
                    counts[code] = counts.get(code, 0) + 1
            s.close()
        except (OSError, ConnectionError):
            time.sleep(0.05)

for label, sources in (("one address", ["127.0.0.1"] * 16),
                       ("16 addresses", [f"127.0.0.{i}" for i in range(2, 18)])):
    counts, lock = {}, threading.Lock()
    until = time.time() + secs
    ts = [threading.Thread(target=guesser, args=(s, until, counts, lock)) for s in sources]
    for t in ts: t.start()
    for t in ts: t.join()
    checked, refused = counts.get("401", 0), counts.get("429", 0)
    print(f"  {label:13s} checked {checked / secs:7.1f} guesses/s (401), refused unchecked {refused / secs:7.1f}/s (429), other {sum(counts.values()) - checked - refused}")
    time.sleep(1)
PY
