#include "gateway/gateway.h"

#include <sys/time.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "gateway/api_match.h"
#include "gateway/codec.h"
#include "gateway/cors.h"
#include "gateway/event.h"
#include "gateway/host.h"
#include "gateway/result.h"
#include "base/log.h"
#include "base/random.h"

namespace geysir::gateway {
namespace {

// The account in a function ARN "arn:aws:lambda:REGION:ACCOUNT:function:NAME".
std::string AccountOf(const std::string& arn) {
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    start = arn.find(':', start);
    if (start == std::string::npos) return "";
    ++start;
  }
  size_t end = arn.find(':', start);
  return end == std::string::npos ? "" : arn.substr(start, end - start);
}

// Before control's first route table arrives (a gateway just started or restarted), no host
// name can be known not to exist: a 404 would tell clients, caches and retry logic that a
// function URL that does exist is gone. 503 with Retry-After says "try again", which every HTTP
// client and AWS SDK does.
net::HttpResponse NoRoutesYet(const std::string& request_id) {
  net::HttpResponse r = ErrorResponse(503, "Service Unavailable: the gateway is starting, retry shortly");
  r.headers.emplace_back("Retry-After", "1");
  r.headers.emplace_back("x-amzn-RequestId", request_id);
  return r;
}

uint64_t WallClockMs() {
  timeval tv{};
  gettimeofday(&tv, nullptr);  // vDSO: no system call
  return static_cast<uint64_t>(tv.tv_sec) * 1000 + static_cast<uint64_t>(tv.tv_usec) / 1000;
}

}  // namespace

// One function URL call waiting for its result. Whichever comes first, the result or the safety
// deadline, answers the client; the other is ignored. It stays alive while the invoke callback
// holds it and, through `self`, until its timer's close callback (libuv handles die there).
struct Gateway::Call {
  uv_timer_t timer{};
  std::shared_ptr<net::HttpResponder> responder;
  std::string request_id;
  std::string function;
  std::shared_ptr<const proto::FunctionUrlRoute> route;  // set when the URL has CORS configured
  std::shared_ptr<const proto::ApiGatewayApi> api;       // set for API Gateway calls
  std::string payload_format;                            // API Gateway: "1.0" | "2.0"
  std::string accept;                                    // API Gateway: the request's Accept
  std::optional<std::string> origin;
  std::shared_ptr<Call> self;
  bool answered = false;
  bool closing = false;

  void Answer(net::HttpResponse r) {
    if (answered) return;
    answered = true;
    if (route) ApplyCors(route->cors, origin ? &*origin : nullptr, r);
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    responder.reset();
    Finish();
  }
  void Finish() {
    if (closing) return;
    closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), [](uv_handle_t* h) {
      static_cast<Call*>(h->data)->self.reset();  // may free this Call
    });
  }
  static void OnDeadline(uv_timer_t* t) {
    auto* call = static_cast<Call*>(t->data);
    log::Warn("function_url_deadline", {{"function", call->function}, {"request_id", call->request_id}});
    call->Answer(call->api ? ApiErrorResponse(504, "Endpoint request timed out")
                           : ErrorResponse(504, "Endpoint request timed out"));
  }
};

net::HttpLimits GatewayHttpLimits() {
  net::HttpLimits l;
  l.max_header_bytes = 10 * 1024;
  l.max_body_bytes = 6 * 1024 * 1024;
  l.header_timeout_ms = 10'000;
  l.body_timeout_ms = 30'000;
  l.keepalive_timeout_ms = 60'000;
  // One client must not be able to hold all 10,000 connections; 256 is far above what a browser
  // (6 per host) or a busy NAT needs, and --max-connections-per-client raises it.
  l.max_connections_per_client = 256;
  return l;
}

RequestIdGenerator::RequestIdGenerator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

std::string RequestIdGenerator::Next() {
  uint64_t hi = rng_();
  uint64_t lo = rng_();
  return FormatUuidV4(hi, lo);
}

