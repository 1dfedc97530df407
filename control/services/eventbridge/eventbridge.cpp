// EventBridgeService: see eventbridge.h. Layout of this file: the EventBridge event and its
// input transformations; the tables; the service with its schedule engine; the EventBridge API.
#include "control/services/eventbridge/eventbridge.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "control/db.h"
#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "control/store.h"
#include "control/triggers/schedule_expression.h"
#include "control/triggers/timezone.h"
#include "base/log.h"
#include "base/uv_handle.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using triggers::AsyncEvent;
using triggers::ScheduleExpression;
using triggers::TimeZone;
using events::IsLambdaArn;
using events::kRuleColumns;
using events::LoadRule;
using events::LoadTargets;
using events::ReadRule;
using events::Rule;
using events::Str;
using events::Target;
using events::ValidRuleName;

constexpr std::string_view kJson11 = "application/x-amz-json-1.1";

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string Dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

Status Validation(std::string message) {
  return AwsStatus(Code::kInvalidArgument, "ValidationException", std::move(message));
}

Status NotFound(std::string message) {
  return AwsStatus(Code::kNotFound, "ResourceNotFoundException", std::move(message));
}

// EventBridge (awsJson1_1) answers every client error 400, a missing rule and an unknown
// operation included.
constexpr ErrorStatus kEventBridgeErrorStatuses[] = {
    {"ResourceNotFoundException", 400},
    {"UnknownOperationException", 400},
};

// "2026-11-27T08:30:00Z": the time format of EventBridge events.
std::string EventTime(int64_t ms) {
  std::string iso = IsoTimestamp(ms - ((ms % 1000) + 1000) % 1000);
  // IsoTimestamp gives "...:00.000Z"; EventBridge writes whole seconds.
  if (iso.size() > 5 && iso.compare(iso.size() - 5, 5, ".000Z") == 0) iso = iso.substr(0, iso.size() - 5) + "Z";
  return iso;
}

// A JSONPath of the subset EventBridge accepts in InputPath / InputPathsMap: "$", "$.a.b",
// "$.a[0].b". nullopt when the path does not resolve.
std::optional<json> JsonPath(const json& doc, const std::string& path) {
  if (path.empty() || path[0] != '$') return std::nullopt;
  const json* cur = &doc;
  size_t i = 1;
  while (i < path.size()) {
    if (path[i] == '.') {
      size_t end = path.find_first_of(".[", i + 1);
      std::string key = path.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
      if (!cur->is_object() || !cur->contains(key)) return std::nullopt;
      cur = &(*cur)[key];
      i = end == std::string::npos ? path.size() : end;
    } else if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string::npos) return std::nullopt;
      std::string inner = path.substr(i + 1, close - i - 1);
      if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"')) {
        std::string key = inner.substr(1, inner.size() - 2);
        if (!cur->is_object() || !cur->contains(key)) return std::nullopt;
        cur = &(*cur)[key];
      } else {
        char* endp = nullptr;
        long idx = std::strtol(inner.c_str(), &endp, 10);
        if (inner.empty() || *endp || !cur->is_array() || idx < 0 || static_cast<size_t>(idx) >= cur->size()) {
          return std::nullopt;
        }
        cur = &(*cur)[static_cast<size_t>(idx)];
      }
      i = close + 1;
    } else {
      return std::nullopt;
    }
  }
  return *cur;
}

