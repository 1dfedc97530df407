#!/usr/bin/env bash
# Geysir benchmarks, on demand (not part of CI): builds Release into build/bench (or
# $GEYSIR_BUILD_DIR), then runs bench/bench.py, which starts a private `geysir server` and runs
# wrk against (a) hello via its function URL, (b) Flask in Geysir vs gunicorn -w 2,
# (c) /healthz vs nginx, measures (d) cold starts and (e) latency at a light load. Needs wrk,
# nginx-light and gunicorn (deploy/packages.txt). Results and how to read them: docs/benchmarks.md.
#
#   ./bench/run.sh                         # 10 s per wrk run
#   ./bench/run.sh --duration 20 --cold-runs 11
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GEYSIR_BUILD_DIR:-$ROOT/build/bench}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
for tool in wrk nginx gunicorn; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (apt-get install $(grep -x "$tool\|nginx-light" "$ROOT/deploy/packages.txt" | head -1))" >&2; exit 1; }
done
if [[ -z "${GEYSIR_NO_BUILD:-}" ]]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEYSIR_BUILD_TESTS=OFF >/dev/null
  ninja -C "$BUILD" -j"${GEYSIR_JOBS:-$(nproc)}" >/dev/null
fi
echo "geysir $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
exec /usr/bin/python3 "$ROOT/bench/bench.py" --build-dir "$BUILD" "$@"
