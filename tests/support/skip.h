// Skipping a unit test whose prerequisite is missing, visibly, and failing instead where every
// prerequisite must be present.
//
// Catch2 v2 has no SKIP(): a test case that returns early counts as passed. So a skip says
// "skipped: why" (a Catch2 warning, printed when the test binary runs by itself), appends one line
// to the file named by GEYSIR_SKIP_LOG (tests/run-all.sh prints that file after ctest, which hides
// a passing test's output), and under CI (CI=true, set by .ci/run) or GEYSIR_REQUIRE_ALL=1 fails
// the test instead, naming what was missing. CI runs as root on Debian 12 with every package of
// deploy/packages.txt: a skip there is a regression hidden as a pass.
//
// Thread behaviour: the macros belong on the test case's own thread (they use Catch2's current
// test and `return` from the test case); RecordSkip may be called from any thread.
#pragma once

#include <catch2/catch.hpp>
#include <string>

namespace geysir::testing {

// True when a missing prerequisite must fail the test: CI=true or GEYSIR_REQUIRE_ALL=1.
bool SkipsMustFail();

// Appends "<test>: skipped: <why>" to $GEYSIR_SKIP_LOG (when set) and to stderr.
void RecordSkip(const std::string& test, const std::string& why);

}  // namespace geysir::testing

// Leaves the test case because `why` (a prerequisite CI always has: root, cgroups, a binary of
// this build, a package of deploy/packages.txt) is missing here; under CI it fails instead.
#define GEYSIR_SKIP(why)                                                                         \
  do {                                                                                           \
    const std::string geysir_skip_why_ = (why);                                                  \
    if (::geysir::testing::SkipsMustFail()) FAIL("required under CI, but missing: " << geysir_skip_why_); \
    ::geysir::testing::RecordSkip(::Catch::getResultCapture().getCurrentTestName(), geysir_skip_why_);   \
    WARN("skipped: " << geysir_skip_why_);                                                       \
    return;                                                                                      \
  } while (0)

// Leaves the test case because the running kernel (or this build's configuration) lacks what the
// test exercises, and says so even under CI without failing. Only for what CI cannot promise:
// CI's kernel is whatever its host boots (Debian 12's own is 6.1, which has neither restore
// mode's userfaultfd write-protect, Linux 6.7, nor Landlock signal scoping, Linux 6.12), and a
// sanitizer's build reserves more address space than restore mode tracks. Every use must have a
// sibling test that checks what the code does without the feature (the fallback), so the path CI
// does take is covered; the comment at the use names it.
#define GEYSIR_SKIP_UNSUPPORTED(why)                                                            \
  do {                                                                                           \
    const std::string geysir_skip_why_ = (why);                                                  \
    ::geysir::testing::RecordSkip(::Catch::getResultCapture().getCurrentTestName(),              \
                                  geysir_skip_why_ + " (not required under CI)");                \
    WARN("skipped: " << geysir_skip_why_);                                                       \
    return;                                                                                      \
  } while (0)
