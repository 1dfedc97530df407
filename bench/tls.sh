#!/usr/bin/env bash
# HTTPS benchmark (not part of CI): the gateway's /healthz and a function URL over HTTP and over
# HTTPS with keep-alive, and new TLS handshakes per second (Connection: close) against nginx
# serving the same certificate on the same machine. Uses an existing build:
#   GEYSIR_BUILD_DIR=build/x ./bench/tls.sh [SECONDS]
# Results: docs/benchmarks.md ("HTTPS").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GEYSIR_BUILD_DIR:-$ROOT/build/bench}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
DUR="${1:-5}"
T="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,DNS:*.lambda-url.localhost,IP:127.0.0.1" \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
HTTP=$(free_port); HTTPS=$(free_port); CTL=$(free_port); NGX=$(free_port)
"$BUILD/bin/geysir" server --data-dir "$T/data" --http-port "$HTTP" --https-port "$HTTPS" --control-port "$CTL" \
  --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" >"$T/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -f "$T/data/run/server.json" ]] && break; sleep 0.2; done
cat >"$T/app.py" <<'PY'
def handler(event, context):
    return {"statusCode": 200, "body": "hello"}
PY
export GEYSIR_ENDPOINT="http://127.0.0.1:$CTL" GEYSIR_DATA_DIR="$T/data"
"$BUILD/bin/geysir" deploy "$T/app.py" --name hello --handler app.handler --url >/dev/null
URL_ID=$("$BUILD/bin/geysir" url hello | sed -E 's|https?://([^.]*)\..*|\1|')
mkdir -p "$T/ngx"
cat >"$T/ngx/nginx.conf" <<NG
daemon off; worker_processes 1; error_log $T/ngx/error.log; pid $T/ngx/nginx.pid;
events { worker_connections 1024; }
http { access_log off; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
  client_body_temp_path $T/ngx; proxy_temp_path $T/ngx; fastcgi_temp_path $T/ngx; uwsgi_temp_path $T/ngx; scgi_temp_path $T/ngx;
  server { listen 127.0.0.1:$NGX ssl; ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
           location / { return 200 '{"status":"ok"}'; } } }
NG
nginx -c "$T/ngx/nginx.conf" -p "$T/ngx" &
PIDS+=($!)
sleep 1
run() { echo "== $1"; shift; wrk "$@" | grep -E "Requests/sec|Latency  |Non-2xx|errors" ; }
H="Host: $URL_ID.lambda-url.localhost"
run "healthz HTTP keep-alive"  -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$HTTP/healthz"
run "healthz HTTPS keep-alive" -t1 -c16 -d"${DUR}s" "https://127.0.0.1:$HTTPS/healthz"
run "function URL HTTP keep-alive"  -t1 -c16 -d"${DUR}s" -H "$H" "http://127.0.0.1:$HTTP/"
run "function URL HTTPS keep-alive" -t1 -c16 -d"${DUR}s" -H "$H" "https://127.0.0.1:$HTTPS/"
run "new TLS handshakes: geysir (Connection: close)" -t1 -c16 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:$HTTPS/healthz"
run "new TLS handshakes: nginx 1 worker (Connection: close)" -t1 -c16 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:$NGX/"
