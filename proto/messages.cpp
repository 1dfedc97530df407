#include "proto/messages.h"

namespace geysir::proto {

using nlohmann::json;

// Optional fields are read with value() so that older peers, which omit newer fields, still
// parse: every field added later must have a default.

void to_json(json& j, const FunctionConfig& c) {
  j = json{{"name", c.name},
           {"arn", c.arn},
           {"version", c.version},
           {"revision_id", c.revision_id},
           {"runtime", c.runtime},
           {"handler", c.handler},
           {"code_dir", c.code_dir},
           {"code_sha256", c.code_sha256},
           {"memory_mb", c.memory_mb},
           {"timeout_s", c.timeout_s},
           {"ephemeral_storage_mb", c.ephemeral_storage_mb},
           {"network", c.network},
           {"environment", c.environment},
           {"execution_mode", c.execution_mode},
           {"region", c.region},
           {"log_group", c.log_group}};
  if (c.reserved_concurrency) j["reserved_concurrency"] = *c.reserved_concurrency;
}

void from_json(const json& j, FunctionConfig& c) {
  FunctionConfig d;
  c.name = j.at("name").get<std::string>();
  c.arn = j.value("arn", d.arn);
  c.version = j.value("version", d.version);
  c.revision_id = j.value("revision_id", d.revision_id);
  c.runtime = j.value("runtime", d.runtime);
  c.handler = j.value("handler", d.handler);
  c.code_dir = j.value("code_dir", d.code_dir);
  c.code_sha256 = j.value("code_sha256", d.code_sha256);
  c.memory_mb = j.value("memory_mb", d.memory_mb);
  c.timeout_s = j.value("timeout_s", d.timeout_s);
  c.ephemeral_storage_mb = j.value("ephemeral_storage_mb", d.ephemeral_storage_mb);
  c.network = j.value("network", d.network);
  c.environment = j.value("environment", d.environment);
  c.execution_mode = j.value("execution_mode", d.execution_mode);
  if (j.contains("reserved_concurrency") && j["reserved_concurrency"].is_number_unsigned()) {
    c.reserved_concurrency = j["reserved_concurrency"].get<uint32_t>();
  } else {
    c.reserved_concurrency.reset();
  }
  c.region = j.value("region", d.region);
  c.log_group = j.value("log_group", "");
  if (c.log_group.empty()) c.log_group = "/aws/lambda/" + c.name;
}

void to_json(json& j, const InvokeRequest& r) {
  j = json{{"id", r.id},
           {"request_id", r.request_id},
           {"function", r.function},
           {"source", r.source},
           {"want_log_tail", r.want_log_tail},
           {"client_context_b64", r.client_context_b64}};
}

void from_json(const json& j, InvokeRequest& r) {
  r.id = j.at("id").get<uint64_t>();
  r.request_id = j.at("request_id").get<std::string>();
  r.function = j.at("function").get<FunctionConfig>();
  r.source = j.value("source", InvokeSource::kApi);
  r.want_log_tail = j.value("want_log_tail", false);
  r.client_context_b64 = j.value("client_context_b64", "");
}

void to_json(json& j, const InvokeResult& r) {
  j = json{{"id", r.id},
           {"request_id", r.request_id},
           {"outcome", r.outcome},
           {"error_type", r.error_type},
           {"executed_version", r.executed_version},
           {"duration_ms", r.duration_ms},
           {"billed_duration_ms", r.billed_duration_ms},
           {"memory_size_mb", r.memory_size_mb},
           {"max_memory_used_mb", r.max_memory_used_mb},
           {"log_tail", r.log_tail},
           {"worker_pid", r.worker_pid}};
  if (r.init_duration_ms) j["init_duration_ms"] = *r.init_duration_ms;
}

void from_json(const json& j, InvokeResult& r) {
  r.id = j.at("id").get<uint64_t>();
  r.request_id = j.value("request_id", "");
  r.outcome = j.value("outcome", InvokeOutcome::kInternal);
  r.error_type = j.value("error_type", "");
  r.executed_version = j.value("executed_version", "$LATEST");
  r.duration_ms = j.value("duration_ms", 0.0);
  r.billed_duration_ms = j.value("billed_duration_ms", uint64_t{0});
  r.memory_size_mb = j.value("memory_size_mb", 0u);
  r.max_memory_used_mb = j.value("max_memory_used_mb", 0u);
  if (j.contains("init_duration_ms") && j["init_duration_ms"].is_number()) {
    r.init_duration_ms = j["init_duration_ms"].get<double>();
  } else {
    r.init_duration_ms.reset();
  }
  r.log_tail = j.value("log_tail", "");
  r.worker_pid = j.value("worker_pid", 0);
}

void to_json(json& j, const LogEvent& e) { j = json{{"ts", e.timestamp_ms}, {"msg", e.message}}; }
void from_json(const json& j, LogEvent& e) {
  e.timestamp_ms = j.at("ts").get<int64_t>();
  e.message = j.at("msg").get<std::string>();
}

void to_json(json& j, const LogBatch& b) {
  j = json{{"function_name", b.function_name},
           {"version", b.version},
           {"log_stream", b.log_stream},
           {"request_id", b.request_id},
           {"events", b.events}};
  if (!b.outcome.empty()) {
    j["outcome"] = b.outcome;
    j["duration_ms"] = b.duration_ms;
  }
  if (b.seq != 0) {
    j["sender"] = b.sender;
    j["seq"] = b.seq;
  }
}
void from_json(const json& j, LogBatch& b) {
  b.function_name = j.at("function_name").get<std::string>();
  b.version = j.value("version", "$LATEST");
  b.log_stream = j.value("log_stream", "");
  b.request_id = j.value("request_id", "");
  b.events = j.value("events", std::vector<LogEvent>{});
  b.outcome = j.value("outcome", "");
  b.duration_ms = j.value("duration_ms", 0.0);
  b.sender = j.value("sender", "");
  b.seq = j.value("seq", uint64_t{0});
}

void to_json(json& j, const LogBatches& b) { j = json{{"batches", b.batches}}; }
void from_json(const json& j, LogBatches& b) {
  auto it = j.find("batches");
  if (it == j.end()) {
    b.batches.assign(1, j.get<LogBatch>());
  } else {
    b.batches = it->get<std::vector<LogBatch>>();
  }
}

namespace {

std::string TakeString(json& j, const char* key, const char* fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  return std::move(it->get_ref<std::string&>());  // throws type_error for a non-string
}

LogBatch TakeLogBatch(json& j) {
  if (!j.is_object()) throw json::type_error::create(302, "a log batch must be an object", &j);
  LogBatch b;
  b.function_name = std::move(j.at("function_name").get_ref<std::string&>());
  b.version = TakeString(j, "version", "$LATEST");
  b.log_stream = TakeString(j, "log_stream", "");
  b.request_id = TakeString(j, "request_id", "");
  auto events = j.find("events");
  if (events != j.end()) {
    if (!events->is_array()) throw json::type_error::create(302, "events must be an array", &*events);
    b.events.reserve(events->size());
    for (json& e : *events) {
      if (!e.is_object()) throw json::type_error::create(302, "an event must be an object", &e);
      b.events.push_back(LogEvent{e.at("ts").get<int64_t>(), std::move(e.at("msg").get_ref<std::string&>())});
    }
  }
  b.outcome = TakeString(j, "outcome", "");
  b.duration_ms = j.value("duration_ms", 0.0);
  b.sender = TakeString(j, "sender", "");
  b.seq = j.value("seq", uint64_t{0});
  return b;
}

}  // namespace

LogBatches TakeLogBatches(json& j) {
  LogBatches out;
  auto it = j.find("batches");
  if (it == j.end()) {
    out.batches.push_back(TakeLogBatch(j));
    return out;
  }
  if (!it->is_array()) throw json::type_error::create(302, "batches must be an array", &*it);
  out.batches.reserve(it->size());
  for (json& b : *it) out.batches.push_back(TakeLogBatch(b));
  return out;
}

void to_json(json& j, const LogsAck& a) { j = json{{"sender", a.sender}, {"seq", a.seq}}; }
void from_json(const json& j, LogsAck& a) {
  a.sender = j.at("sender").get<std::string>();
  a.seq = j.at("seq").get<uint64_t>();
}

void to_json(json& j, const FunctionUrlRoute& r) {
  j = json{{"url_id", r.url_id}, {"auth_type", r.auth_type}, {"function", r.function}, {"cors", r.cors}};
}
void from_json(const json& j, FunctionUrlRoute& r) {
  r.url_id = j.at("url_id").get<std::string>();
  r.auth_type = j.value("auth_type", "NONE");
  r.function = j.at("function").get<FunctionConfig>();
  r.cors = j.value("cors", json(nullptr));
}

void to_json(json& j, const ApiRoute& r) {
  j = json{{"method", r.method},
           {"path", r.path},
           {"resource_id", r.resource_id},
           {"route_key", r.route_key},
           {"payload_format", r.payload_format},
           {"api_key_required", r.api_key_required},
           {"timeout_ms", r.timeout_ms}};
  if (r.function) j["function"] = *r.function;
}
void from_json(const json& j, ApiRoute& r) {
  r.method = j.value("method", "ANY");
  r.path = j.value("path", "/");
  r.resource_id = j.value("resource_id", "");
  r.route_key = j.value("route_key", "");
  r.payload_format = j.value("payload_format", "1.0");
  r.api_key_required = j.value("api_key_required", false);
  r.timeout_ms = j.value("timeout_ms", uint32_t{29000});
  if (auto it = j.find("function"); it != j.end() && !it->is_null()) r.function = it->get<FunctionConfig>();
}

void to_json(json& j, const ApiStage& s) {
  j = json{{"name", s.name}, {"variables", s.variables}, {"routes", s.routes}};
}
void from_json(const json& j, ApiStage& s) {
  s.name = j.at("name").get<std::string>();
  s.variables = j.value("variables", std::map<std::string, std::string>{});
  s.routes = j.value("routes", std::vector<ApiRoute>{});
}

void to_json(json& j, const ApiGatewayApi& a) {
  j = json{{"api_id", a.api_id},
           {"kind", a.kind},
           {"binary_media_types", a.binary_media_types},
           {"api_keys", a.api_keys},
           {"stages", a.stages}};
}
void from_json(const json& j, ApiGatewayApi& a) {
  a.api_id = j.at("api_id").get<std::string>();
  a.kind = j.value("kind", "rest");
  a.binary_media_types = j.value("binary_media_types", std::vector<std::string>{});
  a.api_keys = j.value("api_keys", std::vector<std::string>{});
  a.stages = j.value("stages", std::vector<ApiStage>{});
}

void to_json(json& j, const RouteTable& t) {
  j = json{{"generation", t.generation}, {"function_urls", t.function_urls}};
  if (!t.apis.empty()) j["apis"] = t.apis;
}
void from_json(const json& j, RouteTable& t) {
  t.generation = j.at("generation").get<uint64_t>();
  t.function_urls = j.value("function_urls", std::vector<FunctionUrlRoute>{});
  t.apis = j.value("apis", std::vector<ApiGatewayApi>{});
}

void to_json(json& j, const RetireFunction& r) { j = json{{"name", r.name}, {"revision_id", r.revision_id}}; }
void from_json(const json& j, RetireFunction& r) {
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  r.name = text("name");
  r.revision_id = text("revision_id");
}

}  // namespace geysir::proto