// EventBridge's InputTransformer: each <name> of InputPathsMap (and the predefined
// aws.events.* variables) is replaced in InputTemplate. Outside a JSON string a value is
// inserted as JSON (strings quoted); inside one, strings are inserted as their escaped text.
std::string ApplyInputTransformer(const json& transformer, const json& event, const std::string& rule_arn,
                                  const std::string& rule_name) {
  std::map<std::string, json> vars;
  if (transformer.contains("InputPathsMap") && transformer["InputPathsMap"].is_object()) {
    for (const auto& [k, v] : transformer["InputPathsMap"].items()) {
      if (!v.is_string()) continue;
      std::optional<json> value = JsonPath(event, v.get<std::string>());
      vars[k] = value ? *value : json(nullptr);
    }
  }
  vars["aws.events.rule-arn"] = rule_arn;
  vars["aws.events.rule-name"] = rule_name;
  vars["aws.events.event.ingestion-time"] = event.value("time", "");
  vars["aws.events.event"] = event;
  vars["aws.events.event.json"] = event;
  const std::string tpl = transformer.value("InputTemplate", "");
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < tpl.size(); ++i) {
    char c = tpl[i];
    if (c == '<') {
      size_t close = tpl.find('>', i + 1);
      if (close != std::string::npos) {
        std::string key = tpl.substr(i + 1, close - i - 1);
        auto it = vars.find(key);
        if (it != vars.end()) {
          if (!in_string) {
            out += Dump(it->second);
          } else if (it->second.is_string()) {
            std::string quoted = Dump(it->second);
            out += quoted.substr(1, quoted.size() - 2);
          } else {
            std::string quoted = Dump(json(Dump(it->second)));
            out += quoted.substr(1, quoted.size() - 2);
          }
          i = close;
          continue;
        }
      }
    }
    if (c == '\\' && in_string && i + 1 < tpl.size()) {
      out += c;
      out += tpl[++i];
      continue;
    }
    if (c == '"') in_string = !in_string;
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tables

const std::vector<Migration> kSteps = {
    {1, "EventBridge rules and Scheduler schedules with their targets",
     "CREATE TABLE events_rules ("
     "  kind TEXT NOT NULL CHECK (kind IN ('rule', 'schedule')),"
     "  name TEXT NOT NULL,"
     "  schedule_expression TEXT NOT NULL DEFAULT '',"
     "  event_pattern TEXT NOT NULL DEFAULT '',"
     "  state TEXT NOT NULL,"
     "  description TEXT NOT NULL DEFAULT '',"
     "  role_arn TEXT NOT NULL DEFAULT '',"
     "  timezone TEXT NOT NULL DEFAULT 'UTC',"
     "  tags TEXT NOT NULL DEFAULT '[]',"
     "  created_ms INTEGER NOT NULL,"
     "  modified_ms INTEGER NOT NULL,"
     "  anchor_ms INTEGER NOT NULL,"
     "  next_fire_ms INTEGER,"
     "  last_fire_ms INTEGER,"
     "  PRIMARY KEY (kind, name));"
     "CREATE TABLE events_targets ("
     "  kind TEXT NOT NULL,"
     "  rule TEXT NOT NULL,"
     "  id TEXT NOT NULL,"
     "  arn TEXT NOT NULL,"
     "  input TEXT,"
     "  input_path TEXT,"
     "  input_transformer TEXT,"
     "  role_arn TEXT NOT NULL DEFAULT '',"
     "  position INTEGER NOT NULL,"
     "  PRIMARY KEY (kind, rule, id),"
     "  FOREIGN KEY (kind, rule) REFERENCES events_rules(kind, name) ON DELETE CASCADE);"
     "CREATE INDEX events_targets_arn ON events_targets(arn);"},
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The service and its schedule engine

class EventsService final : public EventBridgeService {
 public:
  explicit EventsService(ServiceHost& host) : host_(host) {
    if (const char* s = std::getenv("GEYSIR_TEST_TIME_SCALE")) {
      double v = std::atof(s);
      if (v >= 1.0) scale_ = v;
    }
    triggers::AsyncQueueOptions qo;
    qo.time_scale = scale_;
    queue_ = std::make_unique<triggers::AsyncQueue>(host_, qo);
  }

  std::string_view signing_name() const override { return "events"; }
  triggers::AsyncQueue& queue() override { return *queue_; }

  Status Start() override {
    try {
      host_.store().db().MigrateTrack("events", kSteps);
    } catch (const DbError& e) {
      return Status::Internal(std::string("events tables: ") + e.what());
    }
    GEYSIR_RETURN_IF_ERROR(queue_->Start());
    if (int rc = timer_.Init(host_.loop(), uv_timer_init); rc != 0) {
      return Status::Internal(std::string("schedule timer: ") + uv_strerror(rc));
    }
    timer_->data = this;
    // Every enabled schedule back on the timer; one whose firing passed while control was
    // down is due now and fires once.
    size_t n = 0, missed = 0;
    const int64_t now = host_.NowMs();
    std::vector<std::pair<std::string, std::string>> keys;
    {
      Statement s = host_.store().db().Prepare("SELECT kind, name FROM events_rules WHERE next_fire_ms IS NOT NULL");
      while (s.Step()) keys.emplace_back(s.Text(0), s.Text(1));
    }
    for (const auto& [kind, name] : keys) {
      Resync(kind, name);
      ++n;
      auto it = due_at_.find(kind + "/" + name);
      if (it != due_at_.end() && it->second <= now) ++missed;
    }
    log::Info("schedules_loaded", {{"schedules", n}, {"missed_while_down", missed}, {"time_scale", scale_}});
    return Status::Ok();
  }

  void Shutdown() override {
    timer_.Close();
    queue_->Shutdown();
  }

  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override {
    return JsonProtocolError(error, kJson11, request_id);
  }
  std::span<const ErrorStatus> error_statuses() const override { return kEventBridgeErrorStatuses; }

  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;

  const TimeZone& Zone(const std::string& name) {
    auto it = zones_.find(name);
    if (it != zones_.end()) return it->second;
    Result<TimeZone> z = TimeZone::Load(name);
    return zones_.emplace(name, z.ok() ? *z : TimeZone::Utc()).first->second;
  }

  // The first firing of `r` after `after_ms`, or nullopt (disabled, no schedule, finished).
  std::optional<int64_t> NextFire(const Rule& r, int64_t after_ms) {
    if (r.expression.empty() || r.state != "ENABLED") return std::nullopt;
    Result<ScheduleExpression> e = ScheduleExpression::Parse(r.expression);
    if (!e.ok()) return std::nullopt;
    return e->NextAfter(after_ms, Zone(r.timezone), r.anchor_ms, scale_);
  }

  // Makes the timer agree with the row: the one place the in-memory schedule is set.
  void Resync(const std::string& kind, const std::string& name) {
    const std::string key = kind + "/" + name;
    if (auto it = due_at_.find(key); it != due_at_.end()) {
      heap_.erase({it->second, key});
      due_at_.erase(it);
    }
    std::optional<Rule> r = LoadRule(host_.store().db(), kind, name);
    if (r && r->next_fire_ms && r->state == "ENABLED") {
      heap_.insert({*r->next_fire_ms, key});
      due_at_[key] = *r->next_fire_ms;
    }
    Arm();
  }

  void Arm() {
    if (!timer_ || firing_) return;
    if (heap_.empty()) {
      uv_timer_stop(timer_.get());
      return;
    }
    const int64_t at = std::max(heap_.begin()->first, retry_after_ms_);
    const int64_t delay = std::max<int64_t>(0, at - host_.NowMs());
    uv_timer_start(
        timer_.get(), [](uv_timer_t* t) { static_cast<EventsService*>(t->data)->FireDue(); }, static_cast<uint64_t>(delay), 0);
  }

  // One schedule's firing, computed on the loop thread and written by the group commit.
  struct Firing {
    std::string kind, name;
    int64_t scheduled_ms = 0;
    std::optional<int64_t> next_ms;
    std::vector<AsyncEvent> events;
  };

  // Fires every due schedule in one transaction: their events into the async queue and their
  // next firing times, so a crash leaves either both or neither. The rows are read and the
  // events built here, on the loop thread; the commit (on the group commit's thread) writes
  // them only if the schedule still has the firing time it was read with.
  void FireDue() {
    const int64_t now = host_.NowMs();
    std::vector<std::pair<std::string, int64_t>> due;
    while (!heap_.empty() && heap_.begin()->first <= now) {
      auto [t, key] = *heap_.begin();
      heap_.erase(heap_.begin());
      due_at_.erase(key);
      due.emplace_back(key, t);
      if (due.size() >= 5000) break;
    }
    if (due.empty()) {
      Arm();
      return;
    }
    firing_ = true;
    auto firings = std::make_shared<std::vector<Firing>>();
    for (const auto& [key, t] : due) {
      RecordLag(lags_, now - t);
      try {
        if (std::optional<Firing> f = PrepareFiring(key, t, now)) firings->push_back(std::move(*f));
      } catch (const std::exception& e) {
        log::Error("schedule_fire_prepare_failed", {{"schedule", key}, {"what", e.what()}});
      }
    }
    auto applied = std::make_shared<std::vector<char>>(firings->size(), 0);
    queue_->commit().Submit(
        [firings, applied](Db& db) {
          for (size_t i = 0; i < firings->size(); ++i) {
            const Firing& f = (*firings)[i];
            int changed = db.Prepare("UPDATE events_rules SET next_fire_ms = ?, last_fire_ms = ? WHERE kind = ? AND "
                                     "name = ? AND state = 'ENABLED' AND next_fire_ms = ?")
                              .BindAll(f.next_ms, f.scheduled_ms, f.kind, f.name, f.scheduled_ms)
                              .Run();
            if (changed == 0) continue;  // changed or deleted since it was read: that write wins
            for (const AsyncEvent& e : f.events) triggers::AsyncQueue::InsertRow(db, e);
            (*applied)[i] = 1;
          }
        },
        [this, due, firings, applied](Status st) {
          firing_ = false;
          // A failed commit leaves the schedules due: try again in a second, not in a tight loop.
          retry_after_ms_ = st.ok() ? 0 : host_.NowMs() + 1000;
          if (!st.ok()) log::Error("schedule_fire_failed", {{"schedules", due.size()}, {"error", st.ToString()}});
          const int64_t committed = host_.NowMs();
          for (size_t i = 0; st.ok() && i < firings->size(); ++i) {
            const Firing& f = (*firings)[i];
            if (!(*applied)[i]) continue;
            RecordLag(commit_lags_, committed - f.scheduled_ms);
            for (const AsyncEvent& e : f.events) queue_->Kick(e.function);
            log::Info("schedule_fired", {{"kind", f.kind},
                                         {"name", f.name},
                                         {"scheduled", EventTime(f.scheduled_ms)},
                                         {"lag_ms", committed - f.scheduled_ms},
                                         {"targets", f.events.size()}});
          }
          for (const auto& [key, t] : due) {
            size_t slash = key.find('/');
            Resync(key.substr(0, slash), key.substr(slash + 1));
          }
          Arm();
        });
  }

  // One schedule's targets as async events and its next firing time; nullopt if the row no
  // longer has this firing (changed, disabled, deleted).
  std::optional<Firing> PrepareFiring(const std::string& key, int64_t scheduled_ms, int64_t now) {
    size_t slash = key.find('/');
    Db& db = host_.store().db();
    std::optional<Rule> r = LoadRule(db, key.substr(0, slash), key.substr(slash + 1));
    if (!r || r->state != "ENABLED" || !r->next_fire_ms || *r->next_fire_ms != scheduled_ms) return std::nullopt;
    Firing f;
    f.kind = r->kind;
    f.name = r->name;
    f.scheduled_ms = scheduled_ms;
    const ApiContext& api = host_.api();
    const std::string rule_arn = RuleArn(*r);
    ordered_json event = {{"version", "0"},
                          {"id", NewUuid()},
                          {"detail-type", "Scheduled Event"},
                          {"source", "aws.events"},
                          {"account", api.account_id},
                          {"time", EventTime(scheduled_ms)},
                          {"region", api.region},
                          {"resources", ordered_json::array({rule_arn})},
                          {"detail", ordered_json::object()}};
    const json event_doc = json::parse(Dump(event));
    for (const Target& t : LoadTargets(db, r->kind, r->name)) {
      if (!IsLambdaArn(t.arn)) continue;
      AsyncEvent e;
      try {
        FunctionRef ref = ParseFunctionRef(t.arn);
        e.function = ref.name;
        e.qualifier = ref.qualifier == "$LATEST" ? "" : ref.qualifier;
      } catch (const ApiException&) {
        continue;
      }
      if (r->kind == "schedule") {
        e.payload = t.input.value_or("{}");
        e.source = "scheduler";
      } else {
        if (t.input) {
          e.payload = *t.input;
        } else if (t.input_path) {
          std::optional<json> v = JsonPath(event_doc, *t.input_path);
          e.payload = v ? Dump(*v) : "null";
        } else if (t.input_transformer.is_object()) {
          e.payload = ApplyInputTransformer(t.input_transformer, event_doc, rule_arn, r->name);
        } else {
          e.payload = Dump(event);
        }
        e.source = "events";
      }
      f.events.push_back(queue_->Stamp(std::move(e)));
    }
    // Missed firings collapse into this one: the next is computed from now, not from the
    // scheduled time.
    f.next_ms = NextFire(*r, std::max(now, scheduled_ms));
    return f;
  }

  std::string RuleArn(const Rule& r) const override {
    const ApiContext& api = host_.api();
    if (r.kind == "schedule") return "arn:aws:scheduler:" + api.region + ":" + api.account_id + ":schedule/default/" + r.name;
    return "arn:aws:events:" + api.region + ":" + api.account_id + ":rule/" + r.name;
  }

  static void RecordLag(std::vector<int64_t>& lags, int64_t lag) {
    if (lags.size() >= 100000) lags.erase(lags.begin(), lags.begin() + 50000);
    lags.push_back(lag);
  }
  // lag_ms_*: due time to the firing's start; committed_lag_ms_*: due time to its events being
  // durable in the queue.
  json LagStats() const {
    if (lags_.empty()) return {{"firings", 0}};
    json out = {{"firings", lags_.size()}};
    auto add = [&](const std::vector<int64_t>& lags, const std::string& prefix) {
      if (lags.empty()) return;
      std::vector<int64_t> v = lags;
      std::sort(v.begin(), v.end());
      auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))]; };
      out[prefix + "_p50"] = pct(0.5);
      out[prefix + "_p99"] = pct(0.99);
      out[prefix + "_max"] = v.back();
    };
    add(lags_, "lag_ms");
    add(commit_lags_, "committed_lag_ms");
    return out;
  }

  // Creates or updates a rule/schedule row; keeps targets. Returns the stored rule.
  Rule Upsert(Rule r) override {
    Db& db = host_.store().db();
    const int64_t now = host_.NowMs();
    std::optional<Rule> old = LoadRule(db, r.kind, r.name);
    r.created_ms = old ? old->created_ms : now;
    r.modified_ms = now;
    // A rate schedule counts from when it was created, changed or enabled.
    bool same = old && old->expression == r.expression && old->timezone == r.timezone && old->state == r.state;
    r.anchor_ms = same ? old->anchor_ms : now;
    r.next_fire_ms = same && old->next_fire_ms ? old->next_fire_ms : NextFire(r, now);
    if (r.state != "ENABLED") r.next_fire_ms.reset();
    r.last_fire_ms = old ? old->last_fire_ms : std::nullopt;
    Transaction txn(db);
    db.Prepare(
          "INSERT INTO events_rules (kind, name, schedule_expression, event_pattern, state, description, role_arn, "
          "timezone, tags, created_ms, modified_ms, anchor_ms, next_fire_ms, last_fire_ms) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
          "schedule_expression = excluded.schedule_expression, event_pattern = excluded.event_pattern, "
          "state = excluded.state, description = excluded.description, role_arn = excluded.role_arn, "
          "timezone = excluded.timezone, tags = excluded.tags, modified_ms = excluded.modified_ms, "
          "anchor_ms = excluded.anchor_ms, next_fire_ms = excluded.next_fire_ms")
        .BindAll(r.kind, r.name, r.expression, r.event_pattern, r.state, r.description, r.role_arn, r.timezone,
                 Dump(r.tags), r.created_ms, r.modified_ms, r.anchor_ms, r.next_fire_ms, r.last_fire_ms)
        .Run();
    txn.Commit();
    Resync(r.kind, r.name);
    return r;
  }

  void PutTarget(const std::string& kind, const std::string& rule, const Target& t, int position) override {
    Db& db = host_.store().db();
    std::optional<std::string> transformer;
    if (t.input_transformer.is_object()) transformer = Dump(t.input_transformer);
    db.Prepare(
          "INSERT INTO events_targets (kind, rule, id, arn, input, input_path, input_transformer, role_arn, position) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, rule, id) DO UPDATE SET arn = excluded.arn, "
          "input = excluded.input, input_path = excluded.input_path, input_transformer = excluded.input_transformer, "
          "role_arn = excluded.role_arn")
        .BindAll(kind, rule, t.id, t.arn, t.input, t.input_path, transformer, t.role_arn, position)
        .Run();
  }

  bool DeleteRule(const std::string& kind, const std::string& name) override {
    Db& db = host_.store().db();
    Transaction txn(db);
    int n = db.Prepare("DELETE FROM events_rules WHERE kind = ? AND name = ?").BindAll(kind, name).Run();
    txn.Commit();
    Resync(kind, name);
    return n > 0;
  }

  json ScheduleJson(const Rule& r) {
    Db& db = host_.store().db();
    json targets = json::array();
    for (const Target& t : LoadTargets(db, r.kind, r.name)) targets.push_back({{"id", t.id}, {"arn", t.arn}});
    json j = {{"kind", r.kind},
              {"name", r.name},
              {"arn", RuleArn(r)},
              {"expression", r.expression},
              {"timezone", r.timezone},
              {"state", r.state},
              {"description", r.description},
              {"targets", targets}};
    j["next_fire"] = r.next_fire_ms ? json(IsoTimestamp(*r.next_fire_ms)) : json(nullptr);
    j["next_fire_ms"] = r.next_fire_ms ? json(*r.next_fire_ms) : json(nullptr);
    j["last_fire"] = r.last_fire_ms ? json(IsoTimestamp(*r.last_fire_ms)) : json(nullptr);
    return j;
  }

  json ListSchedulesJson() override {
    json out = json::array();
    Statement s = host_.store().db().Prepare(std::string("SELECT ") + kRuleColumns +
                                             " FROM events_rules WHERE schedule_expression != '' ORDER BY kind, name");
    std::vector<Rule> rules;
    while (s.Step()) rules.push_back(ReadRule(s));
    for (const Rule& r : rules) out.push_back(ScheduleJson(r));
    return {{"schedules", out}, {"firing", LagStats()}, {"time_scale", scale_}};
  }

 private:
  // EventBridge operations.
  Result<json> PutRule(const json& body);
  Result<json> DescribeRule(const json& body);
  Result<json> DeleteRuleOp(const json& body);
  Result<json> PutTargets(const json& body);
  Result<json> ListTargetsByRule(const json& body);
  Result<json> RemoveTargets(const json& body);
  Result<json> ListRuleNamesByTarget(const json& body);
  Result<json> ListRules(const json& body);
  Result<json> SetState(const json& body, const char* state);
  Result<json> ListTagsForResource(const json& body);
  // The rule `body[key]` names; ResourceNotFoundException when there is none.
  Result<Rule> RequireRule(const json& body, const char* key = "Name");

  ServiceHost& host_;
  double scale_ = 1.0;
  std::unique_ptr<triggers::AsyncQueue> queue_;
  UvHandle<uv_timer_t> timer_;
  std::set<std::pair<int64_t, std::string>> heap_;  // (next firing, "kind/name")
  std::map<std::string, int64_t> due_at_;
  bool firing_ = false;
  int64_t retry_after_ms_ = 0;
  std::map<std::string, TimeZone> zones_;
  std::vector<int64_t> lags_, commit_lags_;
};

