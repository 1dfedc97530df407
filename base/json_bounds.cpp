#include "base/json_bounds.h"

#include <string>

namespace geysir {

Status CheckJsonBounds(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::Error(Code::kResourceExhausted, "JSON of " + std::to_string(text.size()) +
                                                       " bytes exceeds the limit of " +
                                                       std::to_string(limits.max_bytes) + " bytes");
  }
  // Brackets inside strings do not nest; a backslash escapes exactly the next byte. Whatever the
  // scan misjudges in text that is not JSON, the parser rejects afterwards.
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > limits.max_depth) {
          return Status::Error(Code::kResourceExhausted,
                               "JSON nested deeper than " + std::to_string(limits.max_depth) + " levels");
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return Status::Ok();
}

Result<nlohmann::json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits) {
  Status bounded = CheckJsonBounds(text, limits);
  if (!bounded.ok()) return bounded;
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("not valid JSON");
  return j;
}

nlohmann::json ParseUntrustedJsonOrDiscarded(std::string_view text, const JsonLimits& limits) {
  if (!CheckJsonBounds(text, limits).ok()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

}  // namespace geysir
