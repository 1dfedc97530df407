#!/usr/bin/env bash
# HTTPS benchmark (not part of CI): the gateway's /healthz and a function URL over HTTP and over
# HTTPS with keep-alive, nginx's own HTTP vs HTTPS keep-alive as a reference for what the same
# client on the same cores costs, and new TLS handshakes per second (Connection: close) against
# nginx serving the same certificate. REPEATS rounds, each running the pairs side by side; the
# medians of the per-round ratios come last. Uses an existing build:
#   GEYSIR_BUILD_DIR=build/x [REPEATS=3] ./bench/tls.sh [SECONDS]
# Results: docs/benchmarks.md ("HTTPS").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GEYSIR_BUILD_DIR:-$ROOT/build/bench}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
DUR="${1:-5}"
T="$(mktemp -d)"
chmod 755 "$T"  # the gateway and workers drop to an unprivileged user and must reach $T/data/run
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; cp "$T/server.log" /tmp/tls_bench_server.log 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,DNS:*.lambda-url.localhost,IP:127.0.0.1" \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
HTTP=$(free_port); HTTPS=$(free_port); CTL=$(free_port); NGX=$(free_port); NGXH=$(free_port)
"$BUILD/bin/geysir" server --data-dir "$T/data" --http-port "$HTTP" --https-port "$HTTPS" --control-port "$CTL" \
  --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" >"$T/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -f "$T/data/run/server.json" ]] && break; sleep 0.2; done
mkdir -p "$T/app"
cat >"$T/app/app.py" <<'PY'
def handler(event, context):
    return {"statusCode": 200, "body": "hello"}
PY
export GEYSIR_ENDPOINT="http://127.0.0.1:$CTL" GEYSIR_DATA_DIR="$T/data"
"$BUILD/bin/geysir" deploy "$T/app" --name hello --handler app.handler --url >/dev/null
URL_ID=$("$BUILD/bin/geysir" url hello | sed -E 's|https?://([^.]*)\..*|\1|')
mkdir -p "$T/ngx"
cat >"$T/ngx/nginx.conf" <<NG
daemon off; worker_processes 1; error_log $T/ngx/error.log; pid $T/ngx/nginx.pid;
events { worker_connections 1024; }
http { access_log off; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
  client_body_temp_path $T/ngx; proxy_temp_path $T/ngx; fastcgi_temp_path $T/ngx; uwsgi_temp_path $T/ngx; scgi_temp_path $T/ngx;
  server { listen 127.0.0.1:$NGX ssl; ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
           location / { return 200 '{"status":"ok"}'; } }
  server { listen 127.0.0.1:$NGXH; location / { return 200 '{"status":"ok"}'; } } }
NG
nginx -c "$T/ngx/nginx.conf" -p "$T/ngx" &
PIDS+=($!)
sleep 1
# Each repeat runs the pairs back to back (HTTP then HTTPS, Geysir then nginx) so a ratio is
# taken from side-by-side runs on this shared machine; the medians of REPEATS come last.
REPEATS="${REPEATS:-3}"
declare -A R
# Requests/sec; a run with non-2xx answers or socket errors is flagged (it measured errors, not work).
rps() { wrk "$@" | awk '/Requests\/sec/ {r=$2} /Non-2xx/ {bad=bad " non2xx=" $NF} /Socket errors/ {bad=bad " errors"}
                        END {if (bad != "") print "BAD(" r bad ")" > "/dev/stderr"; print r}'; }
H="Host: $URL_ID.lambda-url.localhost"
# Routes reach the gateway asynchronously and the first call is a cold start: wait for a 200.
for _ in $(seq 150); do [[ $(curl -s -o /dev/null -w '%{http_code}' -H "$H" "http://127.0.0.1:$HTTP/") == 200 ]] && break; sleep 0.2; done
code=$(curl -s -o "$T/first" -w '%{http_code}' -H "$H" "http://127.0.0.1:$HTTP/")
[[ $code == 200 ]] || { echo "the function URL answers $code: $(head -c 300 "$T/first")" >&2; exit 1; }
for i in $(seq "$REPEATS"); do
  R[hh,$i]=$(rps -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$HTTP/healthz")
  R[hs,$i]=$(rps -t1 -c16 -d"${DUR}s" "https://127.0.0.1:$HTTPS/healthz")
  R[fh,$i]=$(rps -t1 -c16 -d"${DUR}s" -H "$H" "http://127.0.0.1:$HTTP/")
  R[fs,$i]=$(rps -t1 -c16 -d"${DUR}s" -H "$H" "https://127.0.0.1:$HTTPS/")
  R[xh,$i]=$(rps -t1 -c16 -d"${DUR}s" "http://127.0.0.1:$NGXH/")
  R[xs,$i]=$(rps -t1 -c16 -d"${DUR}s" "https://127.0.0.1:$NGX/")
  R[ng,$i]=$(rps -t1 -c16 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:$HTTPS/healthz")
  R[nn,$i]=$(rps -t1 -c16 -d"${DUR}s" -H "Connection: close" "https://127.0.0.1:$NGX/")
  echo "repeat $i: healthz http ${R[hh,$i]} https ${R[hs,$i]} | function URL http ${R[fh,$i]} https ${R[fs,$i]}" \
       "| nginx keep-alive http ${R[xh,$i]} https ${R[xs,$i]}" \
       "| new handshakes/s geysir ${R[ng,$i]} nginx ${R[nn,$i]} | load $(cut -d' ' -f1-3 /proc/loadavg)"
done
med() { local k=$1; for i in $(seq "$REPEATS"); do echo "${R[$k,$i]}"; done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
# Ratios per repeat (side by side), then their median.
medratio() { for i in $(seq "$REPEATS"); do ratio "${R[$1,$i]}" "${R[$2,$i]}"; echo; done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== medians of $REPEATS x ${DUR}s (wrk -t1 -c16)"
echo "healthz keep-alive: http $(med hh) https $(med hs) req/s; https/http $(medratio hs hh)"
echo "function URL keep-alive: http $(med fh) https $(med fs) req/s; https/http $(medratio fs fh)"
echo "nginx keep-alive (reference, same client): http $(med xh) https $(med xs) req/s; https/http $(medratio xs xh)"
echo "new TLS handshakes/s: geysir $(med ng) nginx $(med nn); geysir/nginx $(medratio ng nn)"