// ---------------------------------------------------------------------------------------------
// EventBridge API

Status EventsService::Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  const std::string* target = req.Header("X-Amz-Target");
  std::string op = target ? *target : "";
  static constexpr std::string_view kPrefix = "AWSEvents.";
  if (op.rfind(kPrefix, 0) != 0) {
    return AwsStatus(Code::kUnimplemented, "UnknownOperationException",
                     "Missing or unknown X-Amz-Target (expected AWSEvents.<Operation>)");
  }
  op = op.substr(kPrefix.size());
  json body = ParseUntrustedJsonOrDiscarded(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
  if (!body.is_object()) {
    return AwsStatus(Code::kInvalidArgument, "SerializationException", "The request body is not a JSON object.");
  }
  Result<json> out = json::object();
  if (op == "PutRule") out = PutRule(body);
  else if (op == "DescribeRule") out = DescribeRule(body);
  else if (op == "DeleteRule") out = DeleteRuleOp(body);
  else if (op == "PutTargets") out = PutTargets(body);
  else if (op == "ListTargetsByRule") out = ListTargetsByRule(body);
  else if (op == "RemoveTargets") out = RemoveTargets(body);
  else if (op == "ListRuleNamesByTarget") out = ListRuleNamesByTarget(body);
  else if (op == "ListRules") out = ListRules(body);
  else if (op == "EnableRule") out = SetState(body, "ENABLED");
  else if (op == "DisableRule") out = SetState(body, "DISABLED");
  else if (op == "ListTagsForResource") out = ListTagsForResource(body);
  else {
    return AwsStatus(Code::kUnimplemented, "UnknownOperationException",
                     "Geysir does not implement EventBridge's " + op.substr(0, 64) + " yet");
  }
  if (!out.ok()) return out.status();
  net::HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", std::string(kJson11)}, {"x-amzn-RequestId", info.request_id}};
  r.body = Dump(*out);
  resp->Send(std::move(r));
  return Status::Ok();
}

