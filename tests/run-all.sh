#!/usr/bin/env bash
# The whole test suite: configure with warnings as errors, build, run the Catch2 unit tests
# (ctest), then the integration tests (pytest with Debian's /usr/bin/python3, which has the
# python3-boto3 and python3-pytest packages), then a second build with Clang, ASAN+UBSAN and
# libFuzzer in which the unit tests run again under the sanitizers and every fuzz target runs
# over its committed corpus plus a short fuzzing time (fuzz/run.sh). Every part always runs;
# the exit status is non-zero if any failed. The last line printed is a one-line summary.
#
#   ./tests/run-all.sh                 # build into build/ci (and build/ci-sanitize)
#   GEYSIR_BUILD_DIR=build/x ./tests/run-all.sh
#   ./tests/run-all.sh -k lifecycle    # extra arguments go to pytest
#   GEYSIR_NO_SANITIZE=1 ./tests/run-all.sh   # skip the sanitizer and fuzz part (a quick local run)
#   GEYSIR_FUZZ_SECONDS=60 ./tests/run-all.sh # fuzz each target longer (default 15 s)
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

# A unit test whose prerequisite is missing appends a line to GEYSIR_SKIP_LOG
# (tests/support/skip.h); ctest hides a passing test's output, so the lines are printed here.
# Under CI (CI=true) or GEYSIR_REQUIRE_ALL=1 such a test fails instead, unless what is missing
# is a kernel feature CI cannot promise.
say "unit tests (ctest)"
unit="passed"
skip_log="$BUILD/unit-skips.txt"
: > "$skip_log"
if ! GEYSIR_SKIP_LOG="$skip_log" ctest --test-dir "$BUILD" --output-on-failure -j2 --timeout 300; then
  unit="FAILED"
fi
if [[ -s "$skip_log" ]]; then
  say "unit test cases skipped ($(wc -l < "$skip_log"))"
  sort "$skip_log"
  unit="$unit ($(wc -l < "$skip_log") cases skipped)"
fi

say "integration tests (pytest)"
integration="passed"
if ! GEYSIR_BUILD_DIR="$BUILD" timeout --signal=TERM --kill-after=30 2400 \
     "$PYTHON" -m pytest "$ROOT/tests/integration" -p no:cacheprovider -rfEs "$@"; then
  integration="FAILED"
fi

sanitized="passed"
fuzzing="passed"
if [[ -n "${GEYSIR_NO_SANITIZE:-}" ]]; then
  sanitized="skipped (GEYSIR_NO_SANITIZE)"
  fuzzing="skipped (GEYSIR_NO_SANITIZE)"
else
  SANITIZE_BUILD="${BUILD}-sanitize"
  say "sanitizer build: Clang, ASAN+UBSAN, libFuzzer"
  if GEYSIR_FUZZ_BUILD_DIR="$SANITIZE_BUILD" GEYSIR_JOBS="$JOBS" "$ROOT/fuzz/run.sh" --build all; then
    say "unit tests under ASAN+UBSAN (ctest)"
    if ! ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
         GEYSIR_SKIP_LOG="$SANITIZE_BUILD/unit-skips.txt" ctest --test-dir "$SANITIZE_BUILD" --output-on-failure -j2 --timeout 600; then
      sanitized="FAILED"
    fi
    say "fuzz targets: corpus + ${GEYSIR_FUZZ_SECONDS:-15}s each (fuzz/run.sh)"
    if ! GEYSIR_FUZZ_NO_BUILD=1 GEYSIR_FUZZ_BUILD_DIR="$SANITIZE_BUILD" "$ROOT/fuzz/run.sh" "${GEYSIR_FUZZ_SECONDS:-15}"; then
      fuzzing="FAILED"
    fi
  else
    sanitized="FAILED (build)"
    fuzzing="FAILED (build)"
  fi
fi

elapsed=$(( $(date +%s) - start ))
summary="unit tests $unit, integration tests $integration, sanitized unit tests $sanitized, fuzzing $fuzzing"
if [[ "$unit" == passed* && "$integration" == passed && "$sanitized" != FAILED* && "$fuzzing" != FAILED* ]]; then
  echo "run-all: OK ($summary) in ${elapsed}s"
  exit 0
fi
echo "run-all: FAILED ($summary) in ${elapsed}s"
exit 1
