// The rules and schedules that EventBridge (PutRule, PutTargets) and EventBridge Scheduler
// (CreateSchedule) both keep: one table of rules, each of kind "rule" or "schedule", and one of
// their targets (schema track "events", created by the EventBridge service), the reads both
// APIs share, and RuleEngine: what the Scheduler API asks of the engine that fires them.
//
// Thread safety: loop thread only (the rows are read through the store's SQLite connection).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace geysir::control {

class Db;
class Statement;

namespace events {

struct Rule {
  std::string kind = "rule";  // "rule" (EventBridge) or "schedule" (Scheduler)
  std::string name;
  std::string expression;
  std::string event_pattern;
  std::string state = "ENABLED";
  std::string description;
  std::string role_arn;
  std::string timezone = "UTC";
  nlohmann::json tags = nlohmann::json::array();
  int64_t created_ms = 0, modified_ms = 0, anchor_ms = 0;
  std::optional<int64_t> next_fire_ms, last_fire_ms;
};

struct Target {
  std::string id, arn, role_arn;
  std::optional<std::string> input, input_path;
  nlohmann::json input_transformer;  // null when absent
};

// The columns ReadRule reads, in its order, for "SELECT <kRuleColumns> FROM events_rules ...".
extern const char* const kRuleColumns;

Rule ReadRule(Statement& s);
std::optional<Rule> LoadRule(Db& db, const std::string& kind, const std::string& name);
// In target order (position, then id).
std::vector<Target> LoadTargets(Db& db, const std::string& kind, const std::string& rule);

bool IsLambdaArn(const std::string& arn);
// 1-64 of [0-9a-zA-Z-_.], what both APIs accept as a name.
bool ValidRuleName(const std::string& n);
// The string `key` of a request body, "" when absent or null; ValidationException when it is
// something else.
Result<std::string> Str(const nlohmann::json& body, const char* key);

// The schedule engine as the Scheduler API sees it; the EventBridge service is it.
class RuleEngine {
 public:
  virtual ~RuleEngine() = default;
  // Creates or updates a rule or schedule row (its targets are kept) and re-arms its firing.
  // Returns the row as stored.
  virtual Rule Upsert(Rule r) = 0;
  virtual void PutTarget(const std::string& kind, const std::string& rule, const Target& t, int position) = 0;
  // False when there was no such row.
  virtual bool DeleteRule(const std::string& kind, const std::string& name) = 0;
  virtual std::string RuleArn(const Rule& r) const = 0;
};

}  // namespace events
}  // namespace geysir::control
