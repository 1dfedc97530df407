// Lambda's text conventions that the scheduler reproduces: the START / END / REPORT log lines,
// the timeout and runtime-exit error objects, billing rounding. Pure functions.
//
// Thread safety: stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace geysir::scheduler {

// "2026-11-27T05:30:00.123Z"
std::string IsoTime(int64_t unix_ms);

std::string StartLine(std::string_view request_id, std::string_view version);
std::string EndLine(std::string_view request_id);
// "REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
//  Max Memory Used: 12 MB\t[Init Duration: 85.20 ms\t]" — tab-separated with a trailing tab,
// as Lambda writes it (log parsers split on the tabs).
std::string ReportLine(std::string_view request_id, double duration_ms, uint64_t billed_ms,
                       uint32_t memory_mb, uint32_t max_memory_used_mb, std::optional<double> init_ms);

// Lambda bills whole milliseconds, rounded up, at least 1.
uint64_t BilledMs(double duration_ms);
// Bytes to Lambda's "MB" (MiB), rounded up.
uint32_t ToMb(uint64_t bytes);

// "<ISO time> <request id> Task timed out after 3.00 seconds"
std::string TimeoutMessage(int64_t unix_ms, std::string_view request_id, double seconds);
// Go's wording, which Lambda's runtime-exit errors use: "exit status 1", "signal: killed".
std::string ExitDescription(int exit_code, int exit_signal);

// {"errorMessage": message, "errorType": type} as JSON text.
// Lambda's limit on a synchronous response, error objects included: 6 MiB and, as Lambda's own
// message says, 100 bytes more.
inline constexpr size_t kMaxResponsePayloadBytes = 6291556;
// The error object Lambda gives for a result over that limit (Function.ResponseSizeTooLarge).
std::string ResponseTooLargeError();

std::string ErrorObject(std::string_view message, std::string_view type);
// {"message": message} as JSON text (throttled / internal results).
std::string MessageObject(std::string_view message);
// errorType of an error object given as JSON text, or `fallback` when it has none.
std::string ErrorTypeOf(std::string_view error_json, std::string_view fallback);

// Splits captured output into lines (without their '\n'); a final line without newline counts.
std::vector<std::string> SplitLines(std::string_view text);
// The last `max_bytes` of the lines joined with '\n' (each line ends with '\n'), cut at a UTF-8
// character boundary.
std::string Tail(const std::vector<std::string>& lines, size_t max_bytes);

}  // namespace geysir::scheduler
