// ControlServer: see control_server.h for what it does; this file explains how.
//
// Every HTTP request goes through OnRequest: route -> authenticate -> handler. Handlers throw
// ApiException for anything the client got wrong (and DbError/std::exception escape only on
// bugs); OnRequest catches at this one boundary and answers in Lambda's error format, so no
// handler ever writes a half-made response.
//
// A deploy (CreateFunction, UpdateFunctionCode) is two-phase. Phase one runs on libuv's thread
// pool: parse the JSON body, decode the base64 zip, CodeStore::Put (extract, verify, fsync,
// rename into code/<hex>). Phase two runs back on the loop thread: one store transaction points
// the function at the new code and changes its revision id, then the route table is pushed.
// So a function never points at code that is not completely on disk, and a refused zip leaves
// nothing behind (Put cleans its staging directory).
#include "control/control_server.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "control/auth.h"
#include "control/aws_error.h"
#include "control/code_store.h"
#include "control/db.h"
#include "control/service.h"
#include "control/services/lambda/async_invoke.h"
#include "control/services/registry.h"
#include "control/services/s3/s3_objects.h"
#include "proto/frame_channel.h"
#include "net/http_server.h"
#include "proto/invoke_client.h"
#include "base/log.h"
#include "proto/messages.h"
#include "net/sigv4.h"
#include "base/unique_fd.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponder;
using net::HttpResponse;

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse JsonReply(int status, const json& body, const std::string& request_id) {
  HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", request_id}};
  r.body = DumpJson(body);
  return r;
}

HttpResponse EmptyReply(int status, const std::string& request_id) {
  HttpResponse r;
  r.status = status;
  r.headers = {{"x-amzn-RequestId", request_id}};
  return r;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
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
  std::mutex put_mu;  // CodeStore::Put runs on the thread pool; one at a time
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<CodeUrlSigner> url_signer;
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
  size_t deploys_in_flight = 0;
  bool shutting_down = false;
  // Code GC: when each unreferenced hash was first seen unreferenced (ms).
  std::map<std::string, int64_t> unreferenced_since;
  uv_timer_t* gc_timer = nullptr;  // freed in its close callback
  void CollectCode();

  // The AWS services besides Lambda (control/service.h), in start order, and what the Lambda
  // handlers read of them.
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
  Status InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) override;
  Result<proto::FunctionConfig> ResolveFunction(std::string_view function) override;
  // What `function` (+ `qualifier`) runs, as the scheduler gets it; `weighted`: an alias picks
  // by its routing weights (an invocation) instead of its primary version. kNotFound otherwise.
  Result<proto::FunctionConfig> ResolveConfig(std::string_view function, std::string_view qualifier, bool weighted);
  void RoutesChanged() override { PushRoutes(); }

  int64_t NowS() const { return opt.now_ms() / 1000; }

  Status Start();
  void OnRequest(HttpRequest&& req, Responder resp);
  void Dispatch(const Route& route, HttpRequest& req, const Responder& resp, const std::string& rid);

  // Handlers. Synchronous ones send before returning; async ones send later.
  void CreateFunction(HttpRequest& req, const Responder& resp, const std::string& rid);
  void UpdateFunctionCode(const std::string& name, HttpRequest& req, const Responder& resp, const std::string& rid);
  void GetFunction(const FunctionRef& ref, const HttpRequest& req, const Responder& resp, const std::string& rid);
  void UpdateFunctionConfiguration(const std::string& name, const HttpRequest& req, const Responder& resp,
                                   const std::string& rid);
  void DeleteFunction(const FunctionRef& ref, const Responder& resp, const std::string& rid);
  void ListFunctions(const HttpRequest& req, const Responder& resp, const std::string& rid);
  void Invoke(const FunctionRef& ref, HttpRequest& req, const Responder& resp, const std::string& rid);
  // Versions, aliases, policy, concurrency, tags, account settings (see "Versions and the rest").
  void LambdaExtra(const Route& route, HttpRequest& req, const Responder& resp, const std::string& rid);
  void PublishVersion(const std::string& name, const HttpRequest& req, const Responder& resp, const std::string& rid);
  void ListVersions(const std::string& name, const HttpRequest& req, const Responder& resp, const std::string& rid);
  void Aliases(const Route& route, const std::string& name, const HttpRequest& req, const Responder& resp,
               const std::string& rid);
  void Policy(const Route& route, const FunctionRef& ref, const HttpRequest& req, const Responder& resp,
              const std::string& rid);
  void Concurrency(Operation op, const std::string& name, const HttpRequest& req, const Responder& resp,
                   const std::string& rid);
  void Tags(const Route& route, const HttpRequest& req, const Responder& resp, const std::string& rid);
  void AccountSettings(const Responder& resp, const std::string& rid);
  // Publishes $LATEST after a deploy with Publish=true.
  FunctionRecord PublishAfterDeploy(const std::string& name);
  void UrlConfig(Operation op, const std::string& name, const HttpRequest& req, const Responder& resp,
                 const std::string& rid);
  void GetLogs(const std::string& raw_name, const HttpRequest& req, const Responder& resp, const std::string& rid);
  void GetCode(const std::string& hex, const HttpRequest& req, const Responder& resp, const std::string& rid);

  // Deploys.
  struct Deploy;
  void StartDeploy(std::unique_ptr<Deploy> d);
  static void DeployWork(uv_work_t* w);
  static void DeployDone(uv_work_t* w, int status);
  void FinishDeploy(Deploy& d);
  void ForgetOrphanCode(const StoredCode& code);

  // Routes.
  bool HasUrl(const std::string& name);
  void PushRoutes();
  Result<proto::RouteTable> BuildRouteTable();
  void OnPeer(std::shared_ptr<proto::FrameConnection> conn);
  void OnFrame(proto::FrameConnection* conn, proto::Frame&& frame);

  // What a qualified reference addresses: $LATEST, a published version, or the version an alias
  // routes to (`weighted`: pick by the alias's routing weights, as an invocation does; otherwise
  // its primary version). ResourceNotFoundException as Lambda words it when anything is missing.
  struct Resolved {
    FunctionRecord target;  // what runs / what is described
    std::string alias;      // the alias used, "" if none
  };
  Resolved ResolveOrThrow(const FunctionRef& ref, bool weighted);

  FunctionRecord GetOrThrow(const std::string& name) {
    Result<FunctionRecord> f = store_->GetFunction(name);
    if (!f.ok() && f.status().code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
    }
    return ValueOrThrow(std::move(f));
  }
};

struct ControlServer::Impl::Deploy {
  uv_work_t work{};
  Impl* self = nullptr;
  Responder resp;
  std::string rid;
  bool create = false;
  std::string name;  // UpdateFunctionCode: the resolved name from the path
  std::string body;  // consumed on the worker thread
  // Results of the worker phase.
  std::optional<AwsError> error;
  CreateFunctionInput create_input;
  CodeUpdateInput update_input;
  bool parsed = false;     // the body has been parsed (phase one of two when code comes from S3)
  bool needs_s3 = false;   // the loop thread must copy Code.S3Bucket/S3Key into `zip`, then requeue
  std::string zip;         // the package bytes, decoded or copied from S3
  StoredCode code;
  int64_t started_ms = 0;
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

  Result<std::string> url_key = LoadOrCreateSecretFile(opt.data_dir + "/code-url.key");
  if (!url_key.ok()) return url_key.status().Wrap("loading the code URL signing key");
  url_signer = std::make_unique<CodeUrlSigner>(*url_key);
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