Result<Rule> EventsService::RequireRule(const json& body, const char* key) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string name, Str(body, key));
  if (name.empty()) return Validation(std::string("Parameter ") + key + " must be specified.");
  std::optional<Rule> r = LoadRule(host_.store().db(), "rule", name);
  if (!r) return NotFound("Rule " + name + " does not exist on EventBus default.");
  return *r;
}

Result<json> EventsService::PutRule(const json& body) {
  Rule r;
  GEYSIR_ASSIGN_OR_RETURN(r.name, Str(body, "Name"));
  if (!ValidRuleName(r.name)) {
    return Validation("1 validation error detected: Value '" + r.name.substr(0, 64) +
                      "' at 'name' failed to satisfy constraint: Member must satisfy regular expression "
                      "pattern: [\\.\\-_A-Za-z0-9]+");
  }
  GEYSIR_ASSIGN_OR_RETURN(r.expression, Str(body, "ScheduleExpression"));
  GEYSIR_ASSIGN_OR_RETURN(r.event_pattern, Str(body, "EventPattern"));
  if (r.expression.empty() && r.event_pattern.empty()) {
    return Validation("Parameter(s) EventPattern or ScheduleExpression must be specified.");
  }
  if (!r.expression.empty()) {
    Result<ScheduleExpression> e = ScheduleExpression::Parse(r.expression);
    if (!e.ok() || e->kind() == ScheduleExpression::Kind::kAt) {
      log::Info("schedule_expression_invalid",
                {{"rule", r.name}, {"expression", r.expression.substr(0, 200)},
                 {"why", e.ok() ? "at() is for EventBridge Scheduler only" : e.status().message()}});
      return Validation("Parameter ScheduleExpression is not valid.");
    }
  }
  GEYSIR_ASSIGN_OR_RETURN(const std::string bus, Str(body, "EventBusName"));
  if (!bus.empty() && bus != "default" && bus.find(":event-bus/default") == std::string::npos) {
    return NotFound("Event bus " + bus.substr(0, 256) + " does not exist.");
  }
  GEYSIR_ASSIGN_OR_RETURN(const std::string state, Str(body, "State"));
  r.state = state.empty() ? "ENABLED" : state;
  if (r.state != "ENABLED" && r.state != "DISABLED") {
    return Validation("1 validation error detected: Value '" + r.state.substr(0, 64) +
                      "' at 'state' failed to satisfy constraint: Member must satisfy enum value set: "
                      "[ENABLED, DISABLED]");
  }
  GEYSIR_ASSIGN_OR_RETURN(r.description, Str(body, "Description"));
  GEYSIR_ASSIGN_OR_RETURN(r.role_arn, Str(body, "RoleArn"));
  std::optional<Rule> old = LoadRule(host_.store().db(), "rule", r.name);
  if (body.contains("Tags") && body["Tags"].is_array()) {
    r.tags = body["Tags"];
  } else if (old) {
    r.tags = old->tags;
  }
  Rule stored = Upsert(std::move(r));
  log::Info("rule_put", {{"rule", stored.name}, {"expression", stored.expression}, {"state", stored.state}});
  return json{{"RuleArn", RuleArn(stored)}};
}

