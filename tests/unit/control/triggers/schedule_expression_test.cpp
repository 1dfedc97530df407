// Schedule expressions and time zones (control/triggers): the examples of AWS's EventBridge
// documentation, and the edges: month ends, leap years, L/W at month boundaries, DST gaps and
// overlaps, invalid expressions.
#include "control/triggers/schedule_expression.h"

#include <catch2/catch.hpp>

#include "control/triggers/timezone.h"

using namespace geysir;
using namespace geysir::control::triggers;

namespace {

int64_t Utc(int64_t y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return (DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

std::string Iso(int64_t ms) {
  int64_t s = ms / 1000;
  int64_t y = 0;
  unsigned mo = 0, d = 0;
  CivilFromDays(s / 86400, &y, &mo, &d);
  char buf[64];
  int64_t r = s % 86400;
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(y), mo, d,
                static_cast<long long>(r / 3600), static_cast<long long>(r / 60 % 60), static_cast<long long>(r % 60));
  return buf;
}

ScheduleExpression P(const char* text) {
  Result<ScheduleExpression> e = ScheduleExpression::Parse(text);
  INFO(text << ": " << (e.ok() ? "" : e.status().ToString()));
  REQUIRE(e.ok());
  return *e;
}

// The next `n` firings after `from`, as ISO strings.
std::vector<std::string> Next(const char* text, int64_t from, int n, const TimeZone& tz = TimeZone::Utc()) {
  ScheduleExpression e = P(text);
  std::vector<std::string> out;
  int64_t t = from;
  for (int i = 0; i < n; ++i) {
    auto next = e.NextAfter(t, tz);
    if (!next) break;
    out.push_back(Iso(*next));
    t = *next;
  }
  return out;
}

TimeZone Zone(const char* name) {
  Result<TimeZone> z = TimeZone::Load(name);
  REQUIRE(z.ok());
  return *z;
}

}  // namespace

TEST_CASE("calendar helpers") {
  CHECK(DaysFromCivil(1970, 1, 1) == 0);
  CHECK(DaysFromCivil(2000, 3, 1) == 11017);
  CHECK(WeekdayFromDays(0) == 4);  // Thursday
  CHECK(WeekdayFromDays(DaysFromCivil(2026, 11, 27)) == 5);  // Friday
  CHECK(DaysInMonth(2024, 2) == 29);
  CHECK(DaysInMonth(2100, 2) == 28);
  CHECK(DaysInMonth(2000, 2) == 29);
  int64_t y;
  unsigned m, d;
  CivilFromDays(DaysFromCivil(2199, 12, 31), &y, &m, &d);
  CHECK((y == 2199 && m == 12 && d == 31));
}

TEST_CASE("rate expressions") {
  CHECK(P("rate(1 minute)").period_ms() == 60'000);
  CHECK(P("rate(5 minutes)").period_ms() == 300'000);
  CHECK(P("rate(1 hour)").period_ms() == 3'600'000);
  CHECK(P("rate(12 hours)").period_ms() == 12 * 3'600'000);
  CHECK(P("rate(1 day)").period_ms() == 86'400'000);
  CHECK(P("rate(7 days)").period_ms() == 7 * 86'400'000LL);
  ScheduleExpression e = P("rate(5 minutes)");
  const int64_t anchor = Utc(2026, 11, 27, 8, 0, 30);
  CHECK(*e.NextAfter(anchor, TimeZone::Utc(), anchor) == anchor + 300'000);
  CHECK(*e.NextAfter(anchor + 299'999, TimeZone::Utc(), anchor) == anchor + 300'000);
  CHECK(*e.NextAfter(anchor + 300'000, TimeZone::Utc(), anchor) == anchor + 600'000);
  CHECK(*e.NextAfter(anchor - 5000, TimeZone::Utc(), anchor) == anchor + 300'000);
  // The test hook: time scaled 60x.
  CHECK(*P("rate(1 minute)").NextAfter(anchor, TimeZone::Utc(), anchor, 60) == anchor + 1000);
  // Days are 24-hour durations even across a DST change.
  TimeZone ny = Zone("America/New_York");
  const int64_t a = Utc(2026, 3, 7, 17);  // noon EST
  CHECK(*P("rate(1 day)").NextAfter(a, ny, a) == a + 86'400'000);
}

TEST_CASE("invalid expressions are refused with a reason") {
  for (const char* bad : {"rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(5 weeks)", "rate(-1 minutes)",
                          "rate(5)", "rate 5 minutes", "rate(five minutes)", "cron(0 12 * * * *)",
                          "cron(0 12 ? * ? *)", "cron(0 12 * * ?)", "cron(0 12 * * ? * *)", "cron(60 * * * ? *)",
                          "cron(0 24 * * ? *)", "cron(0 0 32 * ? *)", "cron(0 0 0 * ? *)", "cron(0 0 * 13 ? *)",
                          "cron(0 0 ? * 8 *)", "cron(0 0 ? * 0 *)", "cron(0 0 * * ? 1969)", "cron(0 0 * * ? 2200)",
                          "cron(0 0 ? * 2#6 *)", "cron(0 0 32W * ? *)", "cron(0/0 * * * ? *)", "cron(0 0 * FOO ? *)",
                          "cron(0 0 10-5 * ? *)", "cron(0,,5 * * * ? *)", "cron()", "", "at(2026-02-30T10:00:00)",
                          "at(2026-11-27 10:00:00)", "cron(0 0 * * ? 2030-2020)", "every 5 minutes"}) {
    INFO(bad);
    Result<ScheduleExpression> e = ScheduleExpression::Parse(bad);
    CHECK(!e.ok());
  }
  Result<ScheduleExpression> e = ScheduleExpression::Parse("cron(0 12 * * * *)");
  REQUIRE(!e.ok());
  CHECK(e.status().message().find("'?'") != std::string::npos);
}

TEST_CASE("AWS documentation cron examples") {
  const int64_t from = Utc(2026, 11, 27, 8, 15);  // a Friday
  // 10:15 AM UTC every day
  CHECK(Next("cron(15 10 * * ? *)", from, 2) == std::vector<std::string>{"2026-11-27T10:15:00Z", "2026-11-28T10:15:00Z"});
  // 6:00 PM Monday through Friday
  CHECK(Next("cron(0 18 ? * MON-FRI *)", from, 3) ==
        std::vector<std::string>{"2026-11-27T18:00:00Z", "2026-11-30T18:00:00Z", "2026-12-01T18:00:00Z"});
  // 8:00 AM on the first day of the month
  CHECK(Next("cron(0 8 1 * ? *)", from, 2) == std::vector<std::string>{"2026-12-01T08:00:00Z", "2027-01-01T08:00:00Z"});
  // Every 10 min on weekdays
  CHECK(Next("cron(0/10 * ? * MON-FRI *)", Utc(2026, 11, 27, 23, 45), 3) ==
        std::vector<std::string>{"2026-11-27T23:50:00Z", "2026-11-30T00:00:00Z", "2026-11-30T00:10:00Z"});
  // Every 5 minutes Monday through Friday between 8:00 am and 5:55 pm
  CHECK(Next("cron(0/5 8-17 ? * MON-FRI *)", Utc(2026, 11, 27, 17, 54), 2) ==
        std::vector<std::string>{"2026-11-27T17:55:00Z", "2026-11-30T08:00:00Z"});
  // 9 a.m. on the first Monday of each month
  CHECK(Next("cron(0 9 ? * 2#1 *)", from, 2) == std::vector<std::string>{"2026-12-07T09:00:00Z", "2027-01-04T09:00:00Z"});
  // 12:00 every day (the brief's example) and every 15 minutes
  CHECK(Next("cron(0 12 * * ? *)", from, 1) == std::vector<std::string>{"2026-11-27T12:00:00Z"});
  CHECK(Next("cron(0/15 * * * ? *)", from, 2) == std::vector<std::string>{"2026-11-27T08:30:00Z", "2026-11-27T08:45:00Z"});
  // Names are case-insensitive lists; month names; years.
  CHECK(Next("cron(0 0 1 jan,JUL ? 2027-2028)", from, 5) ==
        std::vector<std::string>{"2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z", "2028-01-01T00:00:00Z",
                                 "2028-07-01T00:00:00Z"});
  // Wrapping day-of-week range FRI-MON.
  CHECK(Next("cron(0 0 ? * FRI-MON *)", from, 4) ==
        std::vector<std::string>{"2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "2026-11-30T00:00:00Z",
                                 "2026-12-04T00:00:00Z"});
  // Exactly on a firing time: strictly after.
  CHECK(Next("cron(15 10 * * ? *)", Utc(2026, 11, 27, 10, 15), 1) == std::vector<std::string>{"2026-11-28T10:15:00Z"});
  // Years over: nothing left.
  CHECK(Next("cron(0 0 * * ? 2020)", from, 1).empty());
}

TEST_CASE("month ends and leap years") {
  CHECK(Next("cron(0 0 31 * ? *)", Utc(2026, 1, 31, 1), 3) ==
        std::vector<std::string>{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"});
  CHECK(Next("cron(0 0 29 2 ? *)", Utc(2026, 1, 1), 2) ==
        std::vector<std::string>{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"});
  // 2100 is not a leap year.
  CHECK(Next("cron(0 0 29 2 ? 2097-2199)", Utc(2097, 1, 1), 2) ==
        std::vector<std::string>{"2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z"});
  CHECK(Next("cron(0 0 L * ? *)", Utc(2028, 1, 15), 3) ==
        std::vector<std::string>{"2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"});
  CHECK(Next("cron(0 0 L 2 ? *)", Utc(2026, 1, 1), 2) ==
        std::vector<std::string>{"2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z"});
  // Last Friday (6L) of the month; the fifth Friday (6#5) exists only in some months.
  CHECK(Next("cron(0 0 ? * 6L *)", Utc(2026, 11, 1), 2) ==
        std::vector<std::string>{"2026-11-27T00:00:00Z", "2026-12-25T00:00:00Z"});
  CHECK(Next("cron(0 0 ? * 6#5 *)", Utc(2026, 11, 1), 2) ==
        std::vector<std::string>{"2027-01-29T00:00:00Z", "2027-04-30T00:00:00Z"});
  // L in day-of-week alone is Saturday.
  CHECK(Next("cron(0 0 ? * L *)", Utc(2026, 11, 27), 1) == std::vector<std::string>{"2026-11-28T00:00:00Z"});
}

TEST_CASE("W and LW at month boundaries") {
  // 2026-08-01 is a Saturday: 1W is Monday the 3rd (never the previous month's 31st).
  CHECK(Next("cron(0 0 1W * ? 2026)", Utc(2026, 7, 15), 1) == std::vector<std::string>{"2026-08-03T00:00:00Z"});
  // 2026-05-31 is a Sunday: 31W is Friday the 29th (never June 1st).
  CHECK(Next("cron(0 0 31W * ? 2026)", Utc(2026, 5, 1), 1) == std::vector<std::string>{"2026-05-29T00:00:00Z"});
  // 15W on a Saturday (2026-08-15) is Friday the 14th; on a Sunday (2026-11-15) Monday the 16th.
  CHECK(Next("cron(0 0 15W * ? 2026)", Utc(2026, 8, 1), 4) ==
        std::vector<std::string>{"2026-08-14T00:00:00Z", "2026-09-15T00:00:00Z", "2026-10-15T00:00:00Z",
                                 "2026-11-16T00:00:00Z"});
  // 31W in a 30-day month does not fire.
  CHECK(Next("cron(0 0 31W 4-6 ? 2026)", Utc(2026, 4, 1), 2) ==
        std::vector<std::string>{"2026-05-29T00:00:00Z"});
  // LW: last weekday; 2026-10-31 is a Saturday, 2026-05-31 a Sunday.
  CHECK(Next("cron(0 0 LW * ? *)", Utc(2026, 10, 1), 2) ==
        std::vector<std::string>{"2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z"});
}

TEST_CASE("time zones from the system's TZif files") {
  TimeZone ny = Zone("America/New_York");
  CHECK(ny.OffsetAt(Utc(2026, 1, 15) / 1000) == -5 * 3600);
  CHECK(ny.OffsetAt(Utc(2026, 7, 15) / 1000) == -4 * 3600);
  // Far beyond any transition table: the POSIX footer rule.
  CHECK(ny.OffsetAt(Utc(2150, 7, 15) / 1000) == -4 * 3600);
  CHECK(ny.OffsetAt(Utc(2150, 12, 15) / 1000) == -5 * 3600);
  TimeZone syd = Zone("Australia/Sydney");
  CHECK(syd.OffsetAt(Utc(2150, 1, 15) / 1000) == 11 * 3600);
  CHECK(syd.OffsetAt(Utc(2150, 7, 15) / 1000) == 10 * 3600);
  CHECK(Zone("Asia/Kolkata").OffsetAt(Utc(2026, 1, 1) / 1000) == 19800);
  CHECK(!TimeZone::Load("Mars/Olympus_Mons").ok());
  CHECK(!TimeZone::Load("../../etc/passwd").ok());
  CHECK(!TimeZone::Load("/etc/passwd").ok());
  CHECK(TimeZone::Load("UTC").ok());
  TimeZone::PosixRule r;
  REQUIRE(TimeZone::ParsePosixRule("CET-1CEST,M3.5.0,M10.5.0/3", &r));
  CHECK(r.std_offset == 3600);
  CHECK(r.dst_offset == 7200);
  REQUIRE(TimeZone::ParsePosixRule("<+0330>-3:30", &r));
  CHECK(r.std_offset == 12600);
  CHECK(!TimeZone::ParsePosixRule("X", &r));
}

TEST_CASE("cron in a time zone, across DST gaps and overlaps") {
  TimeZone ny = Zone("America/New_York");
  // 9:00 New York time: 14:00Z in winter, 13:00Z in summer; DST began 2026-03-08.
  CHECK(Next("cron(0 9 * * ? *)", Utc(2026, 3, 6, 15), 3, ny) ==
        std::vector<std::string>{"2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"});
  // 2:30 does not exist on 2026-03-08 (02:00 -> 03:00): skipped that day.
  CHECK(Next("cron(30 2 * * ? *)", Utc(2026, 3, 7, 12), 2, ny) ==
        std::vector<std::string>{"2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"});
  // Every 30 minutes across the gap: 01:30 EST then 03:00 EDT.
  CHECK(Next("cron(0/30 * * * ? *)", Utc(2026, 3, 8, 6, 15), 3, ny) ==
        std::vector<std::string>{"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"});
  // 1:30 happens twice on 2026-11-01 (02:00 EDT -> 01:00 EST): fires once, at the first.
  CHECK(Next("cron(30 1 * * ? *)", Utc(2026, 10, 31, 12), 2, ny) ==
        std::vector<std::string>{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"});
  // Every 30 minutes across the overlap: the repeated hour is not repeated.
  CHECK(Next("cron(0/30 * * * ? *)", Utc(2026, 11, 1, 5, 10), 4, ny) ==
        std::vector<std::string>{"2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z",
                                 "2026-11-01T08:00:00Z"});
  // Southern hemisphere: Sydney leaves DST on 2026-04-05 (03:00 AEDT -> 02:00 AEST).
  TimeZone syd = Zone("Australia/Sydney");
  CHECK(Next("cron(30 2 * * ? *)", Utc(2026, 4, 4, 0), 2, syd) ==
        std::vector<std::string>{"2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"});
  // A one-time schedule in a zone.
  ScheduleExpression at = P("at(2026-12-24T18:00:00)");
  CHECK(Iso(*at.NextAfter(Utc(2026, 1, 1), ny)) == "2026-12-24T23:00:00Z");
  CHECK(!at.NextAfter(Utc(2027, 1, 1), ny));
}
