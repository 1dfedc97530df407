#!/usr/bin/env bash
# The whole test suite: configure with warnings as errors, build, run the Catch2 unit tests
# (ctest), then the integration tests (pytest with Debian's /usr/bin/python3, which has the
# python3-boto3 and python3-pytest packages). Both parts always run; the exit status is
# non-zero if either failed. The last line printed is a one-line summary.
#
#   ./tests/run-all.sh                 # build into build/ci
#   GEYSIR_BUILD_DIR=build/x ./tests/run-all.sh
#   ./tests/run-all.sh -k lifecycle    # extra arguments go to pytest
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GEYSIR_BUILD_DIR:-$ROOT/build/ci}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
JOBS="${GEYSIR_JOBS:-$(nproc)}"
PYTHON=/usr/bin/python3
start=$(date +%s)

say() { printf '\n=== %s\n' "$*"; }

say "configure ($BUILD)"
if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DGEYSIR_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     ${GEYSIR_CMAKE_ARGS:-}; then
  echo "run-all: FAILED (configure) in $(( $(date +%s) - start ))s"
  exit 1
fi
say "build (-j$JOBS)"
if ! ninja -C "$BUILD" -j"$JOBS"; then
  echo "run-all: FAILED (build) in $(( $(date +%s) - start ))s"
  exit 1
fi

say "unit tests (ctest)"
unit="passed"
if ! ctest --test-dir "$BUILD" --output-on-failure -j2 --timeout 300; then
  unit="FAILED"
fi

say "integration tests (pytest)"
integration="passed"
if ! GEYSIR_BUILD_DIR="$BUILD" timeout --signal=TERM --kill-after=30 2400 \
     "$PYTHON" -m pytest "$ROOT/tests/integration" -p no:cacheprovider -rfEs "$@"; then
  integration="FAILED"
fi

elapsed=$(( $(date +%s) - start ))
if [[ "$unit" == passed && "$integration" == passed ]]; then
  echo "run-all: OK (unit tests $unit, integration tests $integration) in ${elapsed}s"
  exit 0
fi
echo "run-all: FAILED (unit tests $unit, integration tests $integration) in ${elapsed}s"
exit 1