  registry = MakeServices(*this);
  for (auto& service : registry.in_start_order) {
    Status st = service->Start();
    if (!st.ok()) return st.Wrap("starting the " + std::string(service->signing_name()) + " service");
  }

  gc_timer = new uv_timer_t;
  uv_timer_init(loop_, gc_timer);
  gc_timer->data = this;
  uv_timer_start(
      gc_timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->CollectCode(); }, opt.code_gc_interval_ms,
      opt.code_gc_interval_ms);
  uv_unref(reinterpret_cast<uv_handle_t*>(gc_timer));  // never the reason the loop stays alive

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
  Operation op = Operation::kUnknown;
  // The service the request was signed for (nullptr = Lambda or Geysir's native API); its
  // protocol formats every error of this request, authentication failures included.
  Service* service = nullptr;
  auto reply_error = [&](const AwsError& e) {
    resp->Send(service ? service->ErrorResponse(e, rid) : ToHttpResponse(e, rid));
  };
  try {
    // A request signed for another registered service (S3, Logs, ...) is that service's, whatever
    // its path; only the rest is matched against Lambda's and the native API's routes.
    service = ServiceFor(req);
    Route route = service ? Route{} : MatchRoute(req.method, req.path);
    op = route.op;
    if (op == Operation::kHealth) {
      resp->Send(JsonReply(200, {{"status", "ok"}, {"isolation", opt.isolation}}, rid));
      return;
    }
    if (op == Operation::kGetCode) {
      GetCode(route.code_hex, req, resp, rid);
      return;
    }
    RequestInfo info;
    info.request_id = rid;
    // Lambda's routes and the native API (the geysir CLI signs it as Lambda, also where a
    // service serves it) want a "lambda" scope; any other registered service was chosen by its
    // scope's name, so that one matches. A path no route knows, signed for a service nobody
    // registered, is left to answer UnknownOperation (no service to hold the scope against).
    const bool native = req.path.rfind("/geysir/", 0) == 0;
    std::string_view signed_for = service && !native ? service->signing_name() : std::string_view("lambda");
    if (!service && op == Operation::kUnknown && !native && req.path.rfind("/2015-03-31/", 0) != 0 &&
        req.path.rfind("/2021-10-31/", 0) != 0) {
      signed_for = {};
    }
    if (auto denied = auth->Check(req, signed_for, &info.access_key_id)) {
      log::Info("auth_failed", {{"op", service ? std::string(service->signing_name()) : OperationName(op)},
                                {"error", denied->type},
                                {"remote", req.remote_addr}});
      reply_error(*denied);
      return;
    }
    if (service) {
      net::sigv4::VerifyError ignored;
      if (auto cred = net::sigv4::ParseCredential(req, &ignored)) {
        info.region = cred->region;
        info.service = cred->service;
      }
      service->Handle(req, resp, info);
      return;
    }
    Dispatch(route, req, resp, rid);
  } catch (const ApiException& e) {
    if (e.error().http_status >= 500) {
      log::Error("api_error", {{"op", service ? std::string(service->signing_name()) : OperationName(op)},
                               {"type", e.error().type},
                               {"message", e.error().message}});
    }
    reply_error(e.error());
  } catch (const std::exception& e) {
    // A bug or an unexpected SQLite failure: the client gets a 500 and the operator a log line.
    log::Error("api_exception", {{"op", service ? std::string(service->signing_name()) : OperationName(op)},
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
  Service* service = nullptr;
  const bool lambda_path = partial.path.rfind("/2015-03-31/", 0) == 0 ||
                           partial.path.rfind("/2021-10-31/", 0) == 0 || partial.path.rfind("/geysir/", 0) == 0;
  if (!lambda_path) {
    std::string name = ScopeServiceOf(partial);
    if (!name.empty()) service = ServiceNamed(name);
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

// The service named in the request's SigV4 credential scope, when it is one of the registered
// services (Lambda and the native API are not: they return nullptr and go to Dispatch).
// Requests for Lambda's own paths stay with Lambda whatever the scope says.
Service* ControlServer::Impl::ServiceFor(const HttpRequest& req) {
  if (req.path.rfind("/2015-03-31/", 0) == 0 || req.path.rfind("/2021-10-31/", 0) == 0 ||
      req.path.rfind("/geysir/", 0) == 0) {
    // A service may serve part of the native API (custom domains: /geysir/v1/domains).
    if (req.path.rfind("/geysir/", 0) == 0) {
      for (auto& s : registry.in_start_order) {
        if (s->HandlesNativePath(req.path)) return s.get();
      }
    }
    return nullptr;
  }
  net::sigv4::VerifyError ignored;
  std::optional<net::sigv4::Credential> cred = net::sigv4::ParseCredential(req, &ignored);
  if (!cred) return nullptr;
  return ServiceNamed(cred->service);
}

Service* ControlServer::Impl::ServiceNamed(std::string_view signing_name) {
  for (auto& s : registry.in_start_order) {
    if (s->signing_name() == signing_name) return s.get();
  }
  return nullptr;
}

Result<proto::FunctionConfig> ControlServer::Impl::ResolveConfig(std::string_view function, std::string_view qualifier,
                                                                 bool weighted) {
  Resolved resolved;
  try {
    resolved = ResolveOrThrow(ResolveFunctionRef(function, qualifier), weighted);
  } catch (const ApiException& e) {
    return Status::NotFound(e.error().message);
  }
  const FunctionRecord& f = resolved.target;
  proto::FunctionConfig config = ToFunctionConfig(f, code_store_->DirFor(f.code_hex), opt.api.region);
  if (!resolved.alias.empty()) config.arn = QualifiedArn(opt.api, f.name, resolved.alias);
  return config;
}

Status ControlServer::Impl::InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) {
  Result<proto::FunctionConfig> config = ResolveConfig(call.function, call.qualifier, true);
  if (!config.ok()) return config.status();
  if (!invoker->connected()) {
    return Status::Unavailable("the Geysir scheduler is not reachable at " + opt.scheduler_socket);
  }
  proto::InvokeRequest ir;
  ir.request_id = call.request_id.empty() ? NewUuid() : call.request_id;
  ir.function = std::move(config).value();
  ir.source = call.source;
  ir.want_log_tail = call.want_log_tail;
  ir.client_context_b64 = call.client_context_b64;
  invoker->Invoke(std::move(ir), std::move(call.payload), std::move(done));
  return Status::Ok();
}

Result<proto::FunctionConfig> ControlServer::Impl::ResolveFunction(std::string_view function) {
  return ResolveConfig(function, "", false);
}

void ControlServer::Impl::Dispatch(const Route& route, HttpRequest& req, const Responder& resp,
                                   const std::string& rid) {
  auto query = ParseQuery(req.query);
  auto qualifier = [&]() -> std::string {
    auto it = query.find("Qualifier");
    return it == query.end() ? "" : it->second;
  };
  auto name = [&]() { return ResolveFunctionName(opt.api, route.function, qualifier()); };
  auto ref = [&]() { return ResolveFunctionRef(route.function, qualifier()); };
  switch (route.op) {
    case Operation::kCreateFunction: return CreateFunction(req, resp, rid);
    case Operation::kListFunctions: return ListFunctions(req, resp, rid);
    case Operation::kGetFunction: return GetFunction(ref(), req, resp, rid);
    case Operation::kGetFunctionConfiguration:
      resp->Send(JsonReply(200, FunctionConfigurationJson(ResolveOrThrow(ref(), false).target), rid));
      return;
    case Operation::kUpdateFunctionConfiguration: return UpdateFunctionConfiguration(name(), req, resp, rid);
    case Operation::kUpdateFunctionCode: return UpdateFunctionCode(name(), req, resp, rid);
    case Operation::kDeleteFunction: return DeleteFunction(ref(), resp, rid);
    case Operation::kInvoke: return Invoke(ref(), req, resp, rid);
    case Operation::kPublishVersion:
    case Operation::kListVersionsByFunction:
    case Operation::kCreateAlias:
    case Operation::kListAliases:
    case Operation::kGetAlias:
    case Operation::kUpdateAlias:
    case Operation::kDeleteAlias:
    case Operation::kAddPermission:
    case Operation::kGetPolicy:
    case Operation::kRemovePermission:
    case Operation::kPutFunctionConcurrency:
    case Operation::kGetFunctionConcurrency:
    case Operation::kDeleteFunctionConcurrency:
    case Operation::kTagResource:
    case Operation::kUntagResource:
    case Operation::kListTags:
    case Operation::kGetAccountSettings:
      return LambdaExtra(route, req, resp, rid);
    case Operation::kCreateFunctionUrlConfig:
    case Operation::kGetFunctionUrlConfig:
    case Operation::kUpdateFunctionUrlConfig:
    case Operation::kDeleteFunctionUrlConfig:
    case Operation::kListFunctionUrlConfigs:
      return UrlConfig(route.op, name(), req, resp, rid);
    case Operation::kGetLogs: return GetLogs(route.function, req, resp, rid);
    case Operation::kPutFunctionEventInvokeConfig:
    case Operation::kGetFunctionEventInvokeConfig:
    case Operation::kUpdateFunctionEventInvokeConfig:
    case Operation::kDeleteFunctionEventInvokeConfig:
    case Operation::kListFunctionEventInvokeConfigs:
    case Operation::kListSchedules:
    case Operation::kListAsyncEvents:
    case Operation::kRedriveAsyncEvents:
      return HandleTriggersApi(*this, *registry.triggers, route, req, resp, rid);
    case Operation::kHealth:
    case Operation::kGetCode:
    case Operation::kUnknown:
      break;
  }
  throw ApiException(UnknownOperation("unknown operation"));
}

// ---------------------------------------------------------------------------------------------
// Functions

void ControlServer::Impl::ListFunctions(const HttpRequest& req, const Responder& resp, const std::string& rid) {
  auto query = ParseQuery(req.query);
  int max_items = 50;
  if (auto it = query.find("MaxItems"); it != query.end()) {
    auto v = ParseInt(it->second);
    if (!v || *v < 1 || *v > 10000) {
      throw ApiException(InvalidParameterValue("1 validation error detected: Value '" + it->second.substr(0, 50) +
                                               "' at 'maxItems' failed to satisfy constraint: Member must have value "
                                               "between 1 and 10000"));
    }
    max_items = static_cast<int>(*v);
  }
  std::string marker = query.count("Marker") ? query["Marker"] : "";
  FunctionPage page = ValueOrThrow(store_->ListFunctions(marker, max_items));
  json functions = json::array();
  for (const FunctionRecord& f : page.functions) functions.push_back(FunctionConfigurationJson(f));
  json body = {{"Functions", std::move(functions)}};
  if (!page.next_marker.empty()) body["NextMarker"] = page.next_marker;
  resp->Send(JsonReply(200, body, rid));
}

void ControlServer::Impl::GetFunction(const FunctionRef& ref, const HttpRequest& req, const Responder& resp,
                                      const std::string& rid) {
  FunctionRecord f = ResolveOrThrow(ref, false).target;
  // The link points back at this endpoint as the client reached it.
  const std::string* host = req.Header("Host");
  std::string base = "http://" + (host && !host->empty() ? *host : opt.listen_host + ":" + std::to_string(http->port()));
  json body = {
      {"Configuration", FunctionConfigurationJson(f)},
      {"Code", {{"RepositoryType", "S3"}, {"Location", base + url_signer->PathFor(f.code_hex, NowS() + 600)}}},
  };
  if (!f.tags.empty()) body["Tags"] = f.tags;
  if (f.reserved_concurrency) body["Concurrency"] = {{"ReservedConcurrentExecutions", *f.reserved_concurrency}};
  resp->Send(JsonReply(200, body, rid));
}

void ControlServer::Impl::GetCode(const std::string& hex, const HttpRequest& req, const Responder& resp,
                                  const std::string& rid) {
  if (!url_signer->Verify(hex, ParseQuery(req.query), NowS())) {
    AwsError e;
    e.http_status = 403;
    e.type = "AccessDenied";
    e.message = "Request has expired or the signature is invalid; call GetFunction for a fresh Code.Location";
    resp->Send(ToHttpResponse(e, rid));
    return;
  }
  Result<std::string> zip = code_store_->ReadBlob(hex);
  if (!zip.ok()) throw ApiException(FromStatus(zip.status()));
  HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", "application/zip"}, {"x-amzn-RequestId", rid}};
  r.body = std::move(zip).value();
  resp->Send(std::move(r));
}

void ControlServer::Impl::UpdateFunctionConfiguration(const std::string& name, const HttpRequest& req,
                                                      const Responder& resp, const std::string& rid) {
  ConfigPatch patch = ParseUpdateFunctionConfiguration(ParseJsonObject(req.body));
  bool precondition_failed = false;
  std::string replaced_revision;
  Result<FunctionRecord> updated = store_->UpdateFunction(name, [&](FunctionRecord& f) -> Status {
    if (patch.revision_id && *patch.revision_id != f.revision_id) {
      precondition_failed = true;
      return Status::Invalid("revision mismatch");
    }
    replaced_revision = f.revision_id;
    ApplyPatch(patch, f);
    return Status::Ok();
  });
  if (precondition_failed) {
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                          "GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  if (!updated.ok() && updated.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
  }
  FunctionRecord f = ValueOrThrow(std::move(updated));
  log::Info("function_configured", {{"function", name}, {"revision_id", f.revision_id}});
  // The old revision's sandboxes stop now rather than at the idle timeout.
  if (!replaced_revision.empty() && replaced_revision != f.revision_id) invoker->Retire({name, replaced_revision});
  if (HasUrl(name)) PushRoutes();
  resp->Send(JsonReply(200, FunctionConfigurationJson(f), rid));
}

void ControlServer::Impl::DeleteFunction(const FunctionRef& ref, const Responder& resp, const std::string& rid) {
  const std::string& name = ref.name;
  if (!ref.qualifier.empty()) {
    // DeleteFunction with a Qualifier deletes one published version.
    if (ref.qualifier == "$LATEST") {
      throw ApiException(InvalidParameterValue("$LATEST version cannot be deleted without deleting the function."));
    }
    if (!IsVersionNumber(ref.qualifier)) {
      throw ApiException(InvalidParameterValue("Deletion of aliases is not supported by DeleteFunction: use DeleteAlias for " +
                                               ref.qualifier));
    }
    Result<FunctionRecord> version = store_->GetFunctionVersion(name, ref.qualifier);
    Status st = store_->DeleteFunctionVersion(name, ref.qualifier);
    if (st.code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + QualifiedArn(opt.api, name, ref.qualifier)));
    }
    if (st.code() == Code::kAlreadyExists) throw ApiException(ResourceConflict(st.message()));
    ThrowIfError(st);
    log::Info("function_version_deleted", {{"function", name}, {"version", ref.qualifier}});
    // The version's sandboxes stop now (a version has a revision of its own).
    if (version.ok() && !version->revision_id.empty()) invoker->Retire({name, version->revision_id});
    resp->Send(EmptyReply(204, rid));
    return;
  }
  bool had_url = HasUrl(name);
  Status st = store_->DeleteFunction(name);
  if (st.code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
  }
  ThrowIfError(st);
  log::Info("function_deleted", {{"function", name}});
  invoker->Retire({name, ""});  // every sandbox of it stops now, not at the idle timeout
  if (had_url) PushRoutes();
  resp->Send(EmptyReply(204, rid));
}

// ---------------------------------------------------------------------------------------------
// Deploys

void ControlServer::Impl::CreateFunction(HttpRequest& req, const Responder& resp, const std::string& rid) {
  auto d = std::make_unique<Deploy>();
  d->create = true;
  d->resp = resp;
  d->rid = rid;
  d->body = std::move(req.body);
  StartDeploy(std::move(d));
}

void ControlServer::Impl::UpdateFunctionCode(const std::string& name, HttpRequest& req, const Responder& resp,
                                             const std::string& rid) {
  GetOrThrow(name);  // a missing function fails fast, before any unpacking
  auto d = std::make_unique<Deploy>();
  d->create = false;
  d->name = name;
  d->resp = resp;
  d->rid = rid;
  d->body = std::move(req.body);
  StartDeploy(std::move(d));
}

void ControlServer::Impl::StartDeploy(std::unique_ptr<Deploy> d) {
  d->self = this;
  d->started_ms = NowMs();
  d->work.data = d.get();
  int rc = uv_queue_work(loop_, &d->work, DeployWork, DeployDone);
  if (rc != 0) throw ApiException(ServiceError(std::string("cannot queue the deploy: ") + uv_strerror(rc)));
  ++deploys_in_flight;
  (void)d.release();  // owned by the work request until DeployDone
}

// Thread pool: touches only the Deploy and CodeStore::Put (under put_mu).
void ControlServer::Impl::DeployWork(uv_work_t* w) {
  auto* d = static_cast<Deploy*>(w->data);
  try {
    if (!d->parsed) {
      d->parsed = true;
      json body = ParseJsonObject(d->body);
      std::string().swap(d->body);
      std::string* b64 = nullptr;
      bool from_s3 = false;
      if (d->create) {
        d->create_input = ParseCreateFunction(d->self->opt.api, body);
        b64 = &d->create_input.zip_base64;
        from_s3 = d->create_input.s3.has_value();
      } else {
        d->update_input = ParseUpdateFunctionCode(body);
        b64 = &d->update_input.zip_base64;
        from_s3 = d->update_input.s3.has_value();
        if (d->update_input.dry_run) return;
      }
      body = json();
      if (from_s3) {
        // S3's tables belong to the loop thread: DeployDone copies the object, then requeues.
        d->needs_s3 = true;
        return;
      }
      std::optional<std::string> decoded = Base64Decode(*b64);
      std::string().swap(*b64);
      if (!decoded) throw ApiException(InvalidParameterValue("Code.ZipFile is not valid base64"));
      d->zip = std::move(*decoded);
    }
    std::string* zip = &d->zip;
    if (zip->size() > ZipLimits{}.max_zip_bytes) {
      throw ApiException(RequestEntityTooLarge("Zipped size must be smaller than " +
                                               std::to_string(ZipLimits{}.max_zip_bytes) + " bytes (got " +
                                               std::to_string(zip->size()) + ")"));
    }
    std::lock_guard<std::mutex> lock(d->self->put_mu);
    Result<StoredCode> stored = d->self->code_store_->Put(*zip);
    std::string().swap(d->zip);
    if (!stored.ok()) {
      AwsError e = FromStatus(stored.status());
      // The extractor's messages already name the problem in Lambda's words ("Could not
      // unzip uploaded file. …" or "Unzipped size must be smaller than …"); prefix only the
      // ones that do not say it is about the zip.
      if (stored.status().code() == Code::kInvalidArgument &&
          e.message.rfind("Could not unzip", 0) != 0 && e.message.find("nzipped size") == std::string::npos) {
        e.message = "Could not unzip uploaded file: " + e.message;
      }
      throw ApiException(e);
    }
    d->code = std::move(stored).value();
  } catch (const ApiException& e) {
    d->error = e.error();
  } catch (const std::exception& e) {
    d->error = ServiceError(std::string("deploy failed: ") + e.what());
  }
}

void ControlServer::Impl::DeployDone(uv_work_t* w, int status) {
  std::unique_ptr<Deploy> d(static_cast<Deploy*>(w->data));
  Impl* self = d->self;
  --self->deploys_in_flight;
  if (status == UV_ECANCELED) d->error = ServiceError("deploy cancelled: control is shutting down");
  try {
    if (d->error) throw ApiException(*d->error);
    if (d->needs_s3) {
      // Copied now, synchronously: Zappa deletes the object as soon as this call returns.
      d->needs_s3 = false;
      const S3CodeSource& src = d->create ? *d->create_input.s3 : *d->update_input.s3;
      Result<std::string> object = self->registry.objects->ReadObject(src.bucket, src.key, ZipLimits{}.max_zip_bytes + 1);
      if (!object.ok()) {
        const std::string& m = object.status().message();
        if (object.status().code() == Code::kResourceExhausted) {
          throw ApiException(RequestEntityTooLarge("Zipped size must be smaller than " +
                                                   std::to_string(ZipLimits{}.max_zip_bytes) + " bytes"));
        }
        if (object.status().code() != Code::kNotFound) ThrowIfError(object.status());
        // "NoSuchKey: The specified key does not exist: KEY" -> Lambda's wording.
        size_t colon = m.find(": ");
        std::string code = colon == std::string::npos ? "NoSuchKey" : m.substr(0, colon);
        std::string text = colon == std::string::npos ? m : m.substr(colon + 2);
        throw ApiException(InvalidParameterValue("Error occurred while GetObject. S3 Error Code: " + code +
                                                 ". S3 Error Message: " + text));
      }
      d->zip = std::move(object).value();
      self->StartDeploy(std::move(d));
      return;
    }
    self->FinishDeploy(*d);
  } catch (const ApiException& e) {
    if (e.error().http_status >= 500) log::Error("deploy_failed", {{"message", e.error().message}});
    d->resp->Send(ToHttpResponse(e.error(), d->rid));
  } catch (const std::exception& e) {
    log::Error("deploy_exception", {{"what", e.what()}});
    d->resp->Send(ToHttpResponse(ServiceError(std::string("internal error: ") + e.what()), d->rid));
  }
}

void ControlServer::Impl::FinishDeploy(Deploy& d) {
  if (d.create) {
    FunctionRecord f = std::move(d.create_input.record);
    f.code_sha256 = d.code.sha256_b64;
    f.code_hex = d.code.sha256_hex;
    f.code_size = static_cast<int64_t>(d.code.size);
    f.state = "Active";
    f.last_update_status = "Successful";
    Result<FunctionRecord> created = store_->CreateFunction(f);
    if (!created.ok()) {
      ForgetOrphanCode(d.code);
      if (created.status().code() == Code::kAlreadyExists) {
        throw ApiException(ResourceConflict("Function already exist: " + f.name));
      }
      ThrowIfError(created.status());
    }
    log::Info("function_created", {{"function", created->name},
                                   {"code_sha256", created->code_sha256},
                                   {"code_size", created->code_size},
                                   {"reused_code", d.code.reused},
                                   {"ms", NowMs() - d.started_ms}});
    json out = FunctionConfigurationJson(*created);
    // With Publish, Lambda answers with the unqualified ARN and the new version's number.
    if (d.create_input.publish) out["Version"] = PublishAfterDeploy(created->name).version;
    d.resp->Send(JsonReply(201, out, d.rid));
    return;
  }
  // UpdateFunctionCode
  bool precondition_failed = false;
  if (d.update_input.dry_run) {
    FunctionRecord f = GetOrThrow(d.name);
    if (d.update_input.revision_id && *d.update_input.revision_id != f.revision_id) precondition_failed = true;
    if (!precondition_failed) {
      d.resp->Send(JsonReply(200, FunctionConfigurationJson(f), d.rid));
      return;
    }
  }
  Result<FunctionRecord> updated = Status::Internal("not run");
  std::string replaced_revision;
  if (!precondition_failed) {
    updated = store_->UpdateFunction(d.name, [&](FunctionRecord& f) -> Status {
      if (d.update_input.revision_id && *d.update_input.revision_id != f.revision_id) {
        precondition_failed = true;
        return Status::Invalid("revision mismatch");
      }
      replaced_revision = f.revision_id;
      f.code_sha256 = d.code.sha256_b64;
      f.code_hex = d.code.sha256_hex;
      f.code_size = static_cast<int64_t>(d.code.size);
      f.last_update_status = "Successful";
      return Status::Ok();
    });
  }
  if (precondition_failed) {
    ForgetOrphanCode(d.code);
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                          "GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  if (!updated.ok()) {
    ForgetOrphanCode(d.code);
    if (updated.status().code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, d.name)));
    }
    ThrowIfError(updated.status());
  }
  log::Info("function_code_updated", {{"function", d.name},
                                      {"code_sha256", updated->code_sha256},
                                      {"revision_id", updated->revision_id},
                                      {"ms", NowMs() - d.started_ms}});
  if (!replaced_revision.empty() && replaced_revision != updated->revision_id) {
    invoker->Retire({d.name, replaced_revision});  // the old code's sandboxes stop now
  }
  if (HasUrl(d.name)) PushRoutes();
  // With Publish, the answer describes the new version (a ":N"-qualified FunctionArn).
  if (d.update_input.publish) {
    d.resp->Send(JsonReply(200, FunctionConfigurationJson(PublishAfterDeploy(d.name)), d.rid));
    return;
  }
  d.resp->Send(JsonReply(200, FunctionConfigurationJson(*updated), d.rid));
}

