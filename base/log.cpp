#include "base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <ctime>
#include <string>

namespace geysir::log {
namespace {

// Written once by Init() before any other thread or loop exists; read-only afterwards.
struct Config {
  std::string component = "geysir";
  Level min_level = Level::kInfo;
};
Config& config() {
  static Config c;
  return c;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void Init(std::string_view component, Level min_level) {
  config().component = std::string(component);
  config().min_level = min_level;
}

std::string NowIso8601() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm t{};
  gmtime_r(&tv.tv_sec, &t);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(tv.tv_usec / 1000));
  return buf;
}

void Write(Level level, std::string_view event, const nlohmann::json& fields) {
  if (level < config().min_level) return;
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = NowIso8601();
  line["level"] = LevelName(level);
  line["component"] = config().component;
  line["event"] = event;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  // One write so concurrent writers never interleave within a line.
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
}

}  // namespace geysir::log
