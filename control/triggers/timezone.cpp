// TimeZone: see timezone.h. The TZif layout is RFC 8536; the footer is a POSIX TZ string
// (POSIX.1-2017 section 8.3, with RFC 8536's extension of hours -167..167).
#include "control/triggers/timezone.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace geysir::control::triggers {

// Howard Hinnant's public-domain civil calendar algorithms, written out for int64 days.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* year, unsigned* month, unsigned* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = y + (*month <= 2);
}

unsigned WeekdayFromDays(int64_t z) { return static_cast<unsigned>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6); }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2) return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
  return kDays[m - 1];
}

namespace {

int64_t BigEndian(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  if (bytes == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}

// A zone name must stay inside the zoneinfo directory.
bool SafeZoneName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/') return false;
  if (name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
           c == '-' || c == '+';
  });
}

// --- POSIX TZ string parsing ---
struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }
};

bool ParseName(Cursor& c) {
  if (c.peek() == '<') {
    size_t close = c.s.find('>', c.i);
    if (close == std::string_view::npos) return false;
    c.i = close + 1;
    return true;
  }
  size_t start = c.i;
  while (!c.done() && ((c.peek() >= 'a' && c.peek() <= 'z') || (c.peek() >= 'A' && c.peek() <= 'Z'))) ++c.i;
  return c.i - start >= 3;
}

bool ParseNumber(Cursor& c, int* out) {
  size_t start = c.i;
  int v = 0;
  while (!c.done() && c.peek() >= '0' && c.peek() <= '9') {
    v = v * 10 + (c.peek() - '0');
    if (v > 100000) return false;
    ++c.i;
  }
  *out = v;
  return c.i > start;
}

// [+-]hh[:mm[:ss]] in seconds.
bool ParseHms(Cursor& c, int32_t* out) {
  int sign = 1;
  if (c.peek() == '+' || c.peek() == '-') {
    sign = c.peek() == '-' ? -1 : 1;
    ++c.i;
  }
  int h = 0, m = 0, s = 0;
  if (!ParseNumber(c, &h) || h > 167) return false;
  if (c.peek() == ':') {
    ++c.i;
    if (!ParseNumber(c, &m) || m > 59) return false;
    if (c.peek() == ':') {
      ++c.i;
      if (!ParseNumber(c, &s) || s > 59) return false;
    }
  }
  *out = sign * (h * 3600 + m * 60 + s);
  return true;
}

bool ParseWhen(Cursor& c, TimeZone::PosixRule::When* w) {
  if (c.peek() == 'M') {
    ++c.i;
    w->kind = 'M';
    if (!ParseNumber(c, &w->month) || c.peek() != '.') return false;
    ++c.i;
    if (!ParseNumber(c, &w->week) || c.peek() != '.') return false;
    ++c.i;
    if (!ParseNumber(c, &w->weekday)) return false;
    if (w->month < 1 || w->month > 12 || w->week < 1 || w->week > 5 || w->weekday > 6) return false;
  } else if (c.peek() == 'J') {
    ++c.i;
    w->kind = 'J';
    if (!ParseNumber(c, &w->day) || w->day < 1 || w->day > 365) return false;
  } else {
    w->kind = 'N';
    if (!ParseNumber(c, &w->day) || w->day > 365) return false;
  }
  w->time = 7200;
  if (c.peek() == '/') {
    ++c.i;
    if (!ParseHms(c, &w->time)) return false;
  }
  return true;
}

