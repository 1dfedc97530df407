// Service: one AWS service (S3, IAM, STS, EventBridge, CloudWatch Logs, CloudFormation, API
// Gateway, ...) that control's single endpoint speaks, and ServiceHost: what control offers
// every service.
//
// Dispatch (control_server.cpp): the service named in the credential scope
// (Credential=AKID/DATE/REGION/<service>/aws4_request) is the Service whose signing_name()
// matches; Lambda (control/services/lambda/lambda.h) takes its own paths, Geysir's native
// /geysir/ API where no other service claims a path, and requests signed for a service nobody
// registered (it answers them UnknownOperation in its JSON shape). The service may answer a
// request before authentication (HandleBeforeAuth); every other request is authenticated with
// SigV4 first.
//
// Each service owns:
//   - its protocol: how it reads a request (rest-xml, query, JSON 1.0/1.1 with X-Amz-Target,
//     rest-json) and how it writes an error (ErrorResponse), so botocore parses both;
//   - its tables: Start() calls store.db().MigrateTrack("<track>", steps) (control/db.h);
//   - its timers, if any (created on host.loop() in Start, closed in Shutdown).
// Errors: a handler returns a Status (docs/errors.md). A non-OK Status means the handler has
// sent nothing; the host answers it, once, with ErrorResponse(ErrorFor(status)): the Status's
// code and AWS type (Status::WithAwsType, AwsStatus) say what the client gets, the code giving
// the HTTP status unless the service lists the type in error_statuses(). An OK Status means the
// handler has answered, or keeps `resp` and answers later exactly once (an asynchronous handler
// turns its own later failure into a response with ErrorResponse(ErrorFor(status))). Handlers
// throw nothing of their own; what escapes from the SQLite edge (DbError) or a JSON value of the
// wrong type is caught by the host and answered as an internal error (500).
//
// Adding a service: implement it in control/services/<name>/ (or one file pair
// control/services/<name>.{h,cpp} when it is small) and construct it in MakeServices()
// (control/services/registry.h). What a service reads of another service it takes as a typed
// interface in its constructor (S3 as an ObjectSource, the domain registry as a
// DomainRegistry&, ...), so it cannot be built, nor started, before what it reads.
//
// Thread safety: everything here runs on control's loop thread.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/aws_error.h"
#include "net/http_server.h"
#include "proto/invoke_client.h"
#include "proto/messages.h"
#include "base/status.h"

namespace geysir::control {

using Responder = std::shared_ptr<net::HttpResponder>;

class Store;
class CodeStore;
struct ApiContext;

// Facts about one authenticated request.
struct RequestInfo {
  std::string request_id;     // x-amzn-RequestId / x-amz-request-id of the reply
  std::string access_key_id;  // the key that signed it
  std::string region;         // from the credential scope
  std::string service;        // the signing name from the credential scope
};

// One invocation a service asks for (EventBridge targets, CloudFormation custom resources,
// the async queue).
struct InvokeCall {
  std::string function;       // a name, partial or full ARN, optionally with ":qualifier"
  std::string qualifier;      // version or alias; "" = $LATEST (or what `function` names)
  std::string payload = "{}"; // the JSON event
  std::string request_id;     // "" = a fresh one
  proto::InvokeSource source = proto::InvokeSource::kAsync;
  std::string client_context_b64;
  bool want_log_tail = false;
};

class ServiceHost {
 public:
  virtual ~ServiceHost() = default;
  virtual uv_loop_t* loop() = 0;
  virtual Store& store() = 0;
  virtual CodeStore& code_store() = 0;
  virtual const ApiContext& api() const = 0;
  virtual const std::string& data_dir() const = 0;
  virtual int64_t NowMs() const = 0;
  // The connection to the scheduler (scheduler.sock), which control keeps.
  virtual proto::InvokeClient& scheduler() = 0;
  // Runs a function through the scheduler. kNotFound (synchronously, `done` not called) when
  // the function does not exist; kUnavailable when the scheduler is not connected. Otherwise
  // `done` runs exactly once with the scheduler's result.
  virtual Status InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) = 0;
  // What an invocation of `function` (name, partial or full ARN, optionally ":qualifier") would
  // run, as the scheduler gets it: $LATEST, a published version's frozen configuration, or an
  // alias's primary version (its routing weights apply per invocation, not here). kNotFound
  // with Lambda's message when the function, version or alias does not exist.
  virtual Result<proto::FunctionConfig> ResolveFunction(std::string_view function) = 0;
  // Something that feeds the gateway's route table changed: rebuild and push it.
  virtual void RoutesChanged() = 0;
  // Whether the gateway's route table routes to `function` (its function URL, or an API Gateway
  // route): then a change of the function's configuration must be pushed.
  virtual bool GatewayRoutesTo(const std::string& function) = 0;
};

class Service {
 public:
  virtual ~Service() = default;
  // The service name in the SigV4 credential scope: "s3", "iam", "sts", "events", "logs",
  // "monitoring", "cloudformation", "apigateway", ...
  virtual std::string_view signing_name() const = 0;
  // Creates tables (Db::MigrateTrack) and timers. Called once, before the port is served.
  virtual Status Start() { return Status::Ok(); }
  // Called for each request of this service before it is authenticated: true when the service
  // answered it (a request that carries its own authorisation, or needs none); an error for a
  // request that names no operation of the service at all, which the host answers as Handle's.
  virtual Result<bool> HandleBeforeAuth(net::HttpRequest& /*req*/, const Responder& /*resp*/,
                                        const std::string& /*request_id*/) {
    return false;
  }
  // Handles one authenticated request. OK: a synchronous handler has sent; an asynchronous one
  // keeps `resp` and sends later. Not OK: nothing was sent, and the host answers the error.
  virtual Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) = 0;
  // `error` in this service's wire format (also used for authentication failures of requests
  // signed for this service).
  virtual net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const = 0;
  // This service's error types whose HTTP status is not the one their Status code gives.
  virtual std::span<const ErrorStatus> error_statuses() const { return {}; }
  // A failed handler's Status as this service answers it.
  AwsError ErrorFor(const Status& status) const { return FromStatus(status, error_statuses()); }
  // Adds this service's routes (API Gateway stages, ...) to the gateway's table.
  virtual void ContributeRoutes(proto::RouteTable& /*table*/) {}
  // Frames sent to every subscribed gateway right after each routes frame (on subscribe and on
  // every change): state the gateway needs besides routes (TLS certificates, ACME answers).
  virtual void ContributeGatewayFrames(std::vector<proto::Frame>& /*out*/) {}
  // A control.sock frame whose type control itself does not handle (a gateway's acknowledgement).
  virtual void OnPeerFrame(const proto::Frame& /*frame*/) {}
  // Native API paths (under /geysir/) this service serves instead of Lambda, which serves the
  // rest of the native API; they are authenticated with SigV4 first like every other request.
  virtual bool HandlesNativePath(std::string_view /*path*/) const { return false; }
  // Stops timers and closes handles; the loop runs on afterwards for close callbacks.
  virtual void Shutdown() {}
};

}  // namespace geysir::control