// Code unpacked for a deploy that then failed (name taken, revision mismatch) is removed unless
// something references it; while another deploy is unpacking we leave it (that deploy may be of
// the same zip), and a later restart's garbage collection takes it.
void ControlServer::Impl::ForgetOrphanCode(const StoredCode& code) {
  if (code.sha256_hex.empty() || code.reused || deploys_in_flight > 0) return;
  Result<std::set<std::string>> referenced = store_->ReferencedCodeHexes();
  if (!referenced.ok() || referenced->count(code.sha256_hex)) return;
  Status st = code_store_->Remove(code.sha256_hex);
  if (!st.ok()) log::Warn("code_remove_failed", {{"hex", code.sha256_hex}, {"error", st.ToString()}});
}

void ControlServer::Impl::CollectCode() {
  // A deploy in flight may have a finished tree that no row references yet.
  if (deploys_in_flight > 0 || shutting_down) return;
  Result<std::set<std::string>> referenced = store_->ReferencedCodeHexes();
  Result<std::set<std::string>> stored = code_store_->List();
  if (!referenced.ok() || !stored.ok()) {
    log::Warn("code_gc_skipped", {{"error", (!referenced.ok() ? referenced.status() : stored.status()).ToString()}});
    return;
  }
  const int64_t now = NowMs();
  std::map<std::string, int64_t> still;
  for (const std::string& hex : *stored) {
    if (referenced->count(hex)) continue;
    auto it = unreferenced_since.find(hex);
    int64_t since = it == unreferenced_since.end() ? now : it->second;
    if (now - since >= opt.code_gc_grace_ms) {
      Status st = code_store_->Remove(hex);
      if (st.ok()) {
        log::Info("code_removed", {{"sha256", hex}});
        continue;
      }
      log::Warn("code_remove_failed", {{"sha256", hex}, {"error", st.ToString()}});
    }
    still.emplace(hex, since);
  }
  unreferenced_since = std::move(still);
}

