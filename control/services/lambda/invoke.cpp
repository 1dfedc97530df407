// Invoke: synchronous invocations through the scheduler; InvocationType=Event goes to the async
// queue (async_invoke.cpp), DryRun checks and answers.
#include "control/services/lambda/lambda_internal.h"

#include "base/base64.h"
#include "base/json_bounds.h"
#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

namespace {

std::string Base64Tail(const std::string& log, size_t max_bytes) {
  return Base64Encode(log.size() > max_bytes ? std::string_view(log).substr(log.size() - max_bytes)
                                             : std::string_view(log));
}

// The message of a {"message": "..."} body, or the raw body.
std::string MessageOf(const std::string& payload) {
  json j = ParseUntrustedJsonOrDiscarded(payload);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return payload.substr(0, 1000);
}

}  // namespace

void Lambda::Invoke(Call& call) {
  const FunctionRef ref = ResolveFunctionRef(call.route.function, call.Qualifier());
  net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string& name = ref.name;
  Resolved resolved = ResolveOrThrow(ref, true);
  FunctionRecord f = std::move(resolved.target);
  const std::string* type_h = req.Header("X-Amz-Invocation-Type");
  std::string type = type_h ? *type_h : "RequestResponse";
  if (type != "RequestResponse" && type != "Event" && type != "DryRun") {
    throw ApiException(InvalidParameterValue("1 validation error detected: Value '" + type.substr(0, 50) +
                                             "' at 'invocationType' failed to satisfy constraint: Member must satisfy "
                                             "enum value set: [Event, RequestResponse, DryRun]"));
  }
  const std::string* log_h = req.Header("X-Amz-Log-Type");
  std::string log_type = log_h ? *log_h : "None";
  if (log_type != "None" && log_type != "Tail") {
    throw ApiException(InvalidParameterValue("1 validation error detected: Value '" + log_type.substr(0, 50) +
                                             "' at 'logType' failed to satisfy constraint: Member must satisfy enum "
                                             "value set: [None, Tail]"));
  }
  const size_t limit = type == "Event" ? kMaxAsyncPayloadBytes : kMaxSyncPayloadBytes;
  if (req.body.size() > limit) {
    throw ApiException(RequestTooLarge("Request must be smaller than " + std::to_string(limit) + " bytes for the " +
                                       (type == "Event" ? std::string("InvokeAsync") : std::string("InvokeFunction")) +
                                       " operation"));
  }
  std::string payload = req.body.empty() ? std::string("{}") : std::move(req.body);
  if (!json::accept(payload)) {
    throw ApiException(InvalidRequestContent("Could not parse request body into json: Could not parse payload into "
                                             "json: the payload is not valid JSON"));
  }
  std::string client_context;
  if (const std::string* cc = req.Header("X-Amz-Client-Context")) {
    if (cc->size() > 3583 || !Base64Decode(*cc)) {
      throw ApiException(InvalidParameterValue("X-Amz-Client-Context must be base64 of at most 3583 bytes"));
    }
    client_context = *cc;
  }
  if (type == "DryRun") {
    resp->Send(EmptyReply(204, rid));
    return;
  }
  if (type == "Event") {
    // Durable: answered 202 only once the event is committed to SQLite; the async queue
    // (control/triggers/async_queue.h) runs it, retries it and keeps it across restarts.
    EnqueueAsyncInvoke(triggers_, name, f.version, std::move(payload), client_context, rid, resp);
    return;
  }
  if (!scheduler_.connected()) {
    throw ApiException(ServiceUnavailable("The Geysir scheduler is not reachable at " + opt_.scheduler_socket +
                                          " (is geysir-scheduler running?); the function was not invoked"));
  }
  proto::InvokeRequest ir;
  ir.request_id = rid;
  ir.function = ToFunctionConfig(f, code_store_.DirFor(f.code_hex), api_.region);
  // context.invoked_function_arn is the ARN the caller used (alias-qualified through an alias).
  if (!resolved.alias.empty()) ir.function.arn = QualifiedArn(api_, name, resolved.alias);
  ir.source = type == "Event" ? proto::InvokeSource::kAsync : proto::InvokeSource::kApi;
  ir.want_log_tail = type == "RequestResponse" && log_type == "Tail";
  ir.client_context_b64 = client_context;

  Responder responder = resp;
  scheduler_.Invoke(std::move(ir), std::move(payload), [responder, rid](proto::InvokeResult r, std::string body) {
    HttpResponse out;
    switch (r.outcome) {
      case proto::InvokeOutcome::kOk:
      case proto::InvokeOutcome::kUnhandled:
      case proto::InvokeOutcome::kTimeout:
        out.status = 200;
        out.headers = {{"Content-Type", "application/json"},
                       {"x-amzn-RequestId", rid},
                       {"X-Amz-Executed-Version", r.executed_version.empty() ? "$LATEST" : r.executed_version}};
        if (r.outcome != proto::InvokeOutcome::kOk) out.headers.emplace_back("X-Amz-Function-Error", "Unhandled");
        if (!r.log_tail.empty()) out.headers.emplace_back("X-Amz-Log-Result", Base64Tail(r.log_tail, kLogTailBytes));
        out.body = std::move(body);
        break;
      case proto::InvokeOutcome::kThrottled:
        out = ToHttpResponse(TooManyRequests("Rate Exceeded.", "ReservedFunctionConcurrentInvocationLimitExceeded"), rid);
        break;
      case proto::InvokeOutcome::kInternal:
      case proto::InvokeOutcome::kUnavailable:
        out = ToHttpResponse(ServiceError(MessageOf(body)), rid);
        log::Error("invoke_internal", {{"request_id", rid}, {"detail", MessageOf(body)}});
        break;
    }
    responder->Send(std::move(out));
  });
}

}  // namespace geysir::control::lambda
