// ControlServer: see control_server.h for what it does; this file explains how.
//
// Every HTTP request goes through OnRequest: pick the service -> authenticate -> the service's
// handler. The service is the one named in the SigV4 credential scope; Lambda (which also serves
// Geysir's native API) takes Lambda's own paths, the native paths no other service claims, and
// requests signed for no registered service. Handlers return a Status for anything the client
// got wrong (and DbError/std::exception escape only on bugs and SQLite failures); OnRequest
// answers both at this one boundary in the service's error format, so no handler ever writes a
// half-made response.
#include "control/control_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <vector>

#include "control/auth.h"
#include "control/aws_error.h"
#include "control/code_store.h"
#include "control/db.h"
#include "control/service.h"
#include "control/services/lambda/lambda.h"
#include "control/services/registry.h"
#include "proto/frame_channel.h"
#include "net/http_server.h"
#include "proto/invoke_client.h"
#include "base/log.h"
#include "proto/messages.h"
#include "net/sigv4.h"
#include "base/unique_fd.h"

namespace geysir::control {
namespace {

using net::HttpRequest;
using net::HttpResponse;

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status MkdirP(const std::string& path, mode_t mode) {
  if (path.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? Status::Ok() : Status::Invalid(path + " exists and is not a directory");
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) GEYSIR_RETURN_IF_ERROR(MkdirP(path.substr(0, slash), 0755));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  return Status::Ok();
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Writes the AWS shared-credentials file atomically with mode 0600.
Status WriteCredentialsFile(const std::string& path, const AccessKey& key, const std::string& region) {
  std::string text;
  for (const char* profile : {"geysir", "default"}) {
    text += std::string("[") + profile + "]\n";
    text += "aws_access_key_id = " + key.access_key_id + "\n";
    text += "aws_secret_access_key = " + key.secret_access_key + "\n";
    text += "region = " + region + "\n\n";
  }
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Status::Sys(errno, "create " + tmp);
  if (::fchmod(fd.get(), 0600) != 0) return Status::Sys(errno, "chmod " + tmp);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::Sys(errno, "write " + tmp);
  }
  if (::fsync(fd.get()) != 0) return Status::Sys(errno, "fsync " + tmp);
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::Sys(errno, "rename " + tmp + " to " + path);
  return Status::Ok();
}

}  // namespace

struct ControlServer::Impl final : ServiceHost {
  Impl(uv_loop_t* l, ControlOptions o) : loop_(l), opt(std::move(o)) {
    if (!opt.now_ms) opt.now_ms = WallClockMs;
    if (opt.socket_path.empty()) opt.socket_path = opt.data_dir + "/run/control.sock";
    if (opt.scheduler_socket.empty()) opt.scheduler_socket = opt.data_dir + "/run/scheduler.sock";
  }

  uv_loop_t* loop_;
  ControlOptions opt;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CodeStore> code_store_;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<proto::FrameServer> frames;
  std::unique_ptr<proto::InvokeClient> invoker;
  AccessKey admin;
  std::string credentials_path;
  uint64_t generation = 0;
  // Accepted control.sock connections; `subscribed` marks gateways that asked for routes.
  struct Peer {
    std::shared_ptr<proto::FrameConnection> conn;
    bool subscribed = false;
  };
  std::map<proto::FrameConnection*, Peer> peers;

  // Every service (Lambda among them), in start order, and Lambda's typed face.
  Services registry;
  Service* ServiceFor(const HttpRequest& req);
  // The registered service whose SigV4 signing name is `signing_name`; nullptr if none.
  Service* ServiceNamed(std::string_view signing_name);
  net::HttpResponse ProtocolError(const HttpRequest& partial, int status, const std::string& message);