// ---------------------------------------------------------------------------------------------
// Invoke

void ControlServer::Impl::Invoke(const FunctionRef& ref, HttpRequest& req, const Responder& resp,
                                 const std::string& rid) {
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
    EnqueueAsyncInvoke(*registry.triggers, name, f.version, std::move(payload), client_context, rid, resp);
    return;
  }
  if (!invoker->connected()) {
    throw ApiException(ServiceUnavailable("The Geysir scheduler is not reachable at " + opt.scheduler_socket +
                                          " (is geysir-scheduler running?); the function was not invoked"));
  }
  proto::InvokeRequest ir;
  ir.request_id = rid;
  ir.function = ToFunctionConfig(f, code_store_->DirFor(f.code_hex), opt.api.region);
  // context.invoked_function_arn is the ARN the caller used (alias-qualified through an alias).
  if (!resolved.alias.empty()) ir.function.arn = QualifiedArn(opt.api, name, resolved.alias);
  ir.source = type == "Event" ? proto::InvokeSource::kAsync : proto::InvokeSource::kApi;
  ir.want_log_tail = type == "RequestResponse" && log_type == "Tail";
  ir.client_context_b64 = client_context;

  Responder responder = resp;
  invoker->Invoke(std::move(ir), std::move(payload), [responder, rid](proto::InvokeResult r, std::string body) {
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
        out = ToHttpResponse(ServiceError(MessageOf(body)), rid);
        log::Error("invoke_internal", {{"request_id", rid}, {"detail", MessageOf(body)}});
        break;
    }
    responder->Send(std::move(out));
  });
}

