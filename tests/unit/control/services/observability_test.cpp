// CloudWatch Logs filter patterns and CloudWatch's metric arithmetic (pure parts of
// control/services/logs.cpp and cloudwatch.cpp).
#include <catch2/catch.hpp>

#include "control/aws_error.h"
#include "control/services/cloudwatch.h"
#include "control/services/logs.h"

using namespace geysir::control;

TEST_CASE("filter patterns: terms, phrases, optional and excluded terms", "[control][logs]") {
  auto compile = [](const char* p) {
    auto filter = CompileFilterPattern(p);
    REQUIRE(filter.ok());
    return *filter;
  };
  auto all = compile("");
  CHECK(all("anything"));
  auto terms = compile("ERROR db");
  CHECK(terms("ERROR: db down"));
  CHECK_FALSE(terms("ERROR: cache down"));
  CHECK_FALSE(terms("error: db down"));  // case-sensitive
  auto phrase = compile("\"db down\" ERROR");
  CHECK(phrase("ERROR: db down"));
  CHECK_FALSE(phrase("ERROR: down db"));
  auto optional = compile("?WARN ?ERROR");
  CHECK(optional("a WARN"));
  CHECK(optional("an ERROR"));
  CHECK_FALSE(optional("INFO"));
  auto excluded = compile("GET -health");
  CHECK(excluded("GET /users"));
  CHECK_FALSE(excluded("GET /health"));
  auto is_invalid = [](const char* p) {
    auto filter = CompileFilterPattern(p);
    return !filter.ok() && filter.status().code() == geysir::Code::kInvalidArgument &&
           filter.status().aws_type() == "InvalidParameterException";
  };
  CHECK(is_invalid("{ $.level = \"error\" }"));
  CHECK(is_invalid("[ip, user]"));
  CHECK(is_invalid("\"unterminated"));
}

TEST_CASE("metric buckets from per-minute counters", "[control][cloudwatch]") {
  const int64_t t0 = 1'800'000'000'000;  // a minute boundary
  std::vector<MetricMinute> m = {
      {t0, 3, 1, 30.0, 5.0, 15.0},
      {t0 + 60'000, 2, 0, 10.0, 4.0, 6.0},
      {t0 + 30 * 60'000, 5, 5, 50.0, 10.0, 10.0},
  };
  // Period 1440 s (Zappa's): minutes 0 and 1 share the first bucket, minute 30 the second.
  auto inv = Aggregate(m, "Invocations", t0, 1440);
  REQUIRE(inv.size() == 2);
  CHECK(inv[0].timestamp_ms == t0);
  CHECK(inv[0].sum == 5);
  CHECK(inv[1].timestamp_ms == t0 + 1440'000);
  CHECK(inv[1].sum == 5);
  auto err = Aggregate(m, "Errors", t0, 1440);
  CHECK(err[0].sum == 1);
  CHECK(err[0].sample_count == 5);
  CHECK(err[0].minimum == 0);
  CHECK(err[0].maximum == 1);
  CHECK(err[1].minimum == 1);  // every invocation in it failed
  auto dur = Aggregate(m, "Duration", t0, 3600);
  REQUIRE(dur.size() == 1);
  CHECK(dur[0].sum == 90.0);
  CHECK(dur[0].minimum == 4.0);
  CHECK(dur[0].maximum == 15.0);
  CHECK(dur[0].sample_count == 10);
  // A start inside a minute: that minute, and the next one (it begins inside the first 60 s
  // bucket), land in the first bucket.
  auto mid = Aggregate(m, "Invocations", t0 + 20'000, 60);
  REQUIRE(mid.size() == 2);
  CHECK(mid[0].timestamp_ms == t0 + 20'000);
  CHECK(mid[0].sum == 5);
  CHECK(mid[1].timestamp_ms == t0 + 20'000 + 29 * 60'000);
}

TEST_CASE("timestamps as the query protocol and the CLI send them", "[control][cloudwatch]") {
  CHECK(ParseTimestampMs("2026-11-27T08:30:00Z") == 1795768200000);
  CHECK(ParseTimestampMs("2026-11-27T08:30:00.250Z") == 1795768200250);
  CHECK(ParseTimestampMs("2026-11-27T08:30:00.123456Z") == 1795768200123);
  CHECK(ParseTimestampMs("2026-11-27T09:30:00+01:00") == 1795768200000);
  CHECK(ParseTimestampMs("1795768200") == 1795768200000);
  CHECK(ParseTimestampMs("1795768200.5") == 1795768200500);
  CHECK_FALSE(ParseTimestampMs("yesterday"));
  CHECK_FALSE(ParseTimestampMs("2026-11-27"));
  CHECK_FALSE(ParseTimestampMs("2026-11-27T08:30:00Q"));
}
