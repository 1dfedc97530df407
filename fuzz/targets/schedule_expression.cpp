// EventBridge schedule expressions (control/triggers/schedule_expression.h): rate(), cron()
// with its six fields, at(). A parsed expression must also be usable: its next fire times
// are computed for a year of steps without misbehaving, and always lie after the instant asked.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/triggers/schedule_expression.h"
#include "control/triggers/timezone.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir::control::triggers;
  auto parsed = ScheduleExpression::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  static const TimeZone utc = TimeZone::Utc();
  int64_t t = 1'700'000'000'000;  // ms
  for (int i = 0; i < 8; ++i) {
    auto next = parsed->NextAfter(t, utc, /*anchor_ms=*/t - 1234);
    if (!next) break;
    if (*next <= t) __builtin_trap();
    t = *next;
  }
  return 0;
}
