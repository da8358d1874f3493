#!/usr/bin/env bash
# HTTPS requests per server CPU-second, stoke vs nginx, same certificate, on
# loopback: wrk (keep-alive, and "Connection: close") and openssl s_time -new
# (full handshakes, no session reuse). Bounded: 8 s per run.
#
#   scripts/bench-https.sh [ec|rsa] [keepalive|close|full]...
# Needs: a release build (cargo build --release), nginx, wrk, openssl.
set -euo pipefail
STOKE=${STOKE:-$(dirname "$0")/../target/release/stoke}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
port=18443
mkdir -p "$D/www" "$D/ng"
head -c 3072 /dev/urandom | base64 -w 100 > "$D/www/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/ec.key" \
  -out "$D/ec.crt" -days 2 -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/rsa.key" -out "$D/rsa.crt" -days 2 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }   # utime+stime, all threads

run() { # server key mode
  local server=$1 key=$2 mode=$3 pid out reqs c0 c1
  if [ "$server" = stoke ]; then
    RUST_LOG=warn "$STOKE" "$D/www" --threads 1 --listen-tls 127.0.0.1:$port \
      --tls-cert "$D/$key.crt" --tls-key "$D/$key.key" 2>/dev/null &
    pid=$!
  else
    cat > "$D/ng/nginx.conf" <<NG
worker_processes 1; daemon off; pid $D/ng/nginx.pid; error_log $D/ng/error.log warn;
events { worker_connections 10000; }
http { access_log off; sendfile on; keepalive_requests 1000000; types { text/html html; }
  server { listen 127.0.0.1:$port ssl; ssl_certificate $D/$key.crt; ssl_certificate_key $D/$key.key;
           ssl_protocols TLSv1.2 TLSv1.3; root $D/www; } }
NG
    nginx -c "$D/ng/nginx.conf" -p "$D/ng" & sleep 0.5
    pid=$(pgrep -f "nginx: worker process" | head -1)
  fi
  sleep 0.5
  c0=$(cpu "$pid")
  case $mode in
    full) out=$( (openssl s_time -connect 127.0.0.1:$port -new -time 8 -www /index.html &
                  openssl s_time -connect 127.0.0.1:$port -new -time 8 -www /index.html; wait) 2>&1)
          reqs=$(echo "$out" | awk '/connections in .* real seconds/ {s+=$1} END {print s}') ;;
    close) out=$(wrk -t1 -c32 -d8s -H "Connection: close" https://127.0.0.1:$port/index.html)
          reqs=$(echo "$out" | awk '/requests in/ {print $1}') ;;
    *)    out=$(wrk -t1 -c32 -d8s https://127.0.0.1:$port/index.html)
          reqs=$(echo "$out" | awk '/requests in/ {print $1}') ;;
  esac
  c1=$(cpu "$pid")
  if [ "$server" = stoke ]; then kill "$pid"; else nginx -c "$D/ng/nginx.conf" -p "$D/ng" -s stop 2>/dev/null; fi
  wait 2>/dev/null || true
  python3 -c "r=$reqs; c=($c1-$c0)/$(getconf CLK_TCK); print(f'$server $key $mode: {r} requests, {c:.2f} server CPU-s, {r/c:.0f} req/CPU-s')"
}

key=${1:-ec}; shift || true
for mode in "${@:-keepalive close full}"; do
  for m in $mode; do for server in stoke nginx; do run "$server" "$key" "$m"; done; done
done
