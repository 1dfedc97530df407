// ScheduleExpression: an EventBridge schedule expression, parsed and evaluated as AWS documents
// it (EventBridge "Schedule expressions for rules" and EventBridge Scheduler "Schedule types"):
//
//   rate(1 minute) | rate(N minutes) | rate(1 hour) | rate(N hours) | rate(1 day) | rate(N days)
//     The unit is singular exactly when N is 1. Fires every N units after the schedule's
//     anchor (its creation or start time); days are 24-hour durations, whatever the time zone.
//   cron(minutes hours day-of-month month day-of-week year)
//     minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7 or
//     SUN-SAT (1 = Sunday), year 1970-2199. Every field takes "*", "a", "a-b", "a,b,...",
//     "a/n", "*/n", "a-b/n"; day-of-month also "?", "L" (last day), "nW" (weekday nearest day
//     n, never leaving the month), "LW" (last weekday); day-of-week also "?", "L" (Saturday),
//     "nL" (last weekday n of the month), "n#k" (k-th weekday n). Exactly one of day-of-month
//     and day-of-week is "?". Evaluated in the schedule's time zone (UTC by default).
//   at(yyyy-mm-ddThh:mm:ss)
//     EventBridge Scheduler's one-time schedule, in the schedule's time zone.
//
// Daylight-saving transitions are handled as EventBridge Scheduler documents: a cron time that
// does not exist (spring forward) is skipped; a time that happens twice (fall back) fires once,
// at its first occurrence.
//
// Thread safety: an immutable value after Parse.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/triggers/timezone.h"
#include "base/status.h"

namespace geysir::control::triggers {

class ScheduleExpression {
 public:
  enum class Kind { kRate, kCron, kAt };

  // kInvalidArgument with a message naming the problem. (EventBridge's own reply is the terse
  // "Parameter ScheduleExpression is not valid."; the events service sends that and logs ours.)
  static Result<ScheduleExpression> Parse(std::string_view text);

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }
  // kRate: the period in milliseconds.
  int64_t period_ms() const { return period_ms_; }

  // The first firing strictly after `after_ms` (UTC milliseconds), or nullopt if none is left
  // (an at() in the past, a cron whose years are over). `anchor_ms` is the start of a rate
  // schedule (firings at anchor + k * period, k >= 1); `time_scale` divides a rate's period
  // (test hook: 60 makes rate(1 minute) fire every second). Cron and at() ignore both.
  std::optional<int64_t> NextAfter(int64_t after_ms, const TimeZone& tz, int64_t anchor_ms = 0,
                                   double time_scale = 1.0) const;

 private:
  struct Cron {
    std::bitset<60> minutes;
    std::bitset<24> hours;
    std::bitset<32> dom;           // 1..31
    bool dom_any = false;          // "?" or "*" with day-of-week "?"
    bool dom_question = false;
    bool dom_last = false;         // L
    bool dom_last_weekday = false; // LW
    std::vector<int> dom_nearest;  // nW
    std::bitset<13> months;        // 1..12
    std::bitset<8> dow;            // 1..7 (1 = Sunday)
    bool dow_question = false;
    std::vector<int> dow_last;                   // nL
    std::vector<std::pair<int, int>> dow_nth;    // n#k
    std::bitset<230> years;        // 1970..2199
  };
  bool DayMatches(int64_t days) const;

  Kind kind_ = Kind::kRate;
  std::string text_;
  int64_t period_ms_ = 0;
  Cron cron_;
  int64_t at_local_s_ = 0;
};

}  // namespace geysir::control::triggers
