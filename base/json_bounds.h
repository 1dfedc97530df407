// Bounded JSON for untrusted bytes: every parse of what a sandbox or a client sent goes through
// here, so no value deeper or larger than a fixed bound ever exists in a daemon.
//
// Why: nlohmann's parser keeps its own stack, but dump(), operator== and copies recurse once per
// nesting level, so a value 10^5 levels deep (a few hundred kilobytes of "[[[[") overflows the
// stack of whichever daemon serialises it. The bound is checked by a linear, non-recursive scan
// of the bytes *before* nlohmann builds anything.
//
// Thread safety: pure functions.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <type_traits>

#include "base/status.h"

namespace geysir {

// Deep enough for any real document (Python's json gives up near 1,000 levels; AWS's documents
// rarely pass 20), shallow enough that a recursive walk of it costs well under 1 MB of stack.
inline constexpr size_t kMaxJsonDepth = 512;

struct JsonLimits {
  size_t max_bytes = 64u << 20;
  size_t max_depth = kMaxJsonDepth;
};

// OK when `text` nests arrays/objects at most `max_depth` deep and has at most `max_bytes`
// bytes; kResourceExhausted otherwise. It does not validate the JSON (the parser does that):
// it only counts brackets outside strings, in one pass.
Status CheckJsonBounds(std::string_view text, const JsonLimits& limits = {});

// Parses untrusted bytes: kResourceExhausted over the bounds, kInvalidArgument when it is not
// JSON. Never throws.
Result<nlohmann::json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits = {});

// The same for code written around nlohmann's `parse(text, nullptr, false)`: a discarded value
// when the text is out of bounds or not JSON.
nlohmann::json ParseUntrustedJsonOrDiscarded(std::string_view text, const JsonLimits& limits = {});

// A JSON number as integer type T when it is an integer (or an integral float, e.g. 200.0 from
// a JavaScript number) inside T's range; nullopt otherwise. Never a cast of an out-of-range
// double, which is undefined behaviour.
template <typename T>
std::optional<T> JsonInteger(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T>);
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (i < 0 || static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
    } else {
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        return std::nullopt;
      }
    }
    return static_cast<T>(i);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // Compared as doubles against bounds that are exact in a double (powers of two), so
    // NaN and infinities fail too.
    const double lo = std::is_signed_v<T> ? -std::ldexp(1.0, std::numeric_limits<T>::digits) : 0.0;
    const double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);
    if (!(d >= lo && d < hi) || std::trunc(d) != d) return std::nullopt;
    return static_cast<T>(d);
  }
  return std::nullopt;
}

// obj[key] as T, or `dflt` when absent, not an integer, or out of T's range.
template <typename T>
T JsonIntegerField(const nlohmann::json& obj, const char* key, T dflt) {
  if (!obj.is_object()) return dflt;
  auto it = obj.find(key);
  if (it == obj.end()) return dflt;
  return JsonInteger<T>(*it).value_or(dflt);
}

}  // namespace geysir