Result<json> EventsService::DescribeRule(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(Rule r, RequireRule(body));
  json out = {{"Name", r.name}, {"Arn", RuleArn(r)}, {"State", r.state}, {"EventBusName", "default"},
              {"CreatedBy", host_.api().account_id}};
  if (!r.expression.empty()) out["ScheduleExpression"] = r.expression;
  if (!r.event_pattern.empty()) out["EventPattern"] = r.event_pattern;
  if (!r.description.empty()) out["Description"] = r.description;
  if (!r.role_arn.empty()) out["RoleArn"] = r.role_arn;
  return out;
}

Result<json> EventsService::DeleteRuleOp(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string name, Str(body, "Name"));
  if (name.empty()) return Validation("Parameter Name must be specified.");
  bool force = body.contains("Force") && body["Force"].is_boolean() && body["Force"].get<bool>();
  if (!force && !LoadTargets(host_.store().db(), "rule", name).empty()) {
    return Validation("Rule can't be deleted since it has targets.");
  }
  if (DeleteRule("rule", name)) log::Info("rule_deleted", {{"rule", name}});
  return json::object();
}

Result<json> EventsService::PutTargets(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const Rule r, RequireRule(body, "Rule"));
  if (!body.contains("Targets") || !body["Targets"].is_array() || body["Targets"].empty()) {
    return Validation("Parameter Targets must contain at least one target.");
  }
  json failed = json::array();
  Db& db = host_.store().db();
  std::vector<Target> accepted;
  for (const json& t : body["Targets"]) {
    if (!t.is_object()) return Validation("Each target must be an object.");
    Target target;
    GEYSIR_ASSIGN_OR_RETURN(target.id, Str(t, "Id"));
    GEYSIR_ASSIGN_OR_RETURN(target.arn, Str(t, "Arn"));
    GEYSIR_ASSIGN_OR_RETURN(target.role_arn, Str(t, "RoleArn"));
    if (target.id.empty() || target.id.size() > 64 || target.arn.empty()) {
      return Validation("Each target needs an Id (1-64 characters) and an Arn.");
    }
    int given = 0;
    if (t.contains("Input") && t["Input"].is_string()) {
      target.input = t["Input"].get<std::string>();
      if (!json::accept(*target.input)) {
        return Validation("Target " + target.id + ": Input is not valid JSON.");
      }
      ++given;
    }
    if (t.contains("InputPath") && t["InputPath"].is_string()) {
      target.input_path = t["InputPath"].get<std::string>();
      ++given;
    }
    if (t.contains("InputTransformer") && t["InputTransformer"].is_object()) {
      target.input_transformer = t["InputTransformer"];
      if (!target.input_transformer.contains("InputTemplate") || !target.input_transformer["InputTemplate"].is_string()) {
        return Validation("Target " + target.id + ": InputTransformer needs an InputTemplate.");
      }
      ++given;
    }
    if (given > 1) {
      return Validation("Target " + target.id +
                        ": only one of Input, InputPath and InputTransformer may be given.");
    }
    if (!IsLambdaArn(target.arn)) {
      failed.push_back({{"TargetId", target.id},
                        {"ErrorCode", "ValidationException"},
                        {"ErrorMessage", "Geysir delivers to Lambda function targets only; " + target.arn.substr(0, 200) +
                                             " is not a function ARN."}});
      continue;
    }
    accepted.push_back(std::move(target));
  }
  {
    Transaction txn(db);
    int position = 0;
    {
      Statement s = db.Prepare("SELECT COALESCE(MAX(position), -1) + 1 FROM events_targets WHERE kind = 'rule' AND rule = ?");
      s.Bind(1, r.name);
      if (s.Step()) position = static_cast<int>(s.Int(0));
    }
    for (const Target& t : accepted) PutTarget("rule", r.name, t, position++);
    txn.Commit();
  }
  log::Info("targets_put", {{"rule", r.name}, {"accepted", accepted.size()}, {"failed", failed.size()}});
  return json{{"FailedEntryCount", failed.size()}, {"FailedEntries", failed}};
}