// ---------------------------------------------------------------------------------------------
// Function URLs

void ControlServer::Impl::UrlConfig(Operation op, const std::string& name, const HttpRequest& req,
                                    const Responder& resp, const std::string& rid) {
  const std::string arn = FunctionArn(opt.api, name);
  auto not_found = [&]() { return ApiException(ResourceNotFound("The resource you requested does not exist.")); };
  auto rethrow = [&](const Status& st) {
    if (st.code() == Code::kNotFound) {
      Result<FunctionRecord> f = store_->GetFunction(name);
      if (!f.ok() && f.status().code() == Code::kNotFound) {
        throw ApiException(ResourceNotFound("Function not found: " + arn));
      }
      throw not_found();
    }
    ThrowIfError(st);
  };
  switch (op) {
    case Operation::kCreateFunctionUrlConfig: {
      UrlConfigInput in = ParseUrlConfig(ParseJsonObject(req.body), true);
      FunctionUrlConfigRecord c;
      c.function_name = name;
      c.auth_type = *in.auth_type;
      if (in.cors) c.cors = *in.cors;
      if (in.invoke_mode) c.invoke_mode = *in.invoke_mode;
      Result<FunctionUrlConfigRecord> created = store_->CreateFunctionUrlConfig(c);
      if (!created.ok() && created.status().code() == Code::kAlreadyExists) {
        throw ApiException(ResourceConflict("Failed to create function url config for [functionArn = " + arn +
                                            "]. Error message:  FunctionUrlConfig exists for this Lambda function"));
      }
      if (!created.ok()) rethrow(created.status());
      log::Info("function_url_created", {{"function", name}, {"url", FunctionUrl(opt.api, created->url_id)}});
      PushRoutes();
      resp->Send(JsonReply(201, FunctionUrlConfigJson(opt.api, *created, false), rid));
      return;
    }
    case Operation::kGetFunctionUrlConfig: {
      Result<FunctionUrlConfigRecord> c = store_->GetFunctionUrlConfig(name);
      if (!c.ok()) rethrow(c.status());
      resp->Send(JsonReply(200, FunctionUrlConfigJson(opt.api, *c, true), rid));
      return;
    }
    case Operation::kUpdateFunctionUrlConfig: {
      UrlConfigInput in = ParseUrlConfig(ParseJsonObject(req.body), false);
      Result<FunctionUrlConfigRecord> c =
          store_->UpdateFunctionUrlConfig(name, [&](FunctionUrlConfigRecord& r) -> Status {
            if (in.auth_type) r.auth_type = *in.auth_type;
            if (in.cors) r.cors = *in.cors;
            if (in.invoke_mode) r.invoke_mode = *in.invoke_mode;
            return Status::Ok();
          });
      if (!c.ok()) rethrow(c.status());
      PushRoutes();
      resp->Send(JsonReply(200, FunctionUrlConfigJson(opt.api, *c, true), rid));
      return;
    }
    case Operation::kDeleteFunctionUrlConfig: {
      Status st = store_->DeleteFunctionUrlConfig(name);
      if (!st.ok()) rethrow(st);
      log::Info("function_url_deleted", {{"function", name}});
      PushRoutes();
      resp->Send(EmptyReply(204, rid));
      return;
    }
    case Operation::kListFunctionUrlConfigs: {
      auto query = ParseQuery(req.query);
      int max_items = 50;
      if (auto it = query.find("MaxItems"); it != query.end()) {
        auto v = ParseInt(it->second);
        if (!v || *v < 1 || *v > 50) {
          throw ApiException(InvalidParameterValue("MaxItems must be an integer between 1 and 50"));
        }
        max_items = static_cast<int>(*v);
      }
      Result<FunctionUrlConfigPage> page =
          store_->ListFunctionUrlConfigs(name, query.count("Marker") ? query["Marker"] : "", max_items);
      if (!page.ok()) rethrow(page.status());
      json configs = json::array();
      for (const auto& c : page->configs) configs.push_back(FunctionUrlConfigJson(opt.api, c, true));
      json body = {{"FunctionUrlConfigs", std::move(configs)}};
      if (!page->next_marker.empty()) body["NextMarker"] = page->next_marker;
      resp->Send(JsonReply(200, body, rid));
      return;
    }
    default:
      throw ApiException(UnknownOperation("unknown function URL operation"));
  }
}

