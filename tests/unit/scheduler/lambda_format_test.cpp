#include "scheduler/lambda_format.h"

#include <catch2/catch.hpp>

using namespace geysir::scheduler;

TEST_CASE("Lambda log lines") {
  CHECK(StartLine("abc", "$LATEST") == "START RequestId: abc Version: $LATEST");
  CHECK(EndLine("abc") == "END RequestId: abc");
  CHECK(ReportLine("abc", 1.234, 2, 128, 12, std::nullopt) ==
        "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 12 MB\t");
  CHECK(ReportLine("abc", 0.5, 1, 256, 30, 85.2) ==
        "REPORT RequestId: abc\tDuration: 0.50 ms\tBilled Duration: 1 ms\tMemory Size: 256 MB\tMax Memory Used: 30 MB\t"
        "Init Duration: 85.20 ms\t");
}

TEST_CASE("billing and memory rounding") {
  CHECK(BilledMs(0) == 1);
  CHECK(BilledMs(0.2) == 1);
  CHECK(BilledMs(1.0) == 1);
  CHECK(BilledMs(1.01) == 2);
  CHECK(ToMb(0) == 0);
  CHECK(ToMb(1) == 1);
  CHECK(ToMb(1024 * 1024) == 1);
  CHECK(ToMb(1024 * 1024 + 1) == 2);
}

TEST_CASE("timeout and exit wording") {
  CHECK(IsoTime(1795000000123) == "2026-11-18T11:06:40.123Z");
  CHECK(TimeoutMessage(1795000000123, "rid", 3.0) == "2026-11-18T11:06:40.123Z rid Task timed out after 3.00 seconds");
  CHECK(ExitDescription(1, 0) == "exit status 1");
  CHECK(ExitDescription(-1, 9) == "signal: killed");
  CHECK(ExitDescription(-1, 6) == "signal: aborted");
  CHECK(ErrorTypeOf(R"({"errorType":"X.Y"})", "F") == "X.Y");
  CHECK(ErrorTypeOf("not json", "F") == "F");
  CHECK(ErrorTypeOf(R"({"errorType":""})", "F") == "F");
}

TEST_CASE("lines and tails") {
  CHECK(SplitLines("a\nb\n") == std::vector<std::string>{"a", "b"});
  CHECK(SplitLines("a\n\nb") == std::vector<std::string>{"a", "", "b"});
  CHECK(SplitLines("").empty());
  CHECK(Tail({"abc", "def"}, 100) == "abc\ndef\n");
  CHECK(Tail({"abc", "def"}, 5) == "\ndef\n");
  // Never starts inside a UTF-8 character.
  CHECK(Tail({"\xc3\xa9\xc3\xa9"}, 4) == "\xc3\xa9\n");
}
