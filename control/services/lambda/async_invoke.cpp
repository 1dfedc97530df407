// Lambda's asynchronous side, over the trigger runtime EventBridge owns
// (control/services/eventbridge/eventbridge.h): Invoke with InvocationType=Event, the
// event-invoke configs (Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s)), and the native
// views of schedules and queued or failed events (/geysir/v1/schedules, /geysir/v1/async-events
// and its /redrive) that `geysir` calls.
#include "control/services/lambda/lambda_internal.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "control/services/protocol.h"
#include "control/store.h"
#include "base/log.h"

namespace geysir::control::lambda {

using nlohmann::json;
using triggers::AsyncEvent;

namespace {

json ConfigJson(const ApiContext& api, const triggers::EventInvokeConfig& c) {
  json j = {{"LastModified", static_cast<double>(c.last_modified_ms) / 1000.0},
            {"FunctionArn", c.qualifier.empty() ? FunctionArn(api, c.function) : FunctionArn(api, c.function) + ":" + c.qualifier}};
  if (c.max_retry_attempts) j["MaximumRetryAttempts"] = *c.max_retry_attempts;
  if (c.max_event_age_s) j["MaximumEventAgeInSeconds"] = *c.max_event_age_s;
  json dest = {{"OnSuccess", json::object()}, {"OnFailure", json::object()}};
  if (!c.on_success.empty()) dest["OnSuccess"] = {{"Destination", c.on_success}};
  if (!c.on_failure.empty()) dest["OnFailure"] = {{"Destination", c.on_failure}};
  j["DestinationConfig"] = dest;
  return j;
}

// Applies the fields present in a Put/UpdateFunctionEventInvokeConfig body.
void ApplyConfigBody(ServiceHost& host, const json& body, triggers::EventInvokeConfig& c) {
  auto int_field = [&](const char* key, const char* member, int lo, int hi, std::optional<int>& out) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return;
    if (!it->is_number_integer()) throw ApiException(InvalidParameterValue(std::string(key) + " must be an integer"));
    int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) {
      throw ApiException(InvalidParameterValue(
          "1 validation error detected: Value '" + std::to_string(v) + "' at '" + member +
          "' failed to satisfy constraint: Member must have value " +
          (v < lo ? "greater than or equal to " + std::to_string(lo) : "less than or equal to " + std::to_string(hi))));
    }
    out = static_cast<int>(v);
  };
  int_field("MaximumRetryAttempts", "maximumRetryAttempts", 0, 2, c.max_retry_attempts);
  int_field("MaximumEventAgeInSeconds", "maximumEventAgeInSeconds", 60, 21600, c.max_event_age_s);
  if (auto it = body.find("DestinationConfig"); it != body.end() && it->is_object()) {
    for (const char* which : {"OnSuccess", "OnFailure"}) {
      std::string dest;
      if (it->contains(which) && (*it)[which].is_object() && (*it)[which].contains("Destination") &&
          (*it)[which]["Destination"].is_string()) {
        dest = (*it)[which]["Destination"].get<std::string>();
      }
      if (!dest.empty()) {
        if (!events::IsLambdaArn(dest)) {
          throw ApiException(InvalidParameterValue("The destination ARN " + dest.substr(0, 200) +
                                                   " is not supported: Geysir delivers to Lambda function ARNs only."));
        }
        FunctionRef ref = ParseFunctionRef(dest);
        if (!host.store().GetFunction(ref.name).ok()) {
          throw ApiException(InvalidParameterValue("The destination function " + dest.substr(0, 200) + " does not exist."));
        }
      }
      (std::string(which) == "OnSuccess" ? c.on_success : c.on_failure) = dest;
    }
  }
}

}  // namespace

void EnqueueAsyncInvoke(TriggerRuntime& triggers, const std::string& function, const std::string& qualifier,
                        std::string payload, const std::string& client_context_b64, const std::string& request_id,
                        const Responder& resp) {
  AsyncEvent e;
  e.request_id = request_id;
  e.function = function;
  e.qualifier = qualifier == "$LATEST" ? "" : qualifier;
  e.payload = std::move(payload);
  e.client_context_b64 = client_context_b64;
  e.source = "lambda";
  triggers.queue().Enqueue(std::move(e), [resp, request_id, function](Status st) {
    if (st.ok()) {
      net::HttpResponse r;
      r.status = 202;
      r.headers = {{"x-amzn-RequestId", request_id}};
      resp->Send(std::move(r));
      return;
    }
    log::Error("async_enqueue_failed", {{"function", function}, {"request_id", request_id}, {"error", st.ToString()}});
    resp->Send(ToHttpResponse(ServiceError("The event was not queued: " + st.message()), request_id));
  });
}

namespace {

// What an event-invoke config request addresses: the function (it must exist) and the
// qualifier ("" = $LATEST), from the Qualifier parameter or else the name's suffix.
struct ConfigTarget {
  FunctionRef ref;
  std::string qualifier;
  std::string shown;  // the ARN Lambda names in its errors
};

ConfigTarget TargetOf(Lambda& l, const Call& call) {
  ConfigTarget t;
  auto query = ParseQuery(call.req.query);
  t.ref = ParseFunctionRef(call.route.function);
  t.qualifier = query.count("Qualifier") ? query["Qualifier"] : t.ref.qualifier;
  if (t.qualifier == "$LATEST") t.qualifier = "";
  if (!l.store_.GetFunction(t.ref.name).ok()) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(l.api_, t.ref.name)));
  }
  t.shown = t.qualifier.empty() ? FunctionArn(l.api_, t.ref.name) : FunctionArn(l.api_, t.ref.name) + ":" + t.qualifier;
  return t;
}

