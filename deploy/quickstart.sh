#!/usr/bin/env bash
# From a fresh Debian 12 machine (as root) to a running Geysir with an example function behind a
# function URL: installs (deploy/install.sh), starts `geysir server` in the background
# (log: /var/log/geysir.log, pid: /run/geysir.pid), deploys examples/hello with a URL and
# prints the curl line to call it. Run it again at any time: it reuses a running server.
#
# Settings (environment): GEYSIR_DATA_DIR (/var/lib/geysir), GEYSIR_HTTP_PORT (8080),
# GEYSIR_CONTROL_PORT (9000), GEYSIR_HOST (127.0.0.1), PREFIX (/usr/local).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
DATA="${GEYSIR_DATA_DIR:-/var/lib/geysir}"
HTTP_PORT="${GEYSIR_HTTP_PORT:-8080}"
CONTROL_PORT="${GEYSIR_CONTROL_PORT:-9000}"
HOST="${GEYSIR_HOST:-127.0.0.1}"
LOG=/var/log/geysir.log
PIDFILE=/run/geysir.pid

"$ROOT/deploy/install.sh"
GEYSIR="$PREFIX/bin/geysir"

if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [[ -f "$DATA/run/server.json" ]]; then
  echo "==> geysir server already running (pid $(cat "$PIDFILE"))"
else
  echo "==> starting geysir server (log: $LOG)"
  rm -f "$DATA/run/server.json"
  nohup "$GEYSIR" server --data-dir "$DATA" --host "$HOST" --http-port "$HTTP_PORT" \
        --control-port "$CONTROL_PORT" </dev/null >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 300); do
    [[ -f "$DATA/run/server.json" ]] && break
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "error: geysir server exited; last lines of $LOG:" >&2
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  if [[ ! -f "$DATA/run/server.json" ]]; then
    echo "error: geysir server did not come up within 60 s; see $LOG" >&2
    exit 1
  fi
fi

echo "==> deploying examples/hello"
export AWS_SHARED_CREDENTIALS_FILE="$DATA/credentials"
ENDPOINT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control_endpoint"])' "$DATA/run/server.json")"
out="$("$GEYSIR" deploy "$ROOT/examples/hello" --data-dir "$DATA" --name hello --handler app.handler --url 2>&1)" || {
  echo "$out" >&2
  echo "error: deploying examples/hello failed" >&2
  exit 1
}
echo "$out"
url="$(grep -oE 'http://[0-9a-z]+\.lambda-url\.[^ /]+/' <<<"$out" | head -n1)"

cat <<MSG

Geysir is running (stop it with: kill \$(cat $PIDFILE)).
  control API:  $ENDPOINT   credentials: $DATA/credentials
  boto3 / aws:  AWS_SHARED_CREDENTIALS_FILE=$DATA/credentials aws --endpoint-url $ENDPOINT lambda list-functions

Call the example function:

  curl ${url:-http://<url-id>.lambda-url.localhost:$HTTP_PORT/}

MSG