Gateway::Gateway(uv_loop_t* loop, GatewayOptions options)
    : loop_(loop),
      options_(std::move(options)),
      http_(loop, options_.limits,
            [this](net::HttpRequest&& req, std::shared_ptr<net::HttpResponder> resp) {
              OnRequest(std::move(req), std::move(resp));
            }),
      https_(loop, options_.limits,
             [this](net::HttpRequest&& req, std::shared_ptr<net::HttpResponder> resp) {
               OnRequest(std::move(req), std::move(resp));
             }),
      invoke_(loop, options_.scheduler_socket),
      control_(
          loop, options_.control_socket, [this](proto::Frame&& f) { OnControlFrame(std::move(f)); },
          [this] { OnControlConnected(); },
          [](const Status& why) { log::Warn("control_disconnected", {{"error", why.ToString()}}); }) {
  auto edge = TlsEdge::Create(options_.tls);
  if (edge.ok()) {
    tls_ = std::move(*edge);
    https_.SetTls(&tls_->context());
  } else {
    tls_status_ = edge.status();
  }
}

Gateway::~Gateway() = default;

Status Gateway::ListenFd(int fd) {
  GEYSIR_RETURN_IF_ERROR(http_.ListenFd(fd));
  port_ = http_.port();
  return Status::Ok();
}

Status Gateway::Listen(const std::string& host, uint16_t port) {
  GEYSIR_RETURN_IF_ERROR(http_.Listen(host, port));
  port_ = http_.port();
  return Status::Ok();
}

uint16_t Gateway::port() const { return port_; }

Status Gateway::ListenTlsFd(int fd) {
  if (!tls_) return tls_status_;
  GEYSIR_RETURN_IF_ERROR(https_.ListenFd(fd));
  tls_port_ = https_.port();
  return Status::Ok();
}

Status Gateway::ListenTls(const std::string& host, uint16_t port) {
  if (!tls_) return tls_status_;
  GEYSIR_RETURN_IF_ERROR(https_.Listen(host, port));
  tls_port_ = https_.port();
  return Status::Ok();
}

void Gateway::Start() {
  invoke_.Start();
  control_.Start();
}

bool Gateway::scheduler_connected() const { return invoke_.connected(); }
bool Gateway::control_connected() const { return control_.connected(); }

void Gateway::Shutdown(std::function<void()> done) {
  // Both listeners drain; the clients close once the second one is done.
  auto remaining = std::make_shared<int>(2);
  auto one_done = [this, remaining, done = std::move(done)] {
    if (--*remaining > 0) return;
    // Every accepted request has been answered; the clients have nothing left to wait for.
    control_.Close();
    invoke_.Close();
    closed_ = true;
    if (done) done();
  };
  http_.Shutdown(one_done);
  https_.Shutdown(one_done);
}

void Gateway::Close() {
  if (closed_) return;
  closed_ = true;
  http_.Close();
  https_.Close();
  control_.Close();
  invoke_.Close();
}

void Gateway::OnControlConnected() {
  routes_.NewSource();
  proto::Frame f;
  f.header = {{"type", proto::kMsgSubscribeRoutes}};
  Status st = control_.Send(f);
  if (!st.ok()) {
    log::Warn("subscribe_routes_failed", {{"error", st.ToString()}});
    return;
  }
  log::Info("control_connected", {{"routes_generation", routes_.generation()}});
}

