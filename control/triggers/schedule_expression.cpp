// ScheduleExpression: see schedule_expression.h for the grammar and semantics.
#include "control/triggers/schedule_expression.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace geysir::control::triggers {
namespace {

constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2199;

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::vector<std::string> SplitSpaces(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

std::optional<int> Digits(std::string_view s) {
  if (s.empty() || s.size() > 6) return std::nullopt;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// One numeric cron field: bounds, optional names, and whether a-b may wrap (b < a).
struct FieldSpec {
  const char* what;
  int lo, hi;
  const char* const* names = nullptr;  // names[0] is value `lo`
  bool wraps = false;
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

std::optional<int> Value(const FieldSpec& f, std::string_view s) {
  if (auto v = Digits(s)) {
    if (*v < f.lo || *v > f.hi) return std::nullopt;
    return v;
  }
  if (f.names && s.size() == 3) {
    std::string up(s);
    for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (int i = 0; i <= f.hi - f.lo; ++i) {
      if (up == f.names[i]) return f.lo + i;
    }
  }
  return std::nullopt;
}

// Sets the values one comma-separated item names ("*", "a", "a-b", "*/n", "a/n", "a-b/n").
Status ParseItem(const FieldSpec& f, std::string_view item, std::vector<bool>& set) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid(std::string("the ") + f.what + " field '" + std::string(item.substr(0, 40)) + "' " + why);
  };
  std::string_view range = item;
  int step = 1;
  if (size_t slash = item.find('/'); slash != std::string_view::npos) {
    auto s = Digits(item.substr(slash + 1));
    if (!s || *s < 1) return bad("has a step that is not a positive number");
    step = *s;
    range = item.substr(0, slash);
  }
  int a = f.lo, b = f.hi;
  if (range == "*") {
    // all values
  } else if (size_t dash = range.find('-'); dash != std::string_view::npos) {
    auto x = Value(f, range.substr(0, dash));
    auto y = Value(f, range.substr(dash + 1));
    if (!x || !y) return bad("is not a range of " + std::to_string(f.lo) + "-" + std::to_string(f.hi));
    a = *x;
    b = *y;
    if (b < a && !f.wraps) return bad("is a range that ends before it starts");
  } else {
    auto x = Value(f, range);
    if (!x) return bad("is not a value in " + std::to_string(f.lo) + "-" + std::to_string(f.hi));
    a = *x;
    b = item.find('/') != std::string_view::npos ? f.hi : *x;  // "a/n" runs to the end
  }
  const int span = f.hi - f.lo + 1;
  const int count = b >= a ? b - a + 1 : (f.hi - a + 1) + (b - f.lo + 1);
  for (int i = 0; i < count; i += step) {
    int v = a + i;
    if (v > f.hi) v -= span;
    set[static_cast<size_t>(v - f.lo)] = true;
  }
  return Status::Ok();
}

Status ParseList(const FieldSpec& f, std::string_view field, std::vector<bool>& set) {
  set.assign(static_cast<size_t>(f.hi - f.lo + 1), false);
  for (const std::string& item : Split(field, ',')) {
    if (item.empty()) return Status::Invalid(std::string("the ") + f.what + " field '" + std::string(field) + "' has an empty item");
    GEYSIR_RETURN_IF_ERROR(ParseItem(f, item, set));
  }
  return Status::Ok();
}

bool IsWeekday(int64_t days) {
  unsigned wd = WeekdayFromDays(days);
  return wd != 0 && wd != 6;
}

}  // namespace

Result<ScheduleExpression> ScheduleExpression::Parse(std::string_view raw) {
  ScheduleExpression e;
  e.text_ = std::string(raw);
  const std::string text = Trim(raw);
  auto inner_of = [&](std::string_view prefix) -> std::optional<std::string> {
    if (text.size() < prefix.size() + 1 || text.compare(0, prefix.size(), prefix) != 0 || text.back() != ')') {
      return std::nullopt;
    }
    return Trim(std::string_view(text).substr(prefix.size(), text.size() - prefix.size() - 1));
  };
  if (auto inner = inner_of("rate(")) {
    std::vector<std::string> parts = SplitSpaces(*inner);
    if (parts.size() != 2) return Status::Invalid("a rate expression is rate(VALUE UNIT), e.g. rate(5 minutes)");
    auto n = Digits(parts[0]);
    if (!n || *n < 1) return Status::Invalid("the rate value '" + parts[0].substr(0, 20) + "' is not a positive whole number");
    const std::string& unit = parts[1];
    int64_t unit_ms = 0;
    std::string singular;
    if (unit == "minute" || unit == "minutes") {
      unit_ms = 60'000;
      singular = "minute";
    } else if (unit == "hour" || unit == "hours") {
      unit_ms = 3'600'000;
      singular = "hour";
    } else if (unit == "day" || unit == "days") {
      unit_ms = 86'400'000;
      singular = "day";
    } else {
      return Status::Invalid("the rate unit '" + unit.substr(0, 20) + "' is not minute(s), hour(s) or day(s)");
    }
    if ((*n == 1) != (unit == singular)) {
      return Status::Invalid("the rate unit must be singular when the value is 1 and plural otherwise (rate(1 " +
                             singular + "), rate(5 " + singular + "s))");
    }
    e.kind_ = Kind::kRate;
    e.period_ms_ = *n * unit_ms;
    return e;
  }
  if (auto inner = inner_of("at(")) {
    // yyyy-mm-ddThh:mm:ss
    const std::string& s = *inner;
    auto num = [&](size_t at, size_t len) { return Digits(std::string_view(s).substr(at, len)); };
    if (s.size() != 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
      return Status::Invalid("a one-time expression is at(yyyy-mm-ddThh:mm:ss)");
    }
    auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), sec = num(17, 2);
    if (!y || !mo || !d || !h || !mi || !sec || *mo < 1 || *mo > 12 || *d < 1 ||
        *d > static_cast<int>(DaysInMonth(*y, static_cast<unsigned>(*mo))) || *h > 23 || *mi > 59 || *sec > 59) {
      return Status::Invalid("'" + s + "' is not a valid date and time");
    }
    e.kind_ = Kind::kAt;
    e.at_local_s_ = DaysFromCivil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d)) * 86400 + *h * 3600 +
                    *mi * 60 + *sec;
    return e;
  }
  auto inner = inner_of("cron(");
  if (!inner) return Status::Invalid("a schedule expression is rate(...), cron(...) or at(...)");
  std::vector<std::string> f = SplitSpaces(*inner);
  if (f.size() != 6) {
    return Status::Invalid("a cron expression has six fields (minutes hours day-of-month month day-of-week year); got " +
                           std::to_string(f.size()));
  }
  e.kind_ = Kind::kCron;
  Cron& c = e.cron_;
  std::vector<bool> set;
  GEYSIR_RETURN_IF_ERROR(ParseList({"minutes", 0, 59, nullptr, true}, f[0], set));
  for (int i = 0; i < 60; ++i) c.minutes[static_cast<size_t>(i)] = set[static_cast<size_t>(i)];
  GEYSIR_RETURN_IF_ERROR(ParseList({"hours", 0, 23, nullptr, true}, f[1], set));
  for (int i = 0; i < 24; ++i) c.hours[static_cast<size_t>(i)] = set[static_cast<size_t>(i)];
  GEYSIR_RETURN_IF_ERROR(ParseList({"month", 1, 12, kMonthNames, true}, f[3], set));
  for (int i = 1; i <= 12; ++i) c.months[static_cast<size_t>(i)] = set[static_cast<size_t>(i - 1)];
  GEYSIR_RETURN_IF_ERROR(ParseList({"year", kMinYear, kMaxYear, nullptr, false}, f[5], set));
  for (int i = 0; i <= kMaxYear - kMinYear; ++i) c.years[static_cast<size_t>(i)] = set[static_cast<size_t>(i)];

  const std::string& dom = f[2];
  const std::string& dow = f[4];
  c.dom_question = dom == "?";
  c.dow_question = dow == "?";
  if (c.dom_question == c.dow_question) {
    return Status::Invalid("exactly one of day-of-month and day-of-week must be '?' (e.g. cron(0 12 * * ? *))");
  }
  if (!c.dom_question) {
    for (const std::string& item : Split(dom, ',')) {
      if (item == "L") {
        c.dom_last = true;
      } else if (item == "LW") {
        c.dom_last_weekday = true;
      } else if (item.size() >= 2 && item.back() == 'W') {
        auto d = Digits(std::string_view(item).substr(0, item.size() - 1));
        if (!d || *d < 1 || *d > 31) return Status::Invalid("the day-of-month field '" + item + "' is not nW with n in 1-31");
        c.dom_nearest.push_back(*d);
      } else {
        std::vector<bool> days;
        GEYSIR_RETURN_IF_ERROR(ParseList({"day-of-month", 1, 31, nullptr, false}, item, days));
        for (int i = 1; i <= 31; ++i) {
          if (days[static_cast<size_t>(i - 1)]) c.dom[static_cast<size_t>(i)] = true;
        }
      }
    }
  } else {
    for (const std::string& item : Split(dow, ',')) {
      const FieldSpec spec{"day-of-week", 1, 7, kDayNames, true};
      if (item == "L") {
        c.dow[7] = true;
      } else if (item.size() >= 2 && item.back() == 'L') {
        auto d = Value(spec, std::string_view(item).substr(0, item.size() - 1));
        if (!d) return Status::Invalid("the day-of-week field '" + item + "' is not nL with n in 1-7 or SUN-SAT");
        c.dow_last.push_back(*d);
      } else if (size_t hash = item.find('#'); hash != std::string::npos) {
        auto d = Value(spec, std::string_view(item).substr(0, hash));
        auto k = Digits(std::string_view(item).substr(hash + 1));
        if (!d || !k || *k < 1 || *k > 5) {
          return Status::Invalid("the day-of-week field '" + item + "' is not n#k with n in 1-7 and k in 1-5");
        }
        c.dow_nth.emplace_back(*d, *k);
      } else {
        std::vector<bool> days;
        GEYSIR_RETURN_IF_ERROR(ParseList(spec, item, days));
        for (int i = 1; i <= 7; ++i) {
          if (days[static_cast<size_t>(i - 1)]) c.dow[static_cast<size_t>(i)] = true;
        }
      }
    }
  }
  return e;
}

