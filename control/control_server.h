// ControlServer: everything geysir-control does, as one object a thin main() (and tests) can
// start on a libuv loop. It is the host of control's services (control/service.h), and owns
// none of their operations:
//
//   - opens the store (SQLite, WAL) and the code store under the data directory, creates the
//     admin key pair on first start and writes <data>/credentials (mode 0600);
//   - builds the services (control/services/registry.h) and starts them in that order;
//   - listens on the API port (net::HttpServer), picks each request's service (the one named in
//     its SigV4 credential scope; Lambda for Lambda's paths, the native API and the rest),
//     authenticates it with SigV4 (control/auth.h) unless the service answered it before, and
//     hands it over;
//   - serves control.sock (proto::FrameServer): pushes the route table (function URLs and what
//     the services add) to every gateway subscriber on subscribe and after each change that
//     affects routes, appends the scheduler's "logs" frames to the store, and passes other
//     frames to the services;
//   - keeps the connection to the scheduler (proto::InvokeClient on scheduler.sock), through
//     which Lambda invokes.
//
// Thread safety: every public method runs on the loop thread, and so does SQLite on the store's
// connection. Three kinds of work run elsewhere, each behind its own narrow seam: a deploy's
// decoding and unpacking (Lambda's deploy worker, a LoopWorker; touches its own request and the code store's
// Put, serialised by a mutex), the async queue's group committer (a second SQLite connection
// of its own, control/triggers/async_queue.h), and the domains service's ACME conversations
// (control/services/domains.cpp; it talks to the loop only through posted closures).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "control/services/lambda/lambda_api.h"
#include "control/store.h"
#include "base/status.h"

namespace geysir::control {

struct ControlOptions {
  std::string data_dir;
  int listen_fd = -1;                   // an already-bound TCP socket (from the supervisor), or
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9000;          // 0 picks a free port (tests)
  std::string socket_path;              // control.sock; "" = <data>/run/control.sock
  std::string scheduler_socket;         // "" = <data>/run/scheduler.sock
  ApiContext api;                       // region, account id, function URL template
  size_t max_body_bytes = 75u * 1024 * 1024;  // a 50 MB zip is ~67 MB of base64 inside JSON
  // Open connections one client address may hold on the API port (more: 429 and closed), so one
  // client cannot take all of them; SDKs pool ~10, Terraform runs 10 operations at once.
  uint32_t max_connections_per_client = 256;
  std::function<int64_t()> now_ms;      // wall clock (ms); injected by tests
  // Code garbage collection: every interval, unpacked code that no function references is
  // noted; once it has stayed unreferenced for `code_gc_grace_ms` it is removed. The grace
  // covers invocations still running from a template of the old code (up to 900 s) and
  // gateways whose route table is a moment behind.
  uint64_t code_gc_interval_ms = 60'000;
  int64_t code_gc_grace_ms = 20 * 60'000;
  // The scheduler's per-request isolation mode ("fork" or "restore"), as the supervisor resolved
  // it; control only reports it (GET /geysir/v1/health) so operators and tests can see which
  // mode serves their functions.
  std::string isolation = "fork";
};

class ControlServer {
 public:
  ControlServer(uv_loop_t* loop, ControlOptions options);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Opens the stores, ensures the admin key and credentials file, starts listening.
  Status Start();

  uint16_t port() const;
  const std::string& credentials_path() const;
  const AccessKey& admin_key() const;
  Store& store();
  uint64_t route_generation() const;

  // Stops accepting, lets in-flight requests finish, closes every handle, then calls done.
  void Shutdown(std::function<void()> done);
  // Closes everything at once (tests); the loop must run once more for close callbacks.
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace geysir::control