void Gateway::OnControlFrame(proto::Frame&& frame) {
  if (frame.type() == proto::kMsgTls) {
    if (!tls_) return;
    Result<uint64_t> gen = tls_->Apply(frame);
    if (!gen.ok()) {
      log::Warn("tls_rejected", {{"error", gen.status().ToString()}});
      return;
    }
    // Control waits for this before it asks the CA to validate a challenge we now answer.
    proto::Frame ack;
    ack.header = {{"type", proto::kMsgTlsApplied}, {"generation", *gen}};
    Status st = control_.Send(ack);
    if (!st.ok()) log::Warn("tls_ack_failed", {{"error", st.ToString()}});
    return;
  }
  if (frame.type() != proto::kMsgRoutes) return;  // unknown messages are ignored, by contract
  uint64_t before = routes_.generation();
  Status st = routes_.ApplyFrame(frame);
  if (!st.ok()) {
    log::Warn("routes_rejected", {{"error", st.ToString()}});
    return;
  }
  if (routes_.generation() != before || routes_.size() > 0) {
    log::Info("routes_updated", {{"generation", routes_.generation()}, {"function_urls", routes_.size()}});
  }
}

void Gateway::OnRequest(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder) {
  if (tls_ && ServeTlsEdge(request, responder)) return;
  const std::string* host = request.Header("host");
  HostMatch match = MatchHost(host ? std::string_view(*host) : std::string_view(), options_.base_domain);
  switch (match.kind) {
    case HostMatch::Kind::kFunctionUrl:
      ServeFunctionUrl(std::move(request), std::move(responder), std::move(match.url_id),
                       std::move(match.domain_name));
      return;
    case HostMatch::Kind::kExecuteApi:
      ServeApi(std::move(request), std::move(responder), std::move(match.url_id), std::move(match.domain_name));
      return;
    case HostMatch::Kind::kBadFunctionUrl:
      responder->Send(ErrorResponse(404, "No function URL at this address"));
      return;
    case HostMatch::Kind::kPlatform:
      break;
  }
  if (request.path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
    const bool scheduler = invoke_.connected();
    const bool control = control_.connected();
    const uint64_t generation = routes_.generation();
    if (healthz_.body.empty() || healthz_.scheduler != scheduler || healthz_.control != control ||
        healthz_.generation != generation) {
      nlohmann::json body = {{"status", "ok"}, {"scheduler", scheduler}, {"control", control}, {"routes", generation}};
      healthz_ = Healthz{scheduler, control, generation, body.dump()};
    }
    responder->Send(net::JsonResponse(200, healthz_.body));
    return;
  }
  // Custom domains arrive with the route table too: until then any other host may be one.
  if (!routes_.loaded()) {
    responder->Send(NoRoutesYet(ids_.Next()));
    return;
  }
  responder->Send(ErrorResponse(404, "Not Found"));
}

// ACME HTTP-01 answers, the HTTP -> HTTPS redirect, HSTS, and custom domains. True when the
// request was answered (or handed to a function) here.
bool Gateway::ServeTlsEdge(net::HttpRequest& request, std::shared_ptr<net::HttpResponder>& responder) {
  if (auto r = tls_->Challenge(request)) {
    responder->Send(std::move(*r));
    return true;
  }
  const std::string* host_header = request.Header("host");
  std::string host(StripPort(host_header ? std::string_view(*host_header) : std::string_view()));
  for (char& c : host) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (auto r = tls_->Redirect(request, host)) {
    responder->Send(std::move(*r));
    return true;
  }
  if (request.tls && tls_->hsts()) responder = tls_->WithHsts(std::move(responder));
  const std::vector<proto::CustomDomainRoute>* targets = tls_->Domain(host);
  if (targets == nullptr || targets->empty()) return false;
  const proto::CustomDomainRoute& first = targets->front();
  if (!first.url_id.empty()) {
    ServeFunctionUrl(std::move(request), std::move(responder), first.url_id, host);
    return true;
  }
  if (first.api_id.empty()) {
    responder->Send(ErrorResponse(404, "No function URL or API is mapped to " + host + " yet"));
    return true;
  }
  // API Gateway's custom domain: the longest matching base path picks the API and stage; a
  // path no mapping covers is 403 Forbidden, as AWS answers it.
  ApiVia via;
  const proto::CustomDomainRoute* mapping = MatchMapping(*targets, request.path, &via.path);
  if (mapping == nullptr) {
    net::HttpResponse r = ApiErrorResponse(403, "Forbidden");
    r.headers.emplace_back("x-amzn-RequestId", ids_.Next());
    responder->Send(std::move(r));
    return true;
  }
  via.stage = mapping->stage;
  ServeApi(std::move(request), std::move(responder), mapping->api_id, host, &via);
  return true;
}