bool ScheduleExpression::DayMatches(int64_t days) const {
  const Cron& c = cron_;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  const unsigned dim = DaysInMonth(y, m);
  if (!c.dom_question) {
    if (c.dom[d]) return true;
    if (c.dom_last && d == dim) return true;
    if (c.dom_last_weekday) {
      int64_t last = days - d + dim;
      while (!IsWeekday(last)) --last;
      if (last == days) return true;
    }
    for (int n : c.dom_nearest) {
      if (static_cast<unsigned>(n) > dim) continue;
      int64_t target = days - d + static_cast<unsigned>(n);
      unsigned wd = WeekdayFromDays(target);
      if (wd == 6) target += (n == 1) ? 2 : -1;                          // Saturday
      if (wd == 0) target += (static_cast<unsigned>(n) == dim) ? -2 : 1;  // Sunday
      if (target == days) return true;
    }
    return false;
  }
  const int dow = static_cast<int>(WeekdayFromDays(days)) + 1;  // 1 = Sunday
  if (c.dow[static_cast<size_t>(dow)]) return true;
  for (int n : c.dow_last) {
    if (n == dow && d + 7 > dim) return true;
  }
  for (auto [n, k] : c.dow_nth) {
    if (n == dow && (d - 1) / 7 + 1 == static_cast<unsigned>(k)) return true;
  }
  return false;
}