// Local seconds (of `year`, in the offset in force before the transition) at which `w` happens.
int64_t WhenLocal(const TimeZone::PosixRule::When& w, int64_t year) {
  int64_t day = 0;
  if (w.kind == 'M') {
    int64_t first = DaysFromCivil(year, static_cast<unsigned>(w.month), 1);
    unsigned wd = WeekdayFromDays(first);
    int64_t d = first + (static_cast<int64_t>(w.weekday) - wd + 7) % 7 + 7 * (w.week - 1);
    int64_t last = first + DaysInMonth(year, static_cast<unsigned>(w.month)) - 1;
    while (d > last) d -= 7;  // week 5 = the last such weekday
    day = d;
  } else if (w.kind == 'J') {
    // 1..365, February 29 never counted.
    int64_t jan1 = DaysFromCivil(year, 1, 1);
    bool leap = DaysInMonth(year, 2) == 29;
    day = jan1 + w.day - 1 + ((leap && w.day >= 60) ? 1 : 0);
  } else {
    day = DaysFromCivil(year, 1, 1) + w.day;
  }
  return day * 86400 + w.time;
}

}  // namespace

bool TimeZone::ParsePosixRule(std::string_view text, PosixRule* out) {
  PosixRule r;
  Cursor c{text};
  if (!ParseName(c)) return false;
  int32_t std_west = 0;
  if (!ParseHms(c, &std_west)) return false;
  r.std_offset = -std_west;
  if (!c.done()) {
    if (!ParseName(c)) return false;
    r.has_dst = true;
    r.dst_offset = r.std_offset + 3600;
    if (!c.done() && c.peek() != ',') {
      int32_t dst_west = 0;
      if (!ParseHms(c, &dst_west)) return false;
      r.dst_offset = -dst_west;
    }
    if (c.peek() != ',') {
      // No rule: POSIX leaves it implementation-defined; use the US rule like glibc does.
      r.start = {'M', 3, 2, 0, 0, 7200};
      r.end = {'M', 11, 1, 0, 0, 7200};
    } else {
      ++c.i;
      if (!ParseWhen(c, &r.start) || c.peek() != ',') return false;
      ++c.i;
      if (!ParseWhen(c, &r.end)) return false;
    }
  }
  if (!c.done()) return false;
  r.valid = true;
  *out = r;
  return true;
}

int32_t TimeZone::PosixRule::OffsetAt(int64_t utc_s) const {
  if (!has_dst) return std_offset;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays((utc_s + std_offset) >= 0 ? (utc_s + std_offset) / 86400 : ((utc_s + std_offset) - 86399) / 86400, &y,
                &m, &d);
  // DST starts at `start` in standard time and ends at `end` in daylight time.
  const int64_t start_utc = WhenLocal(start, y) - std_offset;
  const int64_t end_utc = WhenLocal(end, y) - dst_offset;
  // "EST5EDT,0/0,J365/25": DST all year round.
  if (start.kind != 'M' && end.kind == 'J' && end.day == 365 && end.time >= 24 * 3600 && start.day == 0 &&
      start.time == 0) {
    return dst_offset;
  }
  if (start_utc < end_utc) return (utc_s >= start_utc && utc_s < end_utc) ? dst_offset : std_offset;
  // Southern hemisphere: DST spans the new year.
  return (utc_s >= end_utc && utc_s < start_utc) ? std_offset : dst_offset;
}

TimeZone TimeZone::Utc() {
  TimeZone z;
  z.name_ = "UTC";
  z.utc_ = true;
  return z;
}