// ---------------------------------------------------------------------------------------------
// Versions and the rest: aliases, resource policy, concurrency, tags, account settings

ControlServer::Impl::Resolved ControlServer::Impl::ResolveOrThrow(const FunctionRef& ref, bool weighted) {
  Resolved r;
  const std::string& q = ref.qualifier;
  auto not_found = [&](const std::string& qualifier) {
    return ApiException(ResourceNotFound("Function not found: " + QualifiedArn(opt.api, ref.name, qualifier)));
  };
  if (q.empty() || q == "$LATEST") {
    r.target = GetOrThrow(ref.name);
    return r;
  }
  std::string version = q;
  if (!IsVersionNumber(q)) {
    Result<AliasRecord> alias = store_->GetAlias(ref.name, q);
    if (!alias.ok() && alias.status().code() == Code::kNotFound) throw not_found(q);
    AliasRecord a = ValueOrThrow(std::move(alias));
    r.alias = a.name;
    version = a.function_version;
    if (weighted && !a.additional_weights.empty()) {
      // Weighted routing: the additional version takes its share of invocations at random.
      const auto& [extra, weight] = *a.additional_weights.begin();
      unsigned char b[4];
      uint32_t x = 0;
      if (RAND_bytes(b, sizeof b) == 1) x = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
      if (static_cast<double>(x) / 4294967296.0 < weight) version = extra;
    }
  }
  Result<FunctionRecord> f = store_->GetFunctionVersion(ref.name, version);
  if (!f.ok() && f.status().code() == Code::kNotFound) {
    if (!store_->GetFunction(ref.name).ok()) throw not_found("");
    throw not_found(q);
  }
  r.target = ValueOrThrow(std::move(f));
  return r;
}

FunctionRecord ControlServer::Impl::PublishAfterDeploy(const std::string& name) {
  FunctionRecord v = ValueOrThrow(store_->PublishVersion(name, ""));
  log::Info("function_version_published", {{"function", name}, {"version", v.version}, {"code_sha256", v.code_sha256}});
  return v;
}

void ControlServer::Impl::LambdaExtra(const Route& route, HttpRequest& req, const Responder& resp,
                                      const std::string& rid) {
  auto query = ParseQuery(req.query);
  const std::string qualifier = query.count("Qualifier") ? query["Qualifier"] : "";
  switch (route.op) {
    case Operation::kPublishVersion:
      return PublishVersion(ResolveFunctionName(opt.api, route.function, ""), req, resp, rid);
    case Operation::kListVersionsByFunction:
      return ListVersions(ResolveFunctionName(opt.api, route.function, ""), req, resp, rid);
    case Operation::kCreateAlias:
    case Operation::kListAliases:
    case Operation::kGetAlias:
    case Operation::kUpdateAlias:
    case Operation::kDeleteAlias:
      return Aliases(route, ResolveFunctionName(opt.api, route.function, ""), req, resp, rid);
    case Operation::kAddPermission:
    case Operation::kGetPolicy:
    case Operation::kRemovePermission:
      return Policy(route, ResolveFunctionRef(route.function, qualifier), req, resp, rid);
    case Operation::kPutFunctionConcurrency:
    case Operation::kGetFunctionConcurrency:
    case Operation::kDeleteFunctionConcurrency:
      return Concurrency(route.op, ResolveFunctionName(opt.api, route.function, ""), req, resp, rid);
    case Operation::kTagResource:
    case Operation::kUntagResource:
    case Operation::kListTags:
      return Tags(route, req, resp, rid);
    case Operation::kGetAccountSettings:
      return AccountSettings(resp, rid);
    default:
      throw ApiException(UnknownOperation("unknown operation"));
  }
}

void ControlServer::Impl::PublishVersion(const std::string& name, const HttpRequest& req, const Responder& resp,
                                         const std::string& rid) {
  PublishInput in = ParsePublishVersion(ParseJsonObject(req.body));
  std::optional<AwsError> refused;
  Result<FunctionRecord> v = store_->PublishVersion(name, in.description, [&](const FunctionRecord& f) -> Status {
    if (in.code_sha256 && *in.code_sha256 != f.code_sha256) {
      refused = InvalidParameterValue("CodeSHA256 (" + *in.code_sha256 + ") is different from current CodeSHA256 in "
                                      "$LATEST (" + f.code_sha256 + "). Please try again.");
    } else if (in.revision_id && *in.revision_id != f.revision_id) {
      refused = PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                   "GetFunction/GetAlias API to retrieve the latest Revision Id");
    }
    return refused ? Status::Invalid("precondition") : Status::Ok();
  });
  if (refused) throw ApiException(*refused);
  if (!v.ok() && v.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
  }
  FunctionRecord out = ValueOrThrow(std::move(v));
  log::Info("function_version_published", {{"function", name}, {"version", out.version}});
  resp->Send(JsonReply(201, FunctionConfigurationJson(out), rid));
}