std::optional<int64_t> ScheduleExpression::NextAfter(int64_t after_ms, const TimeZone& tz, int64_t anchor_ms,
                                                      double time_scale) const {
  if (kind_ == Kind::kRate) {
    int64_t period = static_cast<int64_t>(std::llround(static_cast<double>(period_ms_) / std::max(time_scale, 1e-9)));
    period = std::max<int64_t>(period, 1);
    if (after_ms < anchor_ms) return anchor_ms + period;
    int64_t k = (after_ms - anchor_ms) / period + 1;
    return anchor_ms + k * period;
  }
  if (kind_ == Kind::kAt) {
    std::vector<int64_t> utc = tz.FromLocal(at_local_s_);
    // A time in a spring-forward gap is read with the offset in force before the gap.
    int64_t when = utc.empty() ? at_local_s_ - tz.OffsetAt(at_local_s_ - 86400) : utc.front();
    if (when * 1000 > after_ms) return when * 1000;
    return std::nullopt;
  }
  const Cron& c = cron_;
  const int64_t after_s = after_ms >= 0 ? after_ms / 1000 : (after_ms - 999) / 1000;
  const int64_t local_start = after_s + tz.OffsetAt(after_s);
  const int64_t end_day = DaysFromCivil(kMaxYear + 1, 1, 1);
  int64_t day = (local_start >= 0 ? local_start / 86400 : (local_start - 86399) / 86400) - 1;
  day = std::max(day, DaysFromCivil(kMinYear, 1, 1));
  while (day < end_day) {
    int64_t y = 0;
    unsigned m = 0, d = 0;
    CivilFromDays(day, &y, &m, &d);
    if (!c.years[static_cast<size_t>(y - kMinYear)]) {
      day = DaysFromCivil(y + 1, 1, 1);
      continue;
    }
    if (!c.months[m]) {
      day = m == 12 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, m + 1, 1);
      continue;
    }
    if (DayMatches(day)) {
      for (int h = 0; h < 24; ++h) {
        if (!c.hours[static_cast<size_t>(h)]) continue;
        // Hours well before `after` cannot fire after it (offsets never jump back 3 h in a day).
        if (day * 86400 + h * 3600 + 3599 < local_start - 3 * 3600) continue;
        for (int mi = 0; mi < 60; ++mi) {
          if (!c.minutes[static_cast<size_t>(mi)]) continue;
          const int64_t local = day * 86400 + h * 3600 + mi * 60;
          if (tz.is_utc()) {
            if (local * 1000 > after_ms) return local * 1000;
            continue;
          }
          std::vector<int64_t> utc = tz.FromLocal(local);
          if (utc.empty()) continue;                      // spring forward: skipped
          if (utc.front() * 1000 > after_ms) return utc.front() * 1000;  // fall back: first only
        }
      }
    }
    ++day;
  }
  return std::nullopt;
}

}  // namespace geysir::control::triggers
