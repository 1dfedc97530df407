// The rows EventBridge and EventBridge Scheduler share: see rules.h.
#include "control/services/eventbridge/rules.h"

#include <algorithm>

#include "control/aws_error.h"
#include "control/db.h"

namespace geysir::control::events {

using nlohmann::json;

const char* const kRuleColumns =
    "kind, name, schedule_expression, event_pattern, state, description, role_arn, timezone, tags, created_ms, "
    "modified_ms, anchor_ms, next_fire_ms, last_fire_ms";

Rule ReadRule(Statement& s) {
  Rule r;
  r.kind = s.Text(0);
  r.name = s.Text(1);
  r.expression = s.Text(2);
  r.event_pattern = s.Text(3);
  r.state = s.Text(4);
  r.description = s.Text(5);
  r.role_arn = s.Text(6);
  r.timezone = s.Text(7);
  r.tags = json::parse(s.Text(8), nullptr, false);
  if (!r.tags.is_array()) r.tags = json::array();
  r.created_ms = s.Int(9);
  r.modified_ms = s.Int(10);
  r.anchor_ms = s.Int(11);
  r.next_fire_ms = s.OptInt(12);
  r.last_fire_ms = s.OptInt(13);
  return r;
}

std::optional<Rule> LoadRule(Db& db, const std::string& kind, const std::string& name) {
  Statement s = db.Prepare(std::string("SELECT ") + kRuleColumns + " FROM events_rules WHERE kind = ? AND name = ?");
  s.BindAll(kind, name);
  if (!s.Step()) return std::nullopt;
  return ReadRule(s);
}

std::vector<Target> LoadTargets(Db& db, const std::string& kind, const std::string& rule) {
  Statement s = db.Prepare(
      "SELECT id, arn, input, input_path, input_transformer, role_arn FROM events_targets WHERE kind = ? AND rule = ? "
      "ORDER BY position, id");
  s.BindAll(kind, rule);
  std::vector<Target> out;
  while (s.Step()) {
    Target t;
    t.id = s.Text(0);
    t.arn = s.Text(1);
    t.input = s.OptText(2);
    t.input_path = s.OptText(3);
    if (auto x = s.OptText(4)) t.input_transformer = json::parse(*x, nullptr, false);
    if (t.input_transformer.is_discarded()) t.input_transformer = nullptr;
    t.role_arn = s.Text(5);
    out.push_back(std::move(t));
  }
  return out;
}

bool IsLambdaArn(const std::string& arn) { return arn.rfind("arn:aws:lambda:", 0) == 0 && arn.find(":function:") != std::string::npos; }

bool ValidRuleName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

Result<std::string> Str(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return AwsStatus(Code::kInvalidArgument, "ValidationException", std::string("Parameter ") + key + " must be a string.");
  }
  return it->get<std::string>();
}

}  // namespace geysir::control::events