Result<json> EventsService::ListTargetsByRule(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const Rule r, RequireRule(body, "Rule"));
  json targets = json::array();
  for (const Target& t : LoadTargets(host_.store().db(), "rule", r.name)) {
    json j = {{"Id", t.id}, {"Arn", t.arn}};
    if (t.input) j["Input"] = *t.input;
    if (t.input_path) j["InputPath"] = *t.input_path;
    if (t.input_transformer.is_object()) j["InputTransformer"] = t.input_transformer;
    if (!t.role_arn.empty()) j["RoleArn"] = t.role_arn;
    targets.push_back(std::move(j));
  }
  return json{{"Targets", targets}};
}

Result<json> EventsService::RemoveTargets(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const Rule r, RequireRule(body, "Rule"));
  if (!body.contains("Ids") || !body["Ids"].is_array()) return Validation("Parameter Ids must be specified.");
  Db& db = host_.store().db();
  json failed = json::array();
  Transaction txn(db);
  for (const json& id : body["Ids"]) {
    if (!id.is_string()) continue;
    int n = db.Prepare("DELETE FROM events_targets WHERE kind = 'rule' AND rule = ? AND id = ?")
                .BindAll(r.name, id.get<std::string>())
                .Run();
    if (n == 0) {
      failed.push_back({{"TargetId", id}, {"ErrorCode", "ResourceNotFoundException"},
                        {"ErrorMessage", "Target " + id.get<std::string>() + " does not exist on rule " + r.name + "."}});
    }
  }
  txn.Commit();
  return json{{"FailedEntryCount", failed.size()}, {"FailedEntries", failed}};
}

