#include "gateway/gateway.h"

#include <sys/time.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "gateway/cors.h"
#include "gateway/event.h"
#include "gateway/host.h"
#include "gateway/result.h"
#include "proto/log.h"

namespace geysir::gateway {
namespace {

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
  std::shared_ptr<proto::HttpResponder> responder;
  std::string request_id;
  std::string function;
  std::shared_ptr<const proto::FunctionUrlRoute> route;  // set when the URL has CORS configured
  std::optional<std::string> origin;
  std::shared_ptr<Call> self;
  bool answered = false;
  bool closing = false;

  void Answer(proto::HttpResponse r) {
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
    call->Answer(ErrorResponse(504, "Endpoint request timed out"));
  }
};

proto::HttpLimits GatewayHttpLimits() {
  proto::HttpLimits l;
  l.max_header_bytes = 10 * 1024;
  l.max_body_bytes = 6 * 1024 * 1024;
  l.header_timeout_ms = 10'000;
  l.body_timeout_ms = 30'000;
  l.keepalive_timeout_ms = 60'000;
  return l;
}

RequestIdGenerator::RequestIdGenerator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

std::string RequestIdGenerator::Next() {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = rng_();
  uint64_t lo = rng_();
  hi = (hi & ~uint64_t{0xF000}) | 0x4000;                       // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);   // RFC 4122 variant
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[pos++] = kHex[(v >> (i * 4)) & 0xF];
    }
  };
  put(hi, 16);
  put(lo, 16);
  return out;
}

Gateway::Gateway(uv_loop_t* loop, GatewayOptions options)
    : loop_(loop),
      options_(std::move(options)),
      http_(loop, options_.limits,
            [this](proto::HttpRequest&& req, std::shared_ptr<proto::HttpResponder> resp) {
              OnRequest(std::move(req), std::move(resp));
            }),
      invoke_(loop, options_.scheduler_socket),
      control_(
          loop, options_.control_socket, [this](proto::Frame&& f) { OnControlFrame(std::move(f)); },
          [this] { OnControlConnected(); },
          [](const Status& why) { log::Warn("control_disconnected", {{"error", why.ToString()}}); }) {}

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

void Gateway::Start() {
  invoke_.Start();
  control_.Start();
}

bool Gateway::scheduler_connected() const { return invoke_.connected(); }
bool Gateway::control_connected() const { return control_.connected(); }

void Gateway::Shutdown(std::function<void()> done) {
  http_.Shutdown([this, done = std::move(done)] {
    // Every accepted request has been answered; the clients have nothing left to wait for.
    control_.Close();
    invoke_.Close();
    closed_ = true;
    if (done) done();
  });
}

void Gateway::Close() {
  if (closed_) return;
  closed_ = true;
  http_.Close();
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

void Gateway::OnRequest(proto::HttpRequest&& request, std::shared_ptr<proto::HttpResponder> responder) {
  const std::string* host = request.Header("host");
  HostMatch match = MatchHost(host ? std::string_view(*host) : std::string_view(), options_.base_domain);
  switch (match.kind) {
    case HostMatch::Kind::kFunctionUrl:
      ServeFunctionUrl(std::move(request), std::move(responder), std::move(match.url_id),
                       std::move(match.domain_name));
      return;
    case HostMatch::Kind::kBadFunctionUrl:
      responder->Send(ErrorResponse(404, "No function URL at this address"));
      return;
    case HostMatch::Kind::kPlatform:
      break;
  }
  if (request.path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
    nlohmann::json body = {{"status", "ok"},
                           {"scheduler", invoke_.connected()},
                           {"control", control_.connected()},
                           {"routes", routes_.generation()}};
    responder->Send(proto::JsonResponse(200, body.dump()));
    return;
  }
  responder->Send(ErrorResponse(404, "Not Found"));
}

void Gateway::ServeFunctionUrl(proto::HttpRequest&& request, std::shared_ptr<proto::HttpResponder> responder,
                               std::string url_id, std::string domain_name) {
  std::string request_id = ids_.Next();
  auto route = routes_.Find(url_id);
  if (!route) {
    proto::HttpResponse r = ErrorResponse(404, "No function URL with id " + url_id);
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }
  if (route->auth_type != "NONE") {
    // AWS_IAM function URLs need SigV4 at the edge, which the gateway does not do yet.
    proto::HttpResponse r = ErrorResponse(403, "Forbidden");
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }

  const bool cors = route->cors.is_object();
  if (cors && IsPreflight(request)) {
    proto::HttpResponse r = PreflightResponse(route->cors, request);
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    responder->Send(std::move(r));
    return;
  }

  EventContext ctx;
  ctx.url_id = url_id;
  ctx.domain_name = domain_name;
  ctx.request_id = request_id;
  ctx.time_epoch_ms = request.received_at_ms ? request.received_at_ms : WallClockMs();
  ctx.forwarded_port = port_;
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
    proto::HttpResponse r = MapInvokeResult(result, payload, &problem);
    if (!problem.empty()) {
      log::Warn("function_url_error",
                {{"function", call->function}, {"request_id", call->request_id}, {"status", r.status}, {"error", problem}});
    }
    call->Answer(std::move(r));
  });
}

}  // namespace geysir::gateway
