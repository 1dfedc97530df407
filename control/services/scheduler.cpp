// SchedulerService: see scheduler.h.
#include "control/services/scheduler.h"

#include <map>
#include <nlohmann/json.hpp>

#include "control/db.h"
#include "control/services/lambda/lambda_api.h"
#include "control/store.h"
#include "control/triggers/schedule_expression.h"
#include "control/triggers/timezone.h"
#include "base/json_bounds.h"
#include "base/log.h"
#include "net/http_server.h"

namespace geysir::control {
namespace {

using events::IsLambdaArn;
using events::kRuleColumns;
using events::LoadRule;
using events::LoadTargets;
using events::ReadRule;
using events::Rule;
using events::Str;
using events::Target;
using events::ValidRuleName;
using nlohmann::json;
using triggers::ScheduleExpression;
using triggers::TimeZone;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Status Validation(std::string message) {
  return AwsStatus(Code::kInvalidArgument, "ValidationException", std::move(message));
}

Status ScheduleNotFound(const std::string& name) {
  return AwsStatus(Code::kNotFound, "ResourceNotFoundException", "Schedule " + name + " does not exist.");
}

// EventBridge Scheduler's answers whose status is not their code's.
constexpr ErrorStatus kSchedulerErrorStatuses[] = {
    {"MethodNotAllowedException", 405},
};

class SchedulerService final : public Service {
 public:
  SchedulerService(ServiceHost& host, events::RuleEngine& engine) : host_(host), engine_(engine) {}
  std::string_view signing_name() const override { return "scheduler"; }
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override {
    net::HttpResponse r;
    r.status = error.http_status;
    r.headers = {{"Content-Type", "application/json"},
                 {"x-amzn-RequestId", request_id},
                 {"x-amzn-ErrorType", error.type}};
    r.body = Dump(json{{"Message", error.message}});
    return r;
  }
  std::span<const ErrorStatus> error_statuses() const override { return kSchedulerErrorStatuses; }

  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override {
    events::RuleEngine* events = &engine_;
    std::string path = req.path;
    Result<json> out = json::object();
    int status = 200;
    auto name_of = [&](std::string_view prefix) { return net::PercentDecode(path.substr(prefix.size()), false); };
    if (path == "/schedules" && req.method == "GET") {
      out = List(*events, ParseQuery(req.query));
    } else if (path.rfind("/schedules/", 0) == 0) {
      std::string name = name_of("/schedules/");
      if (!ValidRuleName(name)) return Validation("Schedule name must be 1-64 of [0-9a-zA-Z-_.].");
      if (req.method == "POST" || req.method == "PUT") {
        json body = ParseUntrustedJsonOrDiscarded(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
        if (!body.is_object()) return Validation("The request body is not a JSON object.");
        out = Put(*events, name, body, req.method == "POST");
      } else if (req.method == "GET") {
        out = Get(*events, name);
      } else if (req.method == "DELETE") {
        if (!LoadRule(host_.store().db(), "schedule", name)) return ScheduleNotFound(name);
        events->DeleteRule("schedule", name);
      } else {
        return AwsStatus(Code::kUnimplemented, "MethodNotAllowedException",
                         "Method " + req.method + " is not allowed on " + path);
      }
    } else {
      return AwsStatus(Code::kUnimplemented, "UnknownOperationException",
                       "Geysir implements EventBridge Scheduler's schedules (/schedules/NAME) only");
    }
    if (!out.ok()) return out.status();
    net::HttpResponse r;
    r.status = status;
    r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", info.request_id}};
    r.body = Dump(*out);
    resp->Send(std::move(r));
    return Status::Ok();
  }

 private:
  Result<json> Put(events::RuleEngine& ev, const std::string& name, const json& body, bool create) {
    Db& db = host_.store().db();
    std::optional<Rule> old = LoadRule(db, "schedule", name);
    if (create && old) {
      return AwsStatus(Code::kAlreadyExists, "ConflictException", "Schedule " + name + " already exists.");
    }
    if (!create && !old) return ScheduleNotFound(name);
    Rule r;
    r.kind = "schedule";
    r.name = name;
    GEYSIR_ASSIGN_OR_RETURN(r.expression, Str(body, "ScheduleExpression"));
    Result<ScheduleExpression> e = ScheduleExpression::Parse(r.expression);
    if (!e.ok()) return Validation("Invalid Schedule Expression " + r.expression.substr(0, 256) + ".");
    GEYSIR_ASSIGN_OR_RETURN(r.timezone, Str(body, "ScheduleExpressionTimezone"));
    if (r.timezone.empty()) r.timezone = "UTC";
    Result<TimeZone> tz = TimeZone::Load(r.timezone);
    if (!tz.ok()) return Validation("Invalid Timezone " + r.timezone.substr(0, 64) + ". " + tz.status().message());
    GEYSIR_ASSIGN_OR_RETURN(const std::string state, Str(body, "State"));
    r.state = state.empty() ? "ENABLED" : state;
    if (r.state != "ENABLED" && r.state != "DISABLED") return Validation("State must be ENABLED or DISABLED.");
    GEYSIR_ASSIGN_OR_RETURN(r.description, Str(body, "Description"));
    if (!body.contains("Target") || !body["Target"].is_object()) return Validation("Target is required.");
    const json& t = body["Target"];
    Target target;
    target.id = "scheduler";
    GEYSIR_ASSIGN_OR_RETURN(target.arn, Str(t, "Arn"));
    GEYSIR_ASSIGN_OR_RETURN(target.role_arn, Str(t, "RoleArn"));
    if (!IsLambdaArn(target.arn)) {
      return Validation("Geysir's scheduler delivers to Lambda function ARNs only; got " + target.arn.substr(0, 200) +
                        ".");
    }
    if (t.contains("Input") && t["Input"].is_string()) target.input = t["Input"].get<std::string>();
    if (e->kind() == ScheduleExpression::Kind::kRate) {
      // Scheduler's rate schedules start at once when no StartDate is given.
    }
    Rule stored = ev.Upsert(std::move(r));
    {
      Transaction txn(db);
      db.Prepare("DELETE FROM events_targets WHERE kind = 'schedule' AND rule = ?").Bind(1, name).Run();
      ev.PutTarget("schedule", name, target, 0);
      txn.Commit();
    }
    log::Info("schedule_put", {{"schedule", name}, {"expression", stored.expression}, {"timezone", stored.timezone}});
    return json{{"ScheduleArn", ev.RuleArn(stored)}};
  }

  json Describe(events::RuleEngine& ev, const Rule& r) {
    json j = {{"Name", r.name},
              {"GroupName", "default"},
              {"Arn", ev.RuleArn(r)},
              {"ScheduleExpression", r.expression},
              {"ScheduleExpressionTimezone", r.timezone},
              {"State", r.state},
              {"FlexibleTimeWindow", {{"Mode", "OFF"}}},
              {"CreationDate", static_cast<double>(r.created_ms) / 1000.0},
              {"LastModificationDate", static_cast<double>(r.modified_ms) / 1000.0}};
    if (!r.description.empty()) j["Description"] = r.description;
    std::vector<Target> targets = LoadTargets(host_.store().db(), "schedule", r.name);
    if (!targets.empty()) {
      json t = {{"Arn", targets[0].arn}, {"RoleArn", targets[0].role_arn}};
      if (targets[0].input) t["Input"] = *targets[0].input;
      j["Target"] = t;
    }
    return j;
  }

  Result<json> Get(events::RuleEngine& ev, const std::string& name) {
    std::optional<Rule> r = LoadRule(host_.store().db(), "schedule", name);
    if (!r) return ScheduleNotFound(name);
    return Describe(ev, *r);
  }

  json List(events::RuleEngine& ev, const std::map<std::string, std::string>& query) {
    std::string prefix = query.count("NamePrefix") ? query.at("NamePrefix") : "";
    Statement s = host_.store().db().Prepare(std::string("SELECT ") + kRuleColumns +
                                             " FROM events_rules WHERE kind = 'schedule' ORDER BY name");
    json out = json::array();
    while (s.Step()) {
      Rule r = ReadRule(s);
      if (r.name.rfind(prefix, 0) != 0) continue;
      json d = Describe(ev, r);
      json item = {{"Name", r.name}, {"GroupName", "default"}, {"Arn", d["Arn"]}, {"State", r.state},
                   {"CreationDate", d["CreationDate"]}, {"LastModificationDate", d["LastModificationDate"]}};
      if (d.contains("Target")) item["Target"] = {{"Arn", d["Target"]["Arn"]}};
      out.push_back(std::move(item));
    }
    return {{"Schedules", out}};
  }

  ServiceHost& host_;
  events::RuleEngine& engine_;
};

}  // namespace

std::unique_ptr<Service> MakeSchedulerService(ServiceHost& host, events::RuleEngine& engine) {
  return std::make_unique<SchedulerService>(host, engine);
}

}  // namespace geysir::control
