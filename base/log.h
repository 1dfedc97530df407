// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-27T05:30:00.123Z","level":"info","component":"gateway","event":"listening","port":8080}
// The component name is set once by main() before the loop starts; after that the logger holds
// no mutable state. Never call from between fork and exec (it allocates).
//
// Thread safety: each call writes its line with a single write(2), so lines from several
// threads do not interleave.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace geysir::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Names the process in every line ("gateway", "scheduler", ...). Call once, in main().
void Init(std::string_view component, Level min_level = Level::kInfo);

void Write(Level level, std::string_view event, const nlohmann::json& fields = nlohmann::json::object());
inline void Debug(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kDebug, e, f); }
inline void Info(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kInfo, e, f); }
inline void Warn(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kWarn, e, f); }
inline void Error(std::string_view e, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kError, e, f); }

// UTC ISO-8601 with milliseconds, as used in log lines and API timestamps.
std::string NowIso8601();

}  // namespace geysir::log
