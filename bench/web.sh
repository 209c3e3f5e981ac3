#!/usr/bin/env bash
# The web door beside nginx, on one machine over loopback, same files:
#  1. keep-alive GETs of a small file with wrk (2 threads, 50 connections,
#     10 s, best of 3): requests per second of each and the ratio (target:
#     ferry at least nginx's);
#  2. a 1 GiB download with curl into /dev/null (best of 3): time of each
#     and the ratio (target: ferry within 1.1x of nginx).
# nginx (Debian's package) runs with a config this script writes: its
# defaults for static files (sendfile, tcp_nopush, keepalive), 2 workers,
# access log on, like ferry's request log (ferry's goes to /dev/null here,
# nginx's to a file in the work folder).
# Usage: bench/web.sh [SECONDS] [SIZE_MIB]   (defaults 10 and 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
size_mib=${2:-1024}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
ferry_binary
work=$(mktemp -d /var/tmp/ferry-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/state" "$work/nginx"
chmod 755 "$work" "$work/srv"  # nginx's workers run as another user
head -c 4096 /dev/urandom | base64 -w 76 | head -c 4096 > "$work/srv/small.txt"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/srv/big.bin"

fp=$(port)
"$ferry" serve "$work/srv" --listen 127.0.0.1:$fp --state-dir "$work/state" --no-discovery \
  >/dev/null 2>"$work/ferry.log" &
np=$(port)
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
daemon on;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$np;
    root $work/srv;
    autoindex on;
  }
}
CONF
"$nginx" -c "$work/nginx/nginx.conf" -p "$work/nginx"
sleep 1
for u in "http://127.0.0.1:$fp/small.txt" "http://127.0.0.1:$np/small.txt"; do
  cmp -s <(curl -s "$u") "$work/srv/small.txt" || {
    echo "bad answer from $u" >&2; curl -si "$u" | head -20 >&2; tail -5 "$work/ferry.log" >&2; exit 1; }
done

rps() { # url -> best requests/s of 3
  local best=0 r
  for _ in 1 2 3; do
    r=$(wrk -t2 -c50 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}')
    best=$(echo "if ($r > $best) $r else $best" | bc -l)
  done
  echo "$best"
}
echo "keep-alive GETs of a 4 KiB file (wrk -t2 -c50 -d${secs}s, best of 3)"
rf=$(rps "http://127.0.0.1:$fp/small.txt")
rn=$(rps "http://127.0.0.1:$np/small.txt")
printf '  ferry  %10.0f requests/s\n  nginx  %10.0f requests/s\n  ferry/nginx %5.2fx (target >= 1)\n' \
  "$rf" "$rn" "$(echo "$rf / $rn" | bc -l)"

fetch() { # url -> best seconds of 3
  local best="" t
  for _ in 1 2 3; do
    t=$(curl -s -o /dev/null -w '%{time_total}' "$1")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  echo "$best"
}
echo "download of ${size_mib} MiB with curl (best of 3)"
cmp -s <(curl -s "http://127.0.0.1:$fp/big.bin") "$work/srv/big.bin" || { echo "ferry sent other bytes" >&2; exit 1; }
tf=$(fetch "http://127.0.0.1:$fp/big.bin")
tn=$(fetch "http://127.0.0.1:$np/big.bin")
printf '  ferry  %8.3f s\n  nginx  %8.3f s\n  ferry/nginx %5.2fx (target <= 1.1)\n' \
  "$tf" "$tn" "$(echo "$tf / $tn" | bc -l)"