void Gateway::ServeFunctionUrl(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder,
                               std::string url_id, std::string domain_name) {
  std::string request_id = ids_.Next();
  if (!routes_.loaded()) {
    responder->Send(NoRoutesYet(request_id));
    return;
  }
  auto route = routes_.Find(url_id);
  if (!route) {
    net::HttpResponse r = ErrorResponse(404, "No function URL with id " + url_id);
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }
  if (route->auth_type != "NONE") {
    // AWS_IAM function URLs need SigV4 at the edge, which the gateway does not do yet.
    net::HttpResponse r = ErrorResponse(403, "Forbidden");
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }

  const bool cors = route->cors.is_object();
  if (cors && IsPreflight(request)) {
    net::HttpResponse r = PreflightResponse(route->cors, request);
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }

  EventContext ctx;
  ctx.url_id = url_id;
  ctx.domain_name = domain_name;
  ctx.request_id = request_id;
  ctx.time_epoch_ms = request.received_at_ms ? request.received_at_ms : WallClockMs();
  ctx.forwarded_port = request.tls ? tls_port_ : port_;
  if (request.tls) ctx.forwarded_proto = "https";
  std::string event = BuildFunctionUrlEvent(request, ctx);

  auto call = std::make_shared<Call>();
  call->responder = std::move(responder);
  call->request_id = request_id;
  call->function = route->function.name;
  call->self = call;
  if (cors) {
    call->route = route;
    if (const std::string* origin = request.Header("origin")) call->origin = *origin;
  }
  uv_timer_init(loop_, &call->timer);
  call->timer.data = call.get();
  uv_timer_start(&call->timer, &Call::OnDeadline,
                 uint64_t{route->function.timeout_s} * 1000 + options_.call_grace_ms, 0);

  proto::InvokeRequest invoke;
  invoke.request_id = std::move(request_id);
  invoke.function = route->function;
  invoke.source = proto::InvokeSource::kFunctionUrl;
  invoke_.Invoke(std::move(invoke), std::move(event), [call](proto::InvokeResult result, std::string payload) {
    if (call->answered) return;  // the deadline answered already
    std::string problem;
    net::HttpResponse r = MapInvokeResult(result, payload, &problem);
    if (!problem.empty()) {
      log::Warn("function_url_error",
                {{"function", call->function}, {"request_id", call->request_id}, {"status", r.status}, {"error", problem}});
    }
    call->Answer(std::move(r));
  });
}