Result<json> EventsService::ListRuleNamesByTarget(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string arn, Str(body, "TargetArn"));
  if (arn.empty()) return Validation("Parameter TargetArn must be specified.");
  Statement s = host_.store().db().Prepare(
      "SELECT DISTINCT rule FROM events_targets WHERE kind = 'rule' AND arn = ? ORDER BY rule");
  s.Bind(1, arn);
  json names = json::array();
  while (s.Step()) names.push_back(s.Text(0));
  return json{{"RuleNames", names}};
}

Result<json> EventsService::ListRules(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string prefix, Str(body, "NamePrefix"));
  GEYSIR_ASSIGN_OR_RETURN(const std::string token, Str(body, "NextToken"));
  int limit = 100;
  if (body.contains("Limit")) {
    // Range-checked, not clamped: Limit 0, -1 or 4294967297 is a client's mistake to report.
    std::optional<int64_t> l = JsonInteger<int64_t>(body["Limit"]);
    if (!l || *l < 1 || *l > 100) {
      return Validation("1 validation error detected: Value at 'limit' failed to satisfy constraint: "
                        "Member must be an integer between 1 and 100");
    }
    limit = static_cast<int>(*l);
  }
  Statement s = host_.store().db().Prepare(std::string("SELECT ") + kRuleColumns +
                                           " FROM events_rules WHERE kind = 'rule' AND name > ? AND substr(name, 1, ?) = ? "
                                           "ORDER BY name LIMIT ?");
  s.BindAll(token, static_cast<int64_t>(prefix.size()), prefix, limit + 1);
  json rules = json::array();
  std::string last;
  int n = 0;
  bool more = false;
  while (s.Step()) {
    if (n == limit) {
      more = true;
      break;
    }
    Rule r = ReadRule(s);
    json j = {{"Name", r.name}, {"Arn", RuleArn(r)}, {"State", r.state}, {"EventBusName", "default"}};
    if (!r.expression.empty()) j["ScheduleExpression"] = r.expression;
    if (!r.event_pattern.empty()) j["EventPattern"] = r.event_pattern;
    if (!r.description.empty()) j["Description"] = r.description;
    if (!r.role_arn.empty()) j["RoleArn"] = r.role_arn;
    rules.push_back(std::move(j));
    last = r.name;
    ++n;
  }
  json out = {{"Rules", rules}};
  if (more) out["NextToken"] = last;
  return out;
}

Result<json> EventsService::SetState(const json& body, const char* state) {
  GEYSIR_ASSIGN_OR_RETURN(Rule r, RequireRule(body));
  r.state = state;
  Upsert(std::move(r));
  return json::object();
}

Result<json> EventsService::ListTagsForResource(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string arn, Str(body, "ResourceARN"));
  size_t slash = arn.rfind("rule/");
  json tags = json::array();
  if (slash != std::string::npos) {
    if (auto r = LoadRule(host_.store().db(), "rule", arn.substr(slash + 5))) tags = r->tags;
  }
  return json{{"Tags", tags}};
}

std::unique_ptr<EventBridgeService> MakeEventBridgeService(ServiceHost& host) {
  return std::make_unique<EventsService>(host);
}

}  // namespace geysir::control