void ControlServer::Impl::ListVersions(const std::string& name, const HttpRequest& req, const Responder& resp,
                                       const std::string& rid) {
  auto query = ParseQuery(req.query);
  int max_items = 50;
  if (auto it = query.find("MaxItems"); it != query.end()) {
    auto v = ParseInt(it->second);
    if (!v || *v < 1 || *v > 10000) {
      throw ApiException(InvalidParameterValue("MaxItems must be an integer between 1 and 10000"));
    }
    max_items = static_cast<int>(*v);
  }
  Result<FunctionPage> page = store_->ListVersions(name, query.count("Marker") ? query["Marker"] : "", max_items);
  if (!page.ok() && page.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
  }
  FunctionPage p = ValueOrThrow(std::move(page));
  json versions = json::array();
  for (const FunctionRecord& f : p.functions) {
    json v = FunctionConfigurationJson(f);
    if (f.version == "$LATEST") v["FunctionArn"] = f.arn + ":$LATEST";  // as Lambda lists it
    versions.push_back(std::move(v));
  }
  json body = {{"Versions", std::move(versions)}};
  if (!p.next_marker.empty()) body["NextMarker"] = p.next_marker;
  resp->Send(JsonReply(200, body, rid));
}

void ControlServer::Impl::Aliases(const Route& route, const std::string& name, const HttpRequest& req,
                                  const Responder& resp, const std::string& rid) {
  auto alias_missing = [&](const std::string& alias) {
    return ApiException(ResourceNotFound("Cannot find alias arn: " + QualifiedArn(opt.api, name, alias)));
  };
  // kNotFound from the store: the function, the alias or a version the alias would route to is
  // missing. Which one is decided by looking, never by the store's message: the function first;
  // then, when the store got as far as checking the alias's versions (`targets`: the alias as it
  // would have been written), the first of them that does not exist, in the store's order;
  // otherwise the alias itself.
  auto rethrow = [&](const Status& st, const std::string& alias, const AliasRecord* targets) {
    if (st.code() == Code::kNotFound) {
      if (!store_->GetFunction(name).ok()) {
        throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
      }
      if (targets == nullptr) throw alias_missing(alias);
      auto missing = [&](const std::string& version) { return !store_->GetFunctionVersion(name, version).ok(); };
      std::vector<std::string> versions = {targets->function_version};
      for (const auto& [version, weight] : targets->additional_weights) versions.push_back(version);
      for (const std::string& version : versions) {
        if (missing(version)) {
          throw ApiException(ResourceNotFound("Function not found: " + QualifiedArn(opt.api, name, version)));
        }
      }
    }
    if (st.code() == Code::kAlreadyExists) {
      throw ApiException(ResourceConflict("Alias already exists: " + QualifiedArn(opt.api, name, alias)));
    }
    ThrowIfError(st);
  };
  switch (route.op) {
    case Operation::kCreateAlias: {
      AliasInput in = ParseAlias(ParseJsonObject(req.body), true);
      AliasRecord a;
      a.function_name = name;
      a.name = *in.name;
      a.function_version = *in.function_version;
      a.description = in.description.value_or("");
      if (in.weights) a.additional_weights = *in.weights;
      Result<AliasRecord> created = store_->CreateAlias(a);
      if (!created.ok()) rethrow(created.status(), a.name, &a);
      log::Info("alias_created", {{"function", name}, {"alias", a.name}, {"version", a.function_version}});
      // API Gateway integrations name functions by qualified ARN: the gateway's table follows.
      PushRoutes();
      resp->Send(JsonReply(201, AliasJson(opt.api, *created), rid));
      return;
    }
    case Operation::kGetAlias: {
      Result<AliasRecord> a = store_->GetAlias(name, route.sub);
      if (!a.ok()) rethrow(a.status(), route.sub, nullptr);
      resp->Send(JsonReply(200, AliasJson(opt.api, *a), rid));
      return;
    }
    case Operation::kUpdateAlias: {
      AliasInput in = ParseAlias(ParseJsonObject(req.body), false);
      bool precondition_failed = false;
      std::optional<AliasRecord> proposed;  // set once the store found the alias
      Result<AliasRecord> a = store_->UpdateAlias(name, route.sub, [&](AliasRecord& r) -> Status {
        if (in.revision_id && *in.revision_id != r.revision_id) {
          precondition_failed = true;
          return Status::Invalid("revision mismatch");
        }
        if (in.function_version) r.function_version = *in.function_version;
        if (in.description) r.description = *in.description;
        if (in.weights) r.additional_weights = *in.weights;
        proposed = r;
        return Status::Ok();
      });
      if (precondition_failed) {
        throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call "
                                              "the GetFunction/GetAlias API to retrieve the latest Revision Id"));
      }
      if (!a.ok()) rethrow(a.status(), route.sub, proposed ? &*proposed : nullptr);
      PushRoutes();
      resp->Send(JsonReply(200, AliasJson(opt.api, *a), rid));
      return;
    }
    case Operation::kDeleteAlias: {
      Status st = store_->DeleteAlias(name, route.sub);
      if (!st.ok()) rethrow(st, route.sub, nullptr);
      PushRoutes();
      resp->Send(EmptyReply(204, rid));
      return;
    }
    case Operation::kListAliases: {
      auto query = ParseQuery(req.query);
      Result<std::vector<AliasRecord>> list =
          store_->ListAliases(name, query.count("FunctionVersion") ? query["FunctionVersion"] : "");
      if (!list.ok()) rethrow(list.status(), "", nullptr);
      json aliases = json::array();
      for (const AliasRecord& a : *list) aliases.push_back(AliasJson(opt.api, a));
      resp->Send(JsonReply(200, {{"Aliases", std::move(aliases)}}, rid));
      return;
    }
    default:
      throw ApiException(UnknownOperation("unknown alias operation"));
  }
}

