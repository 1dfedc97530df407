#!/usr/bin/env bash
# Builds the libFuzzer targets (Clang, ASAN+UBSAN) and runs each over its committed seed
# corpus plus SECONDS of fuzzing. Prints executions per target; exits non-zero if any target
# found a crash, a leak, a timeout or undefined behaviour (the input is kept under
# <build>/artifacts/ for fuzz_<target> to replay: `fuzz_<target> <file>`).
#
#   fuzz/run.sh 60                      # every target, 60 s each
#   fuzz/run.sh 300 http_request sigv4  # some targets
#   GEYSIR_FUZZ_BUILD_DIR=build/x fuzz/run.sh 10
#   GEYSIR_FUZZ_NO_BUILD=1 fuzz/run.sh 10   # the build is already there
#   fuzz/run.sh --build [NINJA_TARGET]      # configure and build only (default fuzz_targets;
#                                           # tests/run-all.sh builds `all` here: the unit
#                                           # tests under the same sanitizers)
#
# New inputs that reach new code are kept in <build>/corpus/<target> (not in the repository)
# and reused by the next run; copy the ones worth keeping into fuzz/corpus/<target>.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GEYSIR_FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
# Clang with ASAN+UBSAN and coverage for libFuzzer (GEYSIR_FUZZ). Warnings are not errors here:
# Clang flags system macros (SCMP_A0, NLMSG_OK) that GCC does not, and the GCC build of
# tests/run-all.sh holds -Werror. -O1 -g1 is libFuzzer's usual level and builds faster than -O2 -g.
build() {
  echo "=== fuzz: configure and build $1 ($BUILD)"
  if ! CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DGEYSIR_FUZZ=ON \
       -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null; then
    echo "fuzz: FAILED (configure)"
    return 1
  fi
  if ! ninja -C "$BUILD" -j"${GEYSIR_JOBS:-$(nproc)}" "$1"; then
    echo "fuzz: FAILED (build)"
    return 1
  fi
}

if [[ "${1:-}" == --build ]]; then
  build "${2:-fuzz_targets}"
  exit
fi
SECONDS_EACH="${1:-}"
if [[ ! "$SECONDS_EACH" =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh SECONDS [TARGET ...]   (SECONDS of fuzzing per target, after its corpus)" >&2
  echo "       fuzz/run.sh --build [NINJA_TARGET]" >&2
  exit 2
fi
shift
ALL_TARGETS=$(sed -n 's/^geysir_fuzz_target(\([a-z0-9_]*\) .*/\1/p' "$ROOT/fuzz/CMakeLists.txt")
TARGETS="${*:-$ALL_TARGETS}"
for t in $TARGETS; do
  if ! grep -qx "$t" <<<"$ALL_TARGETS"; then
    echo "fuzz/run.sh: no target '$t'; targets: $(echo $ALL_TARGETS)" >&2
    exit 2
  fi
done
if [[ -z "${GEYSIR_FUZZ_NO_BUILD:-}" ]]; then
  build fuzz_targets || exit 1
fi

mkdir -p "$BUILD/artifacts" "$BUILD/tmp"
passed=0
failed=0
printf '\n%-26s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in $TARGETS; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  log="$BUILD/fuzz_$t.log"
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: a leak or a bomb.
  TMPDIR="$BUILD/tmp" ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timeout --kill-after=30 $(( SECONDS_EACH + 300 )) \
    "$BUILD/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$t-" "$work" "$ROOT/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$work" -type f | wc -l)
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    result=ok
  else
    failed=$((failed + 1))
    result="FAILED (exit $rc; $log)"
  fi
  printf '%-26s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$units" "$result"
  if [[ $rc -ne 0 ]]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 | sed 's/^/    /'
    ls -1 "$BUILD/artifacts/$t-"* 2>/dev/null | tail -3 | sed 's/^/    input: /'
  fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
