// Geysir's native API that is Lambda's: the health check and a function's logs.
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

void Lambda::Health(Call& call) {
  call.resp->Send(JsonReply(200, {{"status", "ok"}, {"isolation", opt_.isolation}}, call.rid));
}

void Lambda::GetLogs(Call& call) {
  const std::string& raw_name = call.route.function;
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string name = ResolveFunctionName(api_, raw_name, "");
  auto query = ParseQuery(req.query);
  auto int_param = [&](const char* key, int64_t fallback, int64_t lo, int64_t hi) -> int64_t {
    auto it = query.find(key);
    if (it == query.end() || it->second.empty()) return fallback;
    auto v = ParseInt(it->second);
    if (!v || *v < lo || *v > hi) {
      throw ApiException(InvalidParameterValue(std::string(key) + " must be an integer between " + std::to_string(lo) +
                                               " and " + std::to_string(hi)));
    }
    return *v;
  };
  LogQuery q;
  q.function_name = name;
  q.start_ms = int_param("start_time", 0, 0, INT64_MAX);
  q.end_ms = int_param("end_time", INT64_MAX, 0, INT64_MAX);
  q.limit = static_cast<int>(int_param("limit", 1000, 1, 10000));
  if (auto it = query.find("request_id"); it != query.end()) q.request_id = it->second;
  if (auto it = query.find("next_token"); it != query.end()) q.next_token = it->second;
  LogPage page = ValueOrThrow(store_.QueryLogs(q));
  if (page.events.empty() && q.next_token.empty()) {
    // An unknown name should say so rather than look like a quiet function; logs of a deleted
    // function stay readable while they are kept.
    Result<FunctionRecord> f = store_.GetFunction(name);
    if (!f.ok() && f.status().code() == Code::kNotFound && ValueOrThrow(store_.CountLogs(name)) == 0) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
    }
  }
  json events = json::array();
  for (const LogRecord& e : page.events) {
    events.push_back({{"timestamp", e.timestamp_ms},
                      {"message", e.message},
                      {"requestId", e.request_id},
                      {"logStream", e.log_stream}});
  }
  int64_t next_start = page.events.empty() ? q.start_ms : page.events.back().timestamp_ms + 1;
  json body = {{"events", std::move(events)}, {"nextStartTime", next_start}, {"more", page.more}};
  if (!page.next_token.empty()) body["nextToken"] = page.next_token;
  resp->Send(JsonReply(200, body, rid));
}

}  // namespace geysir::control::lambda
