// TimeZone: the UTC offsets of one IANA time zone over time, read from the system's TZif files
// (/usr/share/zoneinfo, Debian's tzdata package). GCC 12's libstdc++ has no std::chrono::tzdb,
// so Geysir reads the files itself: the 64-bit transition table of a version 2+ TZif file, and
// its POSIX TZ footer ("EST5EDT,M3.2.0,M11.1.0") for instants after the last transition, so a
// "slim" file still answers for any year up to 2199.
//
// Local times are expressed as "local seconds": the wall-clock reading counted as if it were
// UTC (2026-03-08 02:30 local = days_from_civil(2026,3,8)*86400 + 2.5 h). FromLocal turns one
// back into the instants that show it: none in a spring-forward gap, two in a fall-back
// overlap (earliest first).
//
// Thread safety: an immutable value after Load; safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace geysir::control::triggers {

// Proleptic Gregorian calendar helpers (days since 1970-01-01).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);
void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day);
// 0 = Sunday ... 6 = Saturday.
unsigned WeekdayFromDays(int64_t days);
unsigned DaysInMonth(int64_t year, unsigned month);

class TimeZone {
 public:
  // "UTC" (and "Etc/UTC", "GMT", "Z") need no file. Other names must be an IANA zone under
  // `zoneinfo_dir`; kInvalidArgument names what was wrong (unknown zone, not a TZif file).
  static Result<TimeZone> Load(std::string_view name, const std::string& zoneinfo_dir = "/usr/share/zoneinfo");
  static TimeZone Utc();

  const std::string& name() const { return name_; }
  bool is_utc() const { return utc_; }
  // Seconds east of UTC in force at `utc_s`.
  int32_t OffsetAt(int64_t utc_s) const;
  // The instants (UTC seconds, ascending) whose local reading is `local_s`: 0, 1 or 2.
  std::vector<int64_t> FromLocal(int64_t local_s) const;

  // A POSIX TZ rule (the TZif footer). Public for tests.
  struct PosixRule {
    bool valid = false;
    int32_t std_offset = 0;  // seconds east of UTC
    bool has_dst = false;
    int32_t dst_offset = 0;
    // A transition date: kind 'M' (month, week 1-5, weekday 0-6), 'J' (1-365, no Feb 29),
    // 'N' (0-365 zero-based day of year); time of day in local seconds (may be negative or > 24h).
    struct When {
      char kind = 'M';
      int month = 0, week = 0, weekday = 0, day = 0;
      int32_t time = 7200;
    };
    When start, end;
    int32_t OffsetAt(int64_t utc_s) const;
  };
  static bool ParsePosixRule(std::string_view text, PosixRule* out);

 private:
  std::string name_;
  bool utc_ = false;
  std::vector<int64_t> transitions_;   // UTC seconds, ascending
  std::vector<int32_t> offsets_;       // offset in force from transitions_[i]
  int32_t initial_offset_ = 0;         // before the first transition
  PosixRule footer_;
};

}  // namespace geysir::control::triggers