Result<TimeZone> TimeZone::Load(std::string_view name, const std::string& zoneinfo_dir) {
  if (name == "UTC" || name == "Etc/UTC" || name == "GMT" || name == "Etc/GMT" || name == "Z") {
    TimeZone z = Utc();
    z.name_ = std::string(name);
    return z;
  }
  const std::string shown(name.substr(0, 64));
  if (!SafeZoneName(name)) return Status::Invalid("'" + shown + "' is not an IANA time zone name");
  const std::string path = zoneinfo_dir + "/" + std::string(name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return Status::Invalid("unknown time zone '" + shown + "' (no " + path +
                           "; names are IANA zones such as Europe/Paris or America/New_York)");
  }
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Sys(errno, "read " + path);
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > (1u << 20)) return Status::Invalid(path + " is too large to be a TZif file");
  }
  auto bad = [&](const char* why) { return Status::Invalid("'" + shown + "' is not a usable time zone: " + why); };
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t size = data.size();
  if (size < 44 || std::memcmp(p, "TZif", 4) != 0) return bad("not a TZif file");
  const char version = static_cast<char>(p[4]);
  auto counts = [&](size_t at, int64_t c[6]) {
    for (int i = 0; i < 6; ++i) c[i] = BigEndian(p + at + 20 + 4 * i, 4);
  };
  int64_t c[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  counts(0, c);
  auto block_size = [&](const int64_t k[6], int time_bytes) -> size_t {
    return static_cast<size_t>(k[3] * time_bytes + k[3] + k[4] * 6 + k[5] + k[2] * (time_bytes + 4) + k[1] + k[0]);
  };
  for (int i = 0; i < 6; ++i) {
    if (c[i] < 0 || c[i] > 100000) return bad("corrupt header");
  }
  size_t at = 44;
  int time_bytes = 4;
  if (version >= '2') {
    at += block_size(c, 4);
    if (size < at + 44 || std::memcmp(p + at, "TZif", 4) != 0) return bad("corrupt version 2 header");
    counts(at, c);
    for (int i = 0; i < 6; ++i) {
      if (c[i] < 0 || c[i] > 100000) return bad("corrupt header");
    }
    at += 44;
    time_bytes = 8;
  }
  if (size < at + block_size(c, time_bytes)) return bad("truncated");
  const int64_t timecnt = c[3], typecnt = c[4];
  if (typecnt < 1) return bad("no local time types");
  TimeZone z;
  z.name_ = std::string(name);
  const unsigned char* times = p + at;
  const unsigned char* idx = times + timecnt * time_bytes;
  const unsigned char* types = idx + timecnt;
  auto type_offset = [&](int64_t t) { return static_cast<int32_t>(BigEndian(types + 6 * t, 4)); };
  z.initial_offset_ = type_offset(0);
  for (int64_t i = 0; i < timecnt; ++i) {
    if (idx[i] >= typecnt) return bad("transition names a missing type");
    int64_t t = BigEndian(times + i * time_bytes, time_bytes);
    if (!z.transitions_.empty() && t <= z.transitions_.back()) return bad("transitions out of order");
    z.transitions_.push_back(t);
    z.offsets_.push_back(type_offset(idx[i]));
  }
  if (version >= '2') {
    size_t footer_at = at + block_size(c, time_bytes);
    if (footer_at < size && p[footer_at] == '\n') {
      size_t end = data.find('\n', footer_at + 1);
      if (end != std::string::npos && end > footer_at + 1) {
        if (!ParsePosixRule(std::string_view(data).substr(footer_at + 1, end - footer_at - 1), &z.footer_)) {
          return bad("unreadable POSIX TZ footer");
        }
      }
    }
  }
  return z;
}

int32_t TimeZone::OffsetAt(int64_t utc_s) const {
  if (utc_) return 0;
  if (transitions_.empty() || utc_s < transitions_.front()) {
    if (transitions_.empty() && footer_.valid) return footer_.OffsetAt(utc_s);
    return initial_offset_;
  }
  if (utc_s >= transitions_.back() && footer_.valid) return footer_.OffsetAt(utc_s);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc_s);
  return offsets_[static_cast<size_t>(it - transitions_.begin()) - 1];
}

std::vector<int64_t> TimeZone::FromLocal(int64_t local_s) const {
  if (utc_) return {local_s};
  // Every zone's offset changes at most once within a day of any instant, so the offsets in
  // force a day either side are the only candidates.
  std::vector<int64_t> out;
  for (int32_t off : {OffsetAt(local_s - 86400), OffsetAt(local_s), OffsetAt(local_s + 86400)}) {
    int64_t utc = local_s - off;
    if (OffsetAt(utc) == off && std::find(out.begin(), out.end(), utc) == out.end()) out.push_back(utc);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace geysir::control::triggers
