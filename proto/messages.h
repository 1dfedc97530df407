// The message types that cross Geysir's process boundaries, each defined once here with its
// JSON mapping (to_json/from_json beside the struct). docs/wire-formats.md documents them.
//
//   gateway  --invoke-->  scheduler  --result-->  gateway        (scheduler.sock)
//   control  --invoke-->  scheduler  --result-->  control        (scheduler.sock)
//   scheduler --logs--> control --logs_ack--> scheduler           (control.sock)
//   gateway --subscribe_routes--> control --routes--> gateway     (control.sock, pushed on change)
//   control  --retire-->  scheduler                                (scheduler.sock, no answer)
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "proto/frame.h"

namespace geysir::proto {

// Message "type" values in frame headers.
inline constexpr const char* kMsgInvoke = "invoke";
inline constexpr const char* kMsgResult = "result";
inline constexpr const char* kMsgLogs = "logs";
inline constexpr const char* kMsgLogsAck = "logs_ack";
inline constexpr const char* kMsgSubscribeRoutes = "subscribe_routes";
inline constexpr const char* kMsgRoutes = "routes";
inline constexpr const char* kMsgRetire = "retire";

// How a function's processes serve invocations, chosen with the function's environment variable
// GEYSIR_EXECUTION_MODE (kExecutionModeVariable; docs/request-path.md): "per-request" (the
// default) forks a fresh child per invocation; "reuse" keeps a worker warm across invocations,
// one at a time, as Lambda's execution environments do. Control validates the variable and
// sets the typed field, so the scheduler never reads the environment map.
enum class ExecutionMode { kPerRequest, kReuse };
NLOHMANN_JSON_SERIALIZE_ENUM(ExecutionMode, {{ExecutionMode::kPerRequest, "per-request"},
                                             {ExecutionMode::kReuse, "reuse"}})
inline constexpr const char* kExecutionModeVariable = "GEYSIR_EXECUTION_MODE";

// A snapshot of everything the scheduler needs to run one version of a function. Control builds
// it; it travels inside each invoke so the scheduler needs no database. `revision_id` changes on
// every code or configuration update: the scheduler keys its template pools by (name, revision_id).
struct FunctionConfig {
  std::string name;
  std::string arn;                  // arn:aws:lambda:<region>:<account>:function:<name>
  std::string version = "$LATEST";
  std::string revision_id;
  std::string runtime = "python3.11";
  std::string handler;              // "module.function", module may be dotted
  std::string code_dir;             // absolute path of the unpacked, read-only code
  std::string code_sha256;          // base64 of the zip's SHA-256, as Lambda reports CodeSha256
  uint32_t memory_mb = 128;
  uint32_t timeout_s = 3;
  uint32_t ephemeral_storage_mb = 512;
  // "none": loopback only (the default); "egress": outbound connections through the host's NAT,
  // the host and listed ranges refused. Chosen with the tag geysir:network (docs/security.md).
  std::string network = "none";
  std::map<std::string, std::string> environment;
  ExecutionMode execution_mode = ExecutionMode::kPerRequest;
  std::optional<uint32_t> reserved_concurrency;  // unset: the scheduler's per-function default
  std::string region = "us-east-1";
  std::string log_group;            // "/aws/lambda/<name>"

