// LambdaService: see lambda.h. This file holds the service itself: start and shutdown, the one
// dispatch through the operation table (operations.h), and what every resource file shares
// (resolving a qualified function reference, Lambda's JSON answers).
#include "control/services/lambda/lambda.h"


#include <charconv>

#include "base/log.h"
#include "base/random.h"
#include "control/aws_error.h"
#include "control/services/lambda/lambda_internal.h"
#include "control/services/lambda/operations.h"

namespace geysir::control {
namespace lambda {

using nlohmann::json;

std::string Call::Qualifier() const {
  auto query = ParseQuery(req.query);
  auto it = query.find("Qualifier");
  return it == query.end() ? "" : it->second;
}

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

net::HttpResponse JsonReply(int status, const json& body, const std::string& request_id) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", request_id}};
  r.body = DumpJson(body);
  return r;
}

net::HttpResponse EmptyReply(int status, const std::string& request_id) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"x-amzn-RequestId", request_id}};
  return r;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

Lambda::Lambda(ServiceHost& host, LambdaOptions options, TriggerRuntime& triggers, ObjectSource& objects)
    : host_(host),
      opt_(std::move(options)),
      triggers_(triggers),
      objects_(objects),
      store_(host.store()),
      code_store_(host.code_store()),
      api_(host.api()),
      scheduler_(host.scheduler()) {}

Lambda::~Lambda() = default;

Status Lambda::Start() {
  Result<std::string> url_key = LoadOrCreateSecretFile(host_.data_dir() + "/code-url.key");
  if (!url_key.ok()) return url_key.status().Wrap("loading the code URL signing key");
  url_signer_ = std::make_unique<CodeUrlSigner>(*url_key);
  Result<std::unique_ptr<LoopWorker>> worker = LoopWorker::Start(host_.loop(), "deploy");
  if (!worker.ok()) return worker.status().Wrap("starting the deploy worker");
  deploy_worker_ = std::move(worker).value();

  if (int rc = gc_timer_.Init(host_.loop(), uv_timer_init); rc != 0) {
    return Status::Internal(std::string("code GC timer: ") + uv_strerror(rc));
  }
  gc_timer_->data = this;
  uv_timer_start(
      gc_timer_.get(), [](uv_timer_t* t) { static_cast<Lambda*>(t->data)->CollectCode(); }, opt_.code_gc_interval_ms,
      opt_.code_gc_interval_ms);
  uv_unref(gc_timer_.base());  // never the reason the loop stays alive
  return Status::Ok();
}

void Lambda::Shutdown() {
  shutting_down_ = true;
  // Waits for the deploy being unpacked and drops the rest; each deploy whose answer is then
  // still owed is answered here (its unpacked code, if any, is an orphan the next start's code
  // collection removes).
  deploy_worker_.reset();
  for (const std::shared_ptr<Deploy>& d : deploys_) {
    if (d->resp->alive()) {
      d->resp->Send(ToHttpResponse(ServiceError("deploy cancelled: control is shutting down"), d->rid));
    }
  }
  deploys_.clear();
  deploys_in_flight_ = 0;
  gc_timer_.Close();
}

Result<bool> Lambda::HandleBeforeAuth(net::HttpRequest& req, const Responder& resp, const std::string& request_id) {
  Route route;
  const OperationSpec& spec = MatchOperation(req.method, req.path, route);
  if (spec.authorisation == Authorisation::kSigV4) return false;
  Call c{route, req, resp, request_id};
  (this->*spec.handler)(c);
  return true;
}

Status Lambda::Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  HandleOrThrow(req, resp, info);
  return Status::Ok();
}

void Lambda::HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  Route route;
  const OperationSpec& spec = MatchOperation(req.method, req.path, route);
  Call c{route, req, resp, info.request_id};
  (this->*spec.handler)(c);
}

net::HttpResponse Lambda::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  return ToHttpResponse(error, request_id);
}

Result<proto::FunctionConfig> Lambda::ResolveConfig(std::string_view function, std::string_view qualifier,
                                                    bool weighted) {
  Resolved resolved;
  try {
    resolved = ResolveOrThrow(ResolveFunctionRef(function, qualifier), weighted);
  } catch (const ApiException& e) {
    return Status::NotFound(e.error().message);
  }
  const FunctionRecord& f = resolved.target;
  proto::FunctionConfig config = ToFunctionConfig(f, code_store_.DirFor(f.code_hex), api_.region);
  if (!resolved.alias.empty()) config.arn = QualifiedArn(api_, f.name, resolved.alias);
  return config;
}

Status Lambda::InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) {
  Result<proto::FunctionConfig> config = ResolveConfig(call.function, call.qualifier, true);
  if (!config.ok()) return config.status();
  if (!scheduler_.connected()) {
    return Status::Unavailable("the Geysir scheduler is not reachable at " + opt_.scheduler_socket);
  }
  proto::InvokeRequest ir;
  ir.request_id = call.request_id.empty() ? NewUuid() : call.request_id;
  ir.function = std::move(config).value();
  ir.source = call.source;
  ir.want_log_tail = call.want_log_tail;
  ir.client_context_b64 = call.client_context_b64;
  scheduler_.Invoke(std::move(ir), std::move(call.payload), std::move(done));
  return Status::Ok();
}

FunctionRecord Lambda::GetOrThrow(const std::string& name) {
  Result<FunctionRecord> f = store_.GetFunction(name);
  if (!f.ok() && f.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
  }
  return ValueOrThrow(std::move(f));
}

Lambda::Resolved Lambda::ResolveOrThrow(const FunctionRef& ref, bool weighted) {
  Resolved r;
  const std::string& q = ref.qualifier;
  auto not_found = [&](const std::string& qualifier) {
    return ApiException(ResourceNotFound("Function not found: " + QualifiedArn(api_, ref.name, qualifier)));
  };
  if (q.empty() || q == "$LATEST") {
    r.target = GetOrThrow(ref.name);
    return r;
  }
  std::string version = q;
  if (!IsVersionNumber(q)) {
    Result<AliasRecord> alias = store_.GetAlias(ref.name, q);
    if (!alias.ok() && alias.status().code() == Code::kNotFound) throw not_found(q);
    AliasRecord a = ValueOrThrow(std::move(alias));
    r.alias = a.name;
    version = a.function_version;
    if (weighted && !a.additional_weights.empty()) {
      // Weighted routing: the additional version takes its share of invocations at random.
      const auto& [extra, weight] = *a.additional_weights.begin();
      uint32_t x = 0;
      RandomBytes(&x, sizeof x);
      if (static_cast<double>(x) / 4294967296.0 < weight) version = extra;
    }
  }
  Result<FunctionRecord> f = store_.GetFunctionVersion(ref.name, version);
  if (!f.ok() && f.status().code() == Code::kNotFound) {
    if (!store_.GetFunction(ref.name).ok()) throw not_found("");
    throw not_found(q);
  }
  r.target = ValueOrThrow(std::move(f));
  return r;
}

}  // namespace lambda

std::unique_ptr<LambdaService> MakeLambdaService(ServiceHost& host, LambdaOptions options, TriggerRuntime& triggers,
                                                 ObjectSource& objects) {
  return std::make_unique<lambda::Lambda>(host, std::move(options), triggers, objects);
}

}  // namespace geysir::control
