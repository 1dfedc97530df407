#include "scheduler/lambda_format.h"

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/json_bounds.h"

namespace geysir::scheduler {

std::string IsoTime(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[48];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

std::string StartLine(std::string_view request_id, std::string_view version) {
  std::string s = "START RequestId: ";
  s.append(request_id).append(" Version: ").append(version);
  return s;
}

std::string EndLine(std::string_view request_id) {
  std::string s = "END RequestId: ";
  s.append(request_id);
  return s;
}

std::string ReportLine(std::string_view request_id, double duration_ms, uint64_t billed_ms,
                       uint32_t memory_mb, uint32_t max_memory_used_mb, std::optional<double> init_ms) {
  char buf[256];
  snprintf(buf, sizeof buf,
           "\tDuration: %.2f ms\tBilled Duration: %llu ms\tMemory Size: %u MB\tMax Memory Used: %u MB\t",
           duration_ms, static_cast<unsigned long long>(billed_ms), memory_mb, max_memory_used_mb);
  std::string s = "REPORT RequestId: ";
  s.append(request_id).append(buf);
  if (init_ms) {
    snprintf(buf, sizeof buf, "Init Duration: %.2f ms\t", *init_ms);
    s.append(buf);
  }
  return s;
}

uint64_t BilledMs(double duration_ms) {
  if (!(duration_ms > 0)) return 1;
  double c = std::ceil(duration_ms);
  return c < 1 ? 1 : static_cast<uint64_t>(c);
}

uint32_t ToMb(uint64_t bytes) {
  constexpr uint64_t kMiB = 1024 * 1024;
  return static_cast<uint32_t>((bytes + kMiB - 1) / kMiB);
}

std::string TimeoutMessage(int64_t unix_ms, std::string_view request_id, double seconds) {
  char buf[64];
  snprintf(buf, sizeof buf, " Task timed out after %.2f seconds", seconds);
  std::string s = IsoTime(unix_ms);
  s.append(" ").append(request_id).append(buf);
  return s;
}

std::string ExitDescription(int exit_code, int exit_signal) {
  if (exit_signal > 0) {
    // Go prints lower-case signal descriptions ("killed", "segmentation fault"); glibc's
    // strsignal() has the same words capitalised.
    std::string name = strsignal(exit_signal);
    if (!name.empty()) name[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[0])));
    return "signal: " + name;
  }
  if (exit_code < 0) return "exit status unknown";
  return "exit status " + std::to_string(exit_code);
}

std::string ErrorObject(std::string_view message, std::string_view type) {
  nlohmann::json j{{"errorMessage", message}, {"errorType", type}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ResponseTooLargeError() {
  return ErrorObject("Response payload size exceeded maximum allowed payload size (" +
                         std::to_string(kMaxResponsePayloadBytes) + " bytes).",
                     "Function.ResponseSizeTooLarge");
}

std::string MessageObject(std::string_view message) {
  nlohmann::json j{{"message", message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ErrorTypeOf(std::string_view error_json, std::string_view fallback) {
  auto j = ParseUntrustedJsonOrDiscarded(error_json);
  if (j.is_object()) {
    auto it = j.find("errorType");
    if (it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      return it->get<std::string>();
    }
  }
  return std::string(fallback);
}

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.emplace_back(text.substr(start));
      break;
    }
    lines.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string Tail(const std::vector<std::string>& lines, size_t max_bytes) {
  std::string all;
  for (const auto& l : lines) {
    all += l;
    all += '\n';
  }
  if (all.size() <= max_bytes) return all;
  size_t cut = all.size() - max_bytes;
  // Skip UTF-8 continuation bytes so the tail starts on a character.
  while (cut < all.size() && (static_cast<unsigned char>(all[cut]) & 0xC0) == 0x80) ++cut;
  return all.substr(cut);
}

}  // namespace geysir::scheduler