  // Every field: an invoke header refers to a config sent earlier only when it is equal
  // (proto/invoke_refs.h).
  bool operator==(const FunctionConfig&) const = default;
};
void to_json(nlohmann::json& j, const FunctionConfig& c);
void from_json(const nlohmann::json& j, FunctionConfig& c);

// What asked for an invocation; used for logs and metrics only.
enum class InvokeSource { kFunctionUrl, kApi, kAsync, kSchedule };
NLOHMANN_JSON_SERIALIZE_ENUM(InvokeSource, {{InvokeSource::kFunctionUrl, "function_url"},
                                            {InvokeSource::kApi, "api"},
                                            {InvokeSource::kAsync, "async"},
                                            {InvokeSource::kSchedule, "schedule"}})

// Frame header of an "invoke"; the frame body is the event (JSON bytes, passed through verbatim).
// On the wire, `function` may be replaced by a "function_ref" to a config sent earlier on the
// same connection (proto/invoke_refs.h); to_json/from_json write and read the whole form.
struct InvokeRequest {
  uint64_t id = 0;                  // the caller's correlation id on this connection
  std::string request_id;           // Lambda's aws_request_id (a UUID), made by the caller
  FunctionConfig function;
  InvokeSource source = InvokeSource::kApi;
  bool want_log_tail = false;       // Invoke LogType=Tail: return the last 4 KB of the log
  std::string client_context_b64;   // X-Amz-Client-Context, passed to context.client_context
};
void to_json(nlohmann::json& j, const InvokeRequest& r);
void from_json(const nlohmann::json& j, InvokeRequest& r);

// How an invocation ended. The body of the "result" frame is:
//   kOk:         the handler's return value, serialised as JSON
//   kUnhandled / kTimeout: Lambda's error object {"errorMessage","errorType","stackTrace"}
//   kThrottled / kInternal / kUnavailable: a JSON object {"message": "..."} explaining why
enum class InvokeOutcome {
  kOk,
  kUnhandled,    // handler raised, init failed, the process crashed or ran out of memory
  kTimeout,      // killed at the function's timeout
  kThrottled,    // concurrency limit and wait queue full
  kInternal,     // Geysir failed (sandbox setup); not the function's fault
  kUnavailable,  // the scheduler could not be reached, or its connection dropped (a restart):
                 // made by InvokeClient on the caller's side, never sent by the scheduler
};
// An unknown string maps to the first pair: kInternal, never a false "ok".
NLOHMANN_JSON_SERIALIZE_ENUM(InvokeOutcome, {{InvokeOutcome::kInternal, "internal"},
                                             {InvokeOutcome::kOk, "ok"},
                                             {InvokeOutcome::kUnhandled, "unhandled"},
                                             {InvokeOutcome::kTimeout, "timeout"},
                                             {InvokeOutcome::kThrottled, "throttled"},
                                             {InvokeOutcome::kUnavailable, "unavailable"}})

struct InvokeResult {
  uint64_t id = 0;
  std::string request_id;
  InvokeOutcome outcome = InvokeOutcome::kInternal;
  std::string error_type;           // e.g. "Runtime.ImportModuleError", "Sandbox.Timedout"
  std::string executed_version = "$LATEST";
  double duration_ms = 0;
  uint64_t billed_duration_ms = 0;
  uint32_t memory_size_mb = 0;
  uint32_t max_memory_used_mb = 0;
  std::optional<double> init_duration_ms;  // set on a cold start
  std::string log_tail;             // last 4 KB of this invocation's log (raw, not base64) when asked
  int32_t worker_pid = 0;           // the pid that served it (tests use it to prove isolation)
};
void to_json(nlohmann::json& j, const InvokeResult& r);
void from_json(const nlohmann::json& j, InvokeResult& r);

// One captured log line of a function, as CloudWatch Logs would hold it.
struct LogEvent {
  int64_t timestamp_ms = 0;
  std::string message;              // one line, without the trailing newline
};
void to_json(nlohmann::json& j, const LogEvent& e);
void from_json(const nlohmann::json& j, LogEvent& e);

// Frame header of "logs" (scheduler -> control); the events ride in the header.
struct LogBatch {
  std::string function_name;
  std::string version;
  std::string log_stream;           // "YYYY/MM/DD/[$LATEST]<template id>", one per template
  std::string request_id;           // empty for init-phase lines
  std::vector<LogEvent> events;
  // For the batch of one finished invocation: how it ended ("ok", "unhandled", "timeout") and
  // its duration, which control counts as CloudWatch's Invocations / Errors / Duration. Empty
  // for init-phase lines.
  std::string outcome;
  double duration_ms = 0;
  // Delivery: `sender` names one scheduler process (random, new at each start) and `seq` counts
  // its batches from 1. Control stores the highest seq it committed per sender in the same
  // transaction as the lines and acknowledges it (LogsAck); the scheduler keeps every batch
  // until it is acknowledged and sends the unacknowledged ones again after a reconnect, so a
  // control killed mid-stream loses no line and a batch sent twice is stored once. seq 0 means
  // "no acknowledgement wanted" (tests, older senders).
  std::string sender;
  uint64_t seq = 0;
};
void to_json(nlohmann::json& j, const LogBatch& b);
void from_json(const nlohmann::json& j, LogBatch& b);

// Frame header of "logs" carrying several batches (group commit): {"batches": [LogBatch...]}, in
// seq order. Control stores a whole frame in one transaction and acknowledges it, after the
// commit, with one LogsAck per sender naming the highest seq the frame carried. A "logs" header
// without "batches" is a single LogBatch (tests, older senders).
struct LogBatches {
  std::vector<LogBatch> batches;
};
void to_json(nlohmann::json& j, const LogBatches& b);
// Either form of a "logs" header. Throws nlohmann::json::exception when malformed.
void from_json(const nlohmann::json& j, LogBatches& b);
// The same, moving the strings out of `j` instead of copying them (control reads every logged
// line this way). `j` is left valid but unspecified.
LogBatches TakeLogBatches(nlohmann::json& j);

// Control's answer to logs batches: every batch of `sender` up to and including `seq` is durable
// (stored, or recognised as already stored).
struct LogsAck {
  std::string sender;
  uint64_t seq = 0;
};
void to_json(nlohmann::json& j, const LogsAck& a);
void from_json(const nlohmann::json& j, LogsAck& a);

// A function URL as the gateway routes it.
struct FunctionUrlRoute {
  std::string url_id;               // the host label before ".lambda-url."
  std::string auth_type = "NONE";
  FunctionConfig function;
  nlohmann::json cors = nullptr;    // Lambda's Cors object, or null
};
void to_json(nlohmann::json& j, const FunctionUrlRoute& r);
void from_json(const nlohmann::json& j, FunctionUrlRoute& r);

// One API Gateway method (REST API) or route (HTTP API) as the gateway serves it.
struct ApiRoute {
  std::string method = "ANY";       // GET, POST, ... or ANY
  std::string path = "/";           // "/", "/users/{id}", "/{proxy+}"; "$default" for v2's default route
  std::string resource_id;          // REST: the resource's id (requestContext.resourceId)
  std::string route_key;            // HTTP API: "GET /users/{id}" or "$default"; REST: ""
  std::string payload_format = "1.0";  // "1.0" | "2.0": the event the function gets
  bool api_key_required = false;
  uint32_t timeout_ms = 29000;      // the integration timeout
  // The AWS_PROXY target; unset when the integration is missing, not a Lambda proxy, or names
  // a function that does not exist: the gateway answers 500 {"message":"Internal server error"}.
  std::optional<FunctionConfig> function;
};
void to_json(nlohmann::json& j, const ApiRoute& r);
void from_json(const nlohmann::json& j, ApiRoute& r);

struct ApiStage {
  std::string name;                 // REST: the first path segment; HTTP API: "$default" serves at "/"
  std::map<std::string, std::string> variables;
  std::vector<ApiRoute> routes;
};
void to_json(nlohmann::json& j, const ApiStage& s);
void from_json(const nlohmann::json& j, ApiStage& s);

// A REST API (kind "rest") or HTTP API (kind "http") on "<api_id>.execute-api.<base-domain>".
struct ApiGatewayApi {
  std::string api_id;
  std::string kind = "rest";
  std::vector<std::string> binary_media_types;  // REST: which bodies travel base64 ("*/*": all)
  std::vector<std::string> api_keys;            // enabled key values, for api_key_required methods
  std::vector<ApiStage> stages;
};
void to_json(nlohmann::json& j, const ApiGatewayApi& a);
void from_json(const nlohmann::json& j, ApiGatewayApi& a);

// Frame header of "routes" (control -> gateway): the complete table, sent on subscribe and
// again after every change. `generation` increases with each change.
struct RouteTable {
  uint64_t generation = 0;
  std::vector<FunctionUrlRoute> function_urls;
  std::vector<ApiGatewayApi> apis;  // API Gateway REST and HTTP APIs (control/services/apigateway/)
};
void to_json(nlohmann::json& j, const RouteTable& t);
void from_json(const nlohmann::json& j, RouteTable& t);

// Frame header of "retire" (control -> scheduler): a function was deleted (revision_id empty:
// every revision of it), or the revision that was its $LATEST was replaced by an update. The
// scheduler stops the matching pools' templates and idle children at once; running invocations
// finish first. Best effort: a scheduler that misses it reaps those pools when they idle out.
struct RetireFunction {
  std::string name;
  std::string revision_id;
};
void to_json(nlohmann::json& j, const RetireFunction& r);
void from_json(const nlohmann::json& j, RetireFunction& r);  // never throws: missing fields are empty

// Convenience: a frame whose header is `value` serialised plus {"type": type}.
template <typename T>
Frame MakeFrame(const char* type, const T& value, std::string body = {}) {
  Frame f;
  f.header = value;
  f.header["type"] = type;
  f.body = std::move(body);
  return f;
}

}  // namespace geysir::proto