ApiException NoConfig(const ConfigTarget& t) {
  return ApiException(ResourceNotFound("The function " + t.shown + " doesn't have an EventInvokeConfig"));
}

}  // namespace

void Lambda::ListFunctionEventInvokeConfigs(Call& call) {
  const ConfigTarget t = TargetOf(*this, call);
  json list = json::array();
  for (const auto& c : triggers_.queue().ListConfigs(t.ref.name)) list.push_back(ConfigJson(api_, c));
  call.resp->Send(JsonReply(200, {{"FunctionEventInvokeConfigs", list}}, call.rid));
}

void Lambda::GetFunctionEventInvokeConfig(Call& call) {
  const ConfigTarget t = TargetOf(*this, call);
  std::optional<triggers::EventInvokeConfig> existing = triggers_.queue().GetConfig(t.ref.name, t.qualifier);
  if (!existing) throw NoConfig(t);
  call.resp->Send(JsonReply(200, ConfigJson(api_, *existing), call.rid));
}

void Lambda::DeleteFunctionEventInvokeConfig(Call& call) {
  const ConfigTarget t = TargetOf(*this, call);
  if (!triggers_.queue().DeleteConfig(t.ref.name, t.qualifier)) throw NoConfig(t);
  call.resp->Send(EmptyReply(204, call.rid));
}

void Lambda::PutFunctionEventInvokeConfig(Call& call) { PutEventInvokeConfig(call, /*merge=*/false); }

void Lambda::UpdateFunctionEventInvokeConfig(Call& call) { PutEventInvokeConfig(call, /*merge=*/true); }

void Lambda::PutEventInvokeConfig(Call& call, bool merge) {
  const ConfigTarget t = TargetOf(*this, call);
  triggers::AsyncQueue& q = triggers_.queue();
  std::optional<triggers::EventInvokeConfig> existing = q.GetConfig(t.ref.name, t.qualifier);
  json body = ParseJsonObject(call.req.body);
  triggers::EventInvokeConfig c;
  if (merge) {
    if (!existing) throw NoConfig(t);
    c = *existing;  // Update merges; Put replaces
  }
  c.function = t.ref.name;
  c.qualifier = t.qualifier;
  ApplyConfigBody(host_, body, c);
  c.last_modified_ms = NowMs();
  q.PutConfig(c);
  log::Info("event_invoke_config_put", {{"function", t.ref.name}, {"qualifier", t.qualifier}, {"on_failure", c.on_failure}});
  call.resp->Send(JsonReply(200, ConfigJson(api_, c), call.rid));
}

void Lambda::ListSchedules(Call& call) { call.resp->Send(JsonReply(200, triggers_.ListSchedulesJson(), call.rid)); }

void Lambda::ListAsyncEvents(Call& call) {
  triggers::AsyncQueue& q = triggers_.queue();
  auto query = ParseQuery(call.req.query);
  std::string state = query.count("state") ? query["state"] : "queued";
  if (state != "queued" && state != "failed") {
    throw ApiException(InvalidParameterValue("state must be queued or failed"));
  }
  int limit = 100;
  if (query.count("limit")) {
    const std::string& v = query["limit"];
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || limit < 1 || limit > 10000) {
      throw ApiException(InvalidParameterValue("limit must be an integer between 1 and 10000"));
    }
  }
  json events = json::array();
  for (const AsyncEvent& e : q.List(state, query.count("function") ? query["function"] : "", limit)) {
    json j = {{"id", e.id},
              {"request_id", e.request_id},
              {"function", e.function},
              {"qualifier", e.qualifier},
              {"source", e.source},
              {"enqueued", IsoTimestamp(e.enqueued_ms)},
              {"attempts", e.attempts},
              {"next_attempt", IsoTimestamp(e.next_attempt_ms)},
              {"state", e.state},
              {"last_error", e.last_error},
              {"payload", e.payload.size() > 4096 ? e.payload.substr(0, 4096) + "..." : e.payload}};
    if (e.failed_ms) j["failed"] = IsoTimestamp(e.failed_ms);
    events.push_back(std::move(j));
  }
  json out = {{"events", events}, {"in_flight", q.in_flight()}, {"completed", q.completed()}};
  // Attempts of this function running now (the benchmark compares it to its concurrency).
  if (query.count("function")) out["function_in_flight"] = q.in_flight(query["function"]);
  call.resp->Send(JsonReply(200, out, call.rid));
}

void Lambda::RedriveAsyncEvents(Call& call) {
  json body = ParseJsonObject(call.req.body);
  int64_t id = body.contains("id") && body["id"].is_number_integer() ? body["id"].get<int64_t>() : 0;
  bool all = body.contains("all") && body["all"].is_boolean() && body["all"].get<bool>();
  if (!id && !all) throw ApiException(InvalidParameterValue("give {\"id\": N} or {\"all\": true}"));
  std::string function = body.contains("function") && body["function"].is_string() ? body["function"].get<std::string>() : "";
  int n = triggers_.queue().Redrive(id, function);
  if (id && n == 0) throw ApiException(ResourceNotFound("No failed event with id " + std::to_string(id)));
  call.resp->Send(JsonReply(200, {{"redriven", n}}, call.rid));
}

}  // namespace geysir::control::lambda