  // ServiceHost.
  uv_loop_t* loop() override { return loop_; }
  Store& store() override { return *store_; }
  CodeStore& code_store() override { return *code_store_; }
  const ApiContext& api() const override { return opt.api; }
  const std::string& data_dir() const override { return opt.data_dir; }
  int64_t NowMs() const override { return opt.now_ms(); }
  proto::InvokeClient& scheduler() override { return *invoker; }
  Status InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) override {
    return registry.lambda->InvokeFunction(std::move(call), std::move(done));
  }
  Result<proto::FunctionConfig> ResolveFunction(std::string_view function) override {
    return registry.lambda->ResolveConfig(function, "", false);
  }
  void RoutesChanged() override { PushRoutes(); }
  bool GatewayRoutesTo(const std::string& function) override;

  int64_t NowS() const { return opt.now_ms() / 1000; }

  Status Start();
  void OnRequest(HttpRequest&& req, Responder resp);

  // Routes.
  void PushRoutes();
  Result<proto::RouteTable> BuildRouteTable();
  void OnPeer(std::shared_ptr<proto::FrameConnection> conn);
  void OnFrame(proto::FrameConnection* conn, proto::Frame&& frame);
};

Status ControlServer::Impl::Start() {
  if (opt.data_dir.empty()) return Status::Invalid("--data-dir is required");
  GEYSIR_RETURN_IF_ERROR(MkdirP(opt.data_dir, 0700));
  StoreOptions so;
  so.now_ms = opt.now_ms;
  Result<std::unique_ptr<Store>> s = Store::Open(opt.data_dir + "/geysir.db", so);
  if (!s.ok()) return s.status().Wrap("opening the database");
  store_ = std::move(s).value();
  Result<CodeStore> cs = CodeStore::Open(opt.data_dir);
  if (!cs.ok()) return cs.status().Wrap("opening the code store");
  code_store_ = std::make_unique<CodeStore>(std::move(cs).value());

  // The admin key: made once, on first start; the credentials file is (re)written whenever it
  // is missing so an operator who deleted it gets it back by restarting.
  Result<std::vector<AccessKey>> keys = store_->ListAccessKeys();
  if (!keys.ok()) return keys.status().Wrap("reading access keys");
  bool found = false;
  for (const AccessKey& k : *keys) {
    if (k.is_admin) {
      admin = k;
      found = true;
      break;
    }
  }
  if (!found) {
    Result<AccessKey> k = store_->CreateAdminKey();
    if (!k.ok()) return k.status().Wrap("creating the admin key");
    admin = *k;
    log::Info("admin_key_created", {{"access_key_id", admin.access_key_id}});
  }
  credentials_path = opt.data_dir + "/credentials";
  if (::access(credentials_path.c_str(), F_OK) != 0) {
    GEYSIR_RETURN_IF_ERROR(WriteCredentialsFile(credentials_path, admin, opt.api.region));
  }
  log::Info("credentials", {{"path", credentials_path}, {"access_key_id", admin.access_key_id}});

  auth = std::make_unique<Authenticator>(
      [this](const std::string& akid) -> Result<std::string> {
        Result<AccessKey> k = store_->GetAccessKey(akid);
        if (!k.ok()) return k.status();
        return k->secret_access_key;
      },
      [this] { return NowS(); }, opt.api.region);

  // A restarted control must never send a generation lower than one a gateway has seen.
  generation = static_cast<uint64_t>(NowMs());

  net::HttpLimits limits;
  limits.max_body_bytes = opt.max_body_bytes;
  limits.body_timeout_ms = 120'000;  // a 70 MB upload over a slow link
  limits.max_connections_per_client = opt.max_connections_per_client;
  http = std::make_unique<net::HttpServer>(
      loop_, limits, [this](HttpRequest&& req, Responder resp) { OnRequest(std::move(req), std::move(resp)); },
      "Geysir-Control");
  http->SetErrorFormatter([this](const HttpRequest& partial, int status, const std::string& message) {
    return ProtocolError(partial, status, message);
  });
  if (opt.listen_fd >= 0) {
    GEYSIR_RETURN_IF_ERROR(http->ListenFd(opt.listen_fd));
  } else {
    GEYSIR_RETURN_IF_ERROR(http->Listen(opt.listen_host, opt.listen_port));
  }

  GEYSIR_RETURN_IF_ERROR(MkdirP(Dirname(opt.socket_path), 0750));
  frames = std::make_unique<proto::FrameServer>(
      loop_, [this](std::shared_ptr<proto::FrameConnection> c) { OnPeer(std::move(c)); });
  GEYSIR_RETURN_IF_ERROR(frames->Listen(opt.socket_path));

  invoker = std::make_unique<proto::InvokeClient>(loop_, opt.scheduler_socket);
  invoker->Start();

  LambdaOptions lambda;
  lambda.isolation = opt.isolation;
  lambda.scheduler_socket = opt.scheduler_socket;
  lambda.endpoint = [this] { return opt.listen_host + ":" + std::to_string(http->port()); };
  lambda.code_gc_interval_ms = opt.code_gc_interval_ms;
  lambda.code_gc_grace_ms = opt.code_gc_grace_ms;
  registry = MakeServices(*this, std::move(lambda));
  for (auto& service : registry.in_start_order) {
    Status st = service->Start();
    if (!st.ok()) return st.Wrap("starting the " + std::string(service->signing_name()) + " service");
  }

  log::Info("listening", {{"port", http->port()},
                          {"socket", opt.socket_path},
                          {"scheduler_socket", opt.scheduler_socket},
                          {"data_dir", opt.data_dir}});
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// HTTP boundary

void ControlServer::Impl::OnRequest(HttpRequest&& req, Responder resp) {
  const std::string rid = NewUuid();
  // The service the request is for; its protocol formats every error of this request,
  // authentication failures included.
  Service* service = nullptr;
  auto reply_error = [&](const AwsError& e) {
    resp->Send(service ? service->ErrorResponse(e, rid) : ToHttpResponse(e, rid));
  };
  // The one place a handler's failure becomes a response.
  auto reply_status = [&](const Status& st) {
    const AwsError e = service ? service->ErrorFor(st) : FromStatus(st);
    if (e.http_status >= 500) {
      log::Error("api_error", {{"service", service ? std::string(service->signing_name()) : std::string()},
                               {"path", req.path.substr(0, 200)},
                               {"type", e.type},
                               {"message", e.message}});
    }
    reply_error(e);
  };
  try {
    service = ServiceFor(req);
    // What needs no SigV4 (Lambda's health check and signed code links) is answered here, and a
    // request for no operation at all is refused before its signature is looked at.
    Result<bool> answered = service->HandleBeforeAuth(req, resp, rid);
    if (!answered.ok()) return reply_status(answered.status());
    if (*answered) return;
    RequestInfo info;
    info.request_id = rid;
    // Lambda's routes and the native API (the geysir CLI signs it as Lambda, also where another
    // service serves it) want a "lambda" scope; any other service was chosen by its scope's
    // name, so that one matches.
    const bool native = req.path.rfind("/geysir/", 0) == 0;
    std::string_view signed_for = native ? std::string_view("lambda") : service->signing_name();
    if (auto denied = auth->Check(req, signed_for, &info.access_key_id)) {
      log::Info("auth_failed", {{"service", std::string(service->signing_name())},
                                {"error", denied->type},
                                {"remote", req.remote_addr}});
      reply_error(*denied);
      return;
    }
    net::sigv4::VerifyError ignored;
    if (auto cred = net::sigv4::ParseCredential(req, &ignored)) {
      info.region = cred->region;
      info.service = cred->service;
    }
    Status handled = service->Handle(req, resp, info);
    if (!handled.ok()) reply_status(handled);
  } catch (const ApiException& e) {
    if (e.error().http_status >= 500) {
      log::Error("api_error", {{"service", service ? std::string(service->signing_name()) : std::string()},
                               {"path", req.path.substr(0, 200)},
                               {"type", e.error().type},
                               {"message", e.error().message}});
    }
    reply_error(e.error());
  } catch (const std::exception& e) {
    // A bug or an unexpected SQLite failure: the client gets a 500 and the operator a log line.
    log::Error("api_exception", {{"service", service ? std::string(service->signing_name()) : std::string()},
                                 {"path", req.path.substr(0, 200)},
                                 {"what", e.what()}});
    reply_error(ServiceError(std::string("internal error: ") + e.what()));
  }
}

namespace {

// The signing name in what arrived of a credential scope ("Credential=AKID/DATE/REGION/<name>/"
// in Authorization, or X-Amz-Credential in the query), read leniently: the request may have
// been cut off anywhere. "" when there is none.
std::string ScopeServiceOf(const HttpRequest& partial) {
  std::string scope;
  if (const std::string* authz = partial.Header("Authorization")) {
    size_t at = authz->find("Credential=");
    if (at != std::string::npos) scope = authz->substr(at + 11, 256);
  } else {
    size_t at = partial.query.find("X-Amz-Credential=");
    if (at != std::string::npos) scope = net::PercentDecode(partial.query.substr(at + 17, 256), false);
  }
  size_t pos = 0;
  for (int slash = 0; slash < 3; ++slash) {
    pos = scope.find('/', pos);
    if (pos == std::string::npos) return "";
    ++pos;
  }
  size_t end = scope.find('/', pos);
  return end == std::string::npos ? "" : scope.substr(pos, end - pos);
}

}  // namespace

// A request the HTTP server refused before it was parsed whole (400 malformed, 408, 413, 431),
// in the format of the service it was for, told by what arrived: Lambda's and the native API's
// paths, else the service in the credential scope (every AWS client signs). Clients of the XML
// services (S3, IAM, STS, CloudFormation) could not read Lambda's JSON. Unknown: Lambda's.
net::HttpResponse ControlServer::Impl::ProtocolError(const HttpRequest& partial, int status,
                                                       const std::string& message) {
  const std::string rid = NewUuid();
  // nullptr: Lambda's format.
  Service* service = nullptr;
  const bool lambda_path = partial.path.rfind("/2015-03-31/", 0) == 0 ||
                           partial.path.rfind("/2021-10-31/", 0) == 0 || partial.path.rfind("/geysir/", 0) == 0;
  if (!lambda_path) {
    std::string name = ScopeServiceOf(partial);
    if (!name.empty()) service = ServiceNamed(name);
    if (service == registry.lambda) service = nullptr;
  }
  const bool s3 = service != nullptr && service->signing_name() == "s3";
  std::string type;
  switch (status) {
    case 400: type = service == nullptr ? "InvalidRequestContentException" : s3 ? "InvalidRequest" : "ValidationError"; break;
    case 408: type = "RequestTimeout"; break;
    case 413: type = service == nullptr ? "RequestTooLargeException" : s3 ? "MaxMessageLengthExceeded" : "RequestEntityTooLarge"; break;
    case 431: type = s3 ? "RequestHeaderSectionTooLarge" : "RequestHeaderFieldsTooLarge"; break;
    default: type = "BadRequest"; break;
  }
  AwsError e = MakeAwsError(status, std::move(type), message);
  net::HttpResponse r = service ? service->ErrorResponse(e, rid) : ToHttpResponse(e, rid);
  r.status = status;  // a service's mapping may rename the code; the HTTP outcome stays the server's
  return r;
}

// The service named in the request's SigV4 credential scope, when it is a registered one;
// Lambda otherwise. Requests for Lambda's own paths stay with Lambda whatever the scope says,
// and native API paths (/geysir/) go to the service that claims them, else to Lambda.
Service* ControlServer::Impl::ServiceFor(const HttpRequest& req) {
  if (req.path.rfind("/2015-03-31/", 0) == 0 || req.path.rfind("/2021-10-31/", 0) == 0 ||
      req.path.rfind("/geysir/", 0) == 0) {
    if (req.path.rfind("/geysir/", 0) == 0) {
      for (auto& s : registry.in_start_order) {
        if (s->HandlesNativePath(req.path)) return s.get();
      }
    }
    return registry.lambda;
  }
  net::sigv4::VerifyError ignored;
  std::optional<net::sigv4::Credential> cred = net::sigv4::ParseCredential(req, &ignored);
  if (!cred) return registry.lambda;
  Service* named = ServiceNamed(cred->service);
  return named ? named : registry.lambda;
}

Service* ControlServer::Impl::ServiceNamed(std::string_view signing_name) {
  for (auto& s : registry.in_start_order) {
    if (s->signing_name() == signing_name) return s.get();
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// control.sock: routes and logs

// A function's URL, or an API Gateway route to it: either puts the function's configuration in
// the gateway's table, so a change of it must reach the gateway.
bool ControlServer::Impl::GatewayRoutesTo(const std::string& name) {
  Result<FunctionUrlConfigRecord> c = store_->GetFunctionUrlConfig(name);
  if (c.ok()) return true;
  proto::RouteTable apis;
  for (auto& service : registry.in_start_order) service->ContributeRoutes(apis);
  for (const auto& api : apis.apis) {
    for (const auto& stage : api.stages) {
      for (const auto& route : stage.routes) {
        if (route.function && route.function->name == name) return true;
      }
    }
  }
  return false;
}

Result<proto::RouteTable> ControlServer::Impl::BuildRouteTable() {
  Result<std::vector<proto::FunctionUrlRoute>> routes = store_->ListFunctionUrlRoutes(
      [this](const std::string& hex) { return code_store_->DirFor(hex); }, opt.api.region);
  if (!routes.ok()) return routes.status();
  proto::RouteTable t;
  t.generation = generation;
  t.function_urls = std::move(routes).value();
  for (auto& service : registry.in_start_order) service->ContributeRoutes(t);
  return t;
}

void ControlServer::Impl::PushRoutes() {
  ++generation;
  Result<proto::RouteTable> table = BuildRouteTable();
  if (!table.ok()) {
    log::Error("routes_failed", {{"error", table.status().ToString()}});
    return;
  }
  proto::Frame frame = proto::MakeFrame(proto::kMsgRoutes, *table);
  std::vector<proto::Frame> extra;  // the services' gateway state (TLS certificates, ...)
  for (auto& service : registry.in_start_order) service->ContributeGatewayFrames(extra);
  size_t sent = 0;
  for (auto& [ptr, peer] : peers) {
    if (peer.subscribed && peer.conn->open()) {
      peer.conn->Send(frame);
      for (const auto& f : extra) peer.conn->Send(f);
      ++sent;
    }
  }
  log::Info("routes_pushed", {{"generation", generation}, {"routes", table->function_urls.size()}, {"subscribers", sent}});
}

void ControlServer::Impl::OnPeer(std::shared_ptr<proto::FrameConnection> conn) {
  proto::FrameConnection* key = conn.get();
  peers[key] = Peer{conn, false};
  // The handlers capture the raw key, not the shared_ptr, so a connection does not own itself.
  conn->Start([this, key](proto::Frame&& f) { OnFrame(key, std::move(f)); },
              [this, key](const Status& why) {
                auto it = peers.find(key);
                if (it == peers.end()) return;
                log::Info("peer_closed", {{"subscribed", it->second.subscribed}, {"why", why.ToString()}});
                // Erasing may destroy the connection; keep it alive until this callback returns.
                auto keep = it->second.conn;
                peers.erase(it);
                (void)keep;
              });
}

void ControlServer::Impl::OnFrame(proto::FrameConnection* key, proto::Frame&& frame) {
  auto it = peers.find(key);
  if (it == peers.end()) return;
  const std::string type = frame.type();
  if (type == proto::kMsgSubscribeRoutes) {
    it->second.subscribed = true;
    Result<proto::RouteTable> table = BuildRouteTable();
    if (!table.ok()) {
      log::Error("routes_failed", {{"error", table.status().ToString()}});
      return;
    }
    it->second.conn->Send(proto::MakeFrame(proto::kMsgRoutes, *table));
    std::vector<proto::Frame> extra;
    for (auto& service : registry.in_start_order) service->ContributeGatewayFrames(extra);
    for (const auto& f : extra) it->second.conn->Send(f);
    log::Info("routes_subscribed", {{"generation", generation}, {"routes", table->function_urls.size()}});
  } else if (type == proto::kMsgLogs) {
    // One frame, one transaction: the scheduler coalesces the batches of the invocations that
    // finished while its previous frame was being committed (group commit).
    proto::LogBatches frame_batches;
    try {
      frame_batches = proto::TakeLogBatches(frame.header);
    } catch (const std::exception& e) {
      // Unacknowledged, the sender would wait for this frame forever: closing makes it resend,
      // and drop the batch that keeps failing (ControlLogSink::kMaxLossesPerBatch).
      log::Warn("bad_logs_frame", {{"what", e.what()}});
      it->second.conn->Close();
      return;
    }
    const std::vector<proto::LogBatch>& batches = frame_batches.batches;
    if (batches.empty()) return;
    Result<size_t> stored = store_->AppendLogBatches(batches);
    if (!stored.ok()) {
      // The database refused (disk full, I/O error): not acknowledged, and the connection is
      // closed so the scheduler sends these batches again (and after repeated failures drops
      // and counts the oldest; it never waits for an acknowledgement that cannot come).
      log::Error("append_logs_failed", {{"function", batches.front().function_name}, {"batches", batches.size()},
                                        {"error", stored.status().ToString()}});
      it->second.conn->Close();
      return;
    }
    if (*stored < batches.size()) {
      log::Debug("logs_resend_skipped", {{"sender", batches.front().sender}, {"batches", batches.size() - *stored}});
    }
    // Acknowledged after the commit: per sender, the highest seq of the frame (acks are
    // cumulative). A frame has one sender in practice; seq 0 asks for no acknowledgement.
    std::map<std::string_view, uint64_t> acks;
    for (const proto::LogBatch& b : batches) {
      if (b.seq != 0) acks[b.sender] = std::max(acks[b.sender], b.seq);
    }
    for (const auto& [sender, seq] : acks) {
      it->second.conn->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{std::string(sender), seq}));
    }
  } else {
    // Frames for the services (the gateway's "tls_applied"); the rest is ignored, by contract.
    for (auto& service : registry.in_start_order) service->OnPeerFrame(frame);
    log::Debug("peer_frame", {{"type", type}});
  }
}

// ---------------------------------------------------------------------------------------------

ControlServer::ControlServer(uv_loop_t* loop_, ControlOptions options)
    : impl_(std::make_unique<Impl>(loop_, std::move(options))) {}

ControlServer::~ControlServer() = default;

Status ControlServer::Start() { return impl_->Start(); }
uint16_t ControlServer::port() const { return impl_->http ? impl_->http->port() : 0; }
const std::string& ControlServer::credentials_path() const { return impl_->credentials_path; }
const AccessKey& ControlServer::admin_key() const { return impl_->admin; }
Store& ControlServer::store() { return *impl_->store_; }
uint64_t ControlServer::route_generation() const { return impl_->generation; }

void ControlServer::Shutdown(std::function<void()> done) {
  Impl* s = impl_.get();
  if (!s->http) {
    Close();
    if (done) done();
    return;
  }
  s->http->Shutdown([this, done = std::move(done)] {
    Close();
    if (done) done();
  });
}

void ControlServer::Close() {
  Impl* s = impl_.get();
  if (s->http) s->http->Close();
  if (s->frames) s->frames->Close();
  if (s->invoker) s->invoker->Close();
  for (auto& service : s->registry.in_start_order) service->Shutdown();
  // Closing a connection may run its close handler, which erases it from `peers`.
  std::vector<std::shared_ptr<proto::FrameConnection>> conns;
  for (auto& [ptr, peer] : s->peers) conns.push_back(peer.conn);
  for (auto& c : conns) c->Close();
}

}  // namespace geysir::control