void ControlServer::Impl::Policy(const Route& route, const FunctionRef& ref, const HttpRequest& req,
                                 const Responder& resp, const std::string& rid) {
  // The qualifier scopes the policy ("" = the function itself); it must exist.
  const std::string qualifier = ref.qualifier == "$LATEST" ? "" : ref.qualifier;
  FunctionRecord latest = GetOrThrow(ref.name);
  if (!qualifier.empty()) (void)ResolveOrThrow(ref, false);
  const std::string resource = QualifiedArn(opt.api, ref.name, qualifier);
  auto nothing = []() { return ApiException(ResourceNotFound("The resource you requested does not exist.")); };
  switch (route.op) {
    case Operation::kAddPermission: {
      PermissionInput in = ParseAddPermission(opt.api, resource, ParseJsonObject(req.body));
      if (in.revision_id && *in.revision_id != latest.revision_id) {
        throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call "
                                              "the GetFunction/GetAlias API to retrieve the latest Revision Id"));
      }
      Status st = store_->AddPermission(PermissionRecord{ref.name, qualifier, in.sid, in.statement});
      if (st.code() == Code::kAlreadyExists) throw ApiException(ResourceConflict(st.message()));
      ThrowIfError(st);
      log::Info("permission_added", {{"function", ref.name}, {"qualifier", qualifier}, {"sid", in.sid}});
      resp->Send(JsonReply(201, {{"Statement", DumpJson(in.statement)}}, rid));
      return;
    }
    case Operation::kRemovePermission: {
      Status st = store_->RemovePermission(ref.name, qualifier, route.sub);
      if (st.code() == Code::kNotFound) throw nothing();
      ThrowIfError(st);
      resp->Send(EmptyReply(204, rid));
      return;
    }
    case Operation::kGetPolicy: {
      std::vector<PermissionRecord> statements = ValueOrThrow(store_->ListPermissions(ref.name, qualifier));
      if (statements.empty()) throw nothing();
      json list = json::array();
      for (const PermissionRecord& p : statements) list.push_back(p.statement);
      json policy = {{"Version", "2012-10-17"}, {"Id", "default"}, {"Statement", std::move(list)}};
      resp->Send(JsonReply(200, {{"Policy", DumpJson(policy)}, {"RevisionId", latest.revision_id}}, rid));
      return;
    }
    default:
      throw ApiException(UnknownOperation("unknown policy operation"));
  }
}

void ControlServer::Impl::Concurrency(Operation op, const std::string& name, const HttpRequest& req,
                                      const Responder& resp, const std::string& rid) {
  FunctionRecord f = GetOrThrow(name);
  switch (op) {
    case Operation::kPutFunctionConcurrency: {
      const int64_t others = ValueOrThrow(store_->TotalReservedConcurrency(name));
      const int64_t room = std::max<int64_t>(0, int64_t{kAccountConcurrency} - kMinUnreserved - others);
      uint32_t v = ParseReservedConcurrency(ParseJsonObject(req.body), static_cast<uint32_t>(room));
      ThrowIfError(store_->SetReservedConcurrency(name, v));
      log::Info("reserved_concurrency_set", {{"function", name}, {"reserved", v}});
      // Gateways carry each function's config in their route table: the new limit goes with it.
      PushRoutes();
      resp->Send(JsonReply(200, {{"ReservedConcurrentExecutions", v}}, rid));
      return;
    }
    case Operation::kGetFunctionConcurrency: {
      json body = json::object();
      if (f.reserved_concurrency) body["ReservedConcurrentExecutions"] = *f.reserved_concurrency;
      resp->Send(JsonReply(200, body, rid));
      return;
    }
    case Operation::kDeleteFunctionConcurrency: {
      ThrowIfError(store_->SetReservedConcurrency(name, std::nullopt));
      if (f.reserved_concurrency) {
        log::Info("reserved_concurrency_deleted", {{"function", name}});
        PushRoutes();
      }
      resp->Send(EmptyReply(204, rid));
      return;
    }
    default:
      throw ApiException(UnknownOperation("unknown concurrency operation"));
  }
}

void ControlServer::Impl::Tags(const Route& route, const HttpRequest& req, const Responder& resp,
                               const std::string& rid) {
  const std::string name = FunctionNameFromTagArn(route.sub);
  auto missing = [&]() { return ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name))); };
  switch (route.op) {
    case Operation::kTagResource: {
      auto tags = ParseTags(ParseJsonObject(req.body));
      Status st = store_->UpdateTags(name, [&](std::map<std::string, std::string>& t) {
        for (auto& [k, v] : tags) t[k] = v;
      });
      if (st.code() == Code::kNotFound) throw missing();
      ThrowIfError(st);
      resp->Send(EmptyReply(204, rid));
      return;
    }
    case Operation::kUntagResource: {
      std::vector<std::string> keys = QueryValues(req.query, "tagKeys");
      Status st = store_->UpdateTags(name, [&](std::map<std::string, std::string>& t) {
        for (const auto& k : keys) t.erase(k);
      });
      if (st.code() == Code::kNotFound) throw missing();
      ThrowIfError(st);
      resp->Send(EmptyReply(204, rid));
      return;
    }
    case Operation::kListTags: {
      Result<FunctionRecord> f = store_->GetFunction(name);
      if (!f.ok() && f.status().code() == Code::kNotFound) throw missing();
      FunctionRecord rec = ValueOrThrow(std::move(f));
      resp->Send(JsonReply(200, {{"Tags", rec.tags}}, rid));
      return;
    }
    default:
      throw ApiException(UnknownOperation("unknown tag operation"));
  }
}

void ControlServer::Impl::AccountSettings(const Responder& resp, const std::string& rid) {
  int64_t count = 0, code_size = 0;
  std::string marker;
  // Bounded by the number of functions: each page advances the marker.
  for (int page = 0; page < 100000; ++page) {
    FunctionPage p = ValueOrThrow(store_->ListFunctions(marker, 10000));
    for (const FunctionRecord& f : p.functions) {
      ++count;
      code_size += f.code_size;
    }
    if (p.next_marker.empty()) break;
    marker = p.next_marker;
  }
  const int64_t reserved = ValueOrThrow(store_->TotalReservedConcurrency(""));
  json body = {
      {"AccountLimit",
       {{"TotalCodeSize", int64_t{80} * 1024 * 1024 * 1024},
        {"CodeSizeUnzipped", ZipLimits{}.max_unzipped_bytes},
        {"CodeSizeZipped", ZipLimits{}.max_zip_bytes},
        {"ConcurrentExecutions", kAccountConcurrency},
        {"UnreservedConcurrentExecutions", int64_t{kAccountConcurrency} - reserved}}},
      {"AccountUsage", {{"TotalCodeSize", code_size}, {"FunctionCount", count}}},
  };
  resp->Send(JsonReply(200, body, rid));
}

// ---------------------------------------------------------------------------------------------
// Native API: logs

void ControlServer::Impl::GetLogs(const std::string& raw_name, const HttpRequest& req, const Responder& resp,
                                  const std::string& rid) {
  const std::string name = ResolveFunctionName(opt.api, raw_name, "");
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
  LogPage page = ValueOrThrow(store_->QueryLogs(q));
  if (page.events.empty() && q.next_token.empty()) {
    // An unknown name should say so rather than look like a quiet function; logs of a deleted
    // function stay readable while they are kept.
    Result<FunctionRecord> f = store_->GetFunction(name);
    if (!f.ok() && f.status().code() == Code::kNotFound && ValueOrThrow(store_->CountLogs(name)) == 0) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(opt.api, name)));
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

// ---------------------------------------------------------------------------------------------
// control.sock: routes and logs

bool ControlServer::Impl::HasUrl(const std::string& name) {
  Result<FunctionUrlConfigRecord> c = store_->GetFunctionUrlConfig(name);
  if (c.ok()) return true;
  // API Gateway routes carry the function's config too: a code or configuration change of a
  // function an API routes to must reach the gateway as well.
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
  s->shutting_down = true;
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
  if (s->gc_timer) {
    uv_close(reinterpret_cast<uv_handle_t*>(s->gc_timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    s->gc_timer = nullptr;
  }
  // Closing a connection may run its close handler, which erases it from `peers`.
  std::vector<std::shared_ptr<proto::FrameConnection>> conns;
  for (auto& [ptr, peer] : s->peers) conns.push_back(peer.conn);
  for (auto& c : conns) c->Close();
}

}  // namespace geysir::control