// An API Gateway REST or HTTP API request: stage and route matching (api_match.h), the 1.0 or
// 2.0 event, the invocation, and the result mapped back with API Gateway's wording.
void Gateway::ServeApi(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder,
                       std::string api_id, std::string domain_name, const ApiVia* via) {
  std::string request_id = ids_.Next();
  auto answer_now = [&](net::HttpResponse r) {
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
  };
  if (!routes_.loaded()) {
    responder->Send(NoRoutesYet(request_id));
    return;
  }
  auto api = routes_.FindApi(api_id);
  if (!api) return answer_now(ApiErrorResponse(404, "Not Found"));
  const bool rest = api->kind != "http";
  // A mapping without a stage (v1's "(none)") leaves the stage to the path after the base path.
  ApiMatch match = via && !via->stage.empty() ? MatchApiStage(*api, via->stage, request.method, via->path)
                                              : MatchApi(*api, request.method, via ? via->path : request.path);
  if (match.result == ApiMatch::Result::kNoStage) {
    return answer_now(rest ? ApiErrorResponse(403, "Forbidden") : ApiErrorResponse(404, "Not Found"));
  }
  if (match.result == ApiMatch::Result::kNoRoute) {
    return answer_now(rest ? ApiErrorResponse(403, "Missing Authentication Token") : ApiErrorResponse(404, "Not Found"));
  }
  const proto::ApiRoute& route = *match.route;
  if (route.api_key_required) {
    const std::string* key = request.Header("x-api-key");
    if (!key || std::find(api->api_keys.begin(), api->api_keys.end(), *key) == api->api_keys.end()) {
      return answer_now(ApiErrorResponse(403, "Forbidden"));
    }
  }
  if (!route.function) {
    // No Lambda proxy integration, or its function does not exist: AWS answers 500 here.
    log::Warn("api_integration_missing", {{"api_id", api_id}, {"route", route.method + " " + route.path}});
    return answer_now(ApiErrorResponse(500, rest ? "Internal server error" : "Internal Server Error"));
  }

  EventContext ctx;
  ctx.url_id = api->api_id;
  ctx.domain_name = domain_name;
  ctx.request_id = request_id;
  ctx.time_epoch_ms = request.received_at_ms ? request.received_at_ms : WallClockMs();
  ctx.forwarded_port = request.tls ? tls_port_ : port_;
  if (request.tls) ctx.forwarded_proto = "https";
  const std::string account_id = AccountOf(route.function->arn);  // ctx holds views: keep it alive
  ctx.account_id = account_id;
  ctx.stage = match.stage->name;
  ctx.path_parameters = &match.path_parameters;
  ctx.stage_variables = &match.stage->variables;
  const std::string route_key = rest ? "" : route.route_key;
  ctx.route_key = route_key;
  std::string event;
  if (route.payload_format == "2.0") {
    event = BuildFunctionUrlEvent(request, ctx);
  } else {
    RestEventContext rctx;
    rctx.base = ctx;
    rctx.resource_path = route.path;
    rctx.resource_id = route.resource_id;
    // REST's `path` drops the stage segment of an execute-api URL; through a custom domain it is
    // the path as the client sent it, base path included (AWS does the same).
    rctx.path = rest && !via ? std::string_view(match.path) : std::string_view(request.path);
    const std::string* ct = request.Header("content-type");
    rctx.binary_body = rest ? MatchesMediaType(api->binary_media_types, ct ? std::string_view(*ct) : std::string_view())
                            : !(ct && IsTextualContentType(*ct) && IsValidUtf8(request.body));
    rctx.version_field = !rest;
    event = BuildRestEvent(request, rctx);
  }

  auto call = std::make_shared<Call>();
  call->responder = std::move(responder);
  call->request_id = request_id;
  call->function = route.function->name;
  call->api = api;
  call->payload_format = route.payload_format;
  if (const std::string* accept = request.Header("accept")) call->accept = *accept;
  call->self = call;
  uv_timer_init(loop_, &call->timer);
  call->timer.data = call.get();
  uint64_t deadline = std::min<uint64_t>(uint64_t{route.function->timeout_s} * 1000, route.timeout_ms);
  uv_timer_start(&call->timer, &Call::OnDeadline, deadline + options_.call_grace_ms, 0);

  proto::InvokeRequest invoke;
  invoke.request_id = std::move(request_id);
  invoke.function = *route.function;
  invoke.source = proto::InvokeSource::kApi;
  invoke_.Invoke(std::move(invoke), std::move(event), [call](proto::InvokeResult result, std::string payload) {
    if (call->answered) return;
    ApiOutputOptions options;
    options.always_decode = call->api->kind == "http";
    options.http_api = call->api->kind == "http";
    options.binary_types = &call->api->binary_media_types;
    options.accept = call->accept;
    std::string problem;
    net::HttpResponse r = MapApiResult(result, payload, call->payload_format, options, &problem);
    if (!problem.empty()) {
      log::Warn("api_call_error", {{"function", call->function}, {"request_id", call->request_id},
                                   {"status", r.status}, {"error", problem}});
    }
    call->Answer(std::move(r));
  });
}

}  // namespace geysir::gateway
