// Gateway: the public HTTP edge. Serves function URLs by host name and /healthz, with
// net::HttpServer; keeps control's route table (proto::FrameClient to control.sock, re-subscribing
// after every reconnect); runs functions through proto::InvokeClient to scheduler.sock.
//
//   Host "<url_id>.lambda-url.<base>"  -> build the 2.0 event, invoke, map the result
//                                         (CORS preflights answered here when the URL has Cors)
//   Host "<api_id>.execute-api.<base>" -> API Gateway: stage + route (api_match.h), the 1.0
//                                         (REST) or 2.0 (HTTP API) event, invoke, map back
//   a custom domain (tls_edge.h)       -> its function URL, or the API mapping whose base path
//                                         the path starts with (stage forced, base path stripped)
//   any other host, GET|HEAD /healthz  -> 200 {"status":"ok","scheduler":bool,"control":bool,"routes":gen}
//   anything else                      -> 404 {"Message":...}
//   before control's first route table -> 503 with Retry-After for every host but /healthz: a
//                                         URL that exists must never get a definitive 404
//
// It never opens SQLite and never forks: everything it holds is a cache that control rebuilds.
// While control is down it keeps serving with the last table it received.
//
// Thread safety: one loop thread; every method is called on it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "gateway/routes.h"
#include "gateway/tls_edge.h"
#include "proto/frame_channel.h"
#include "net/http_server.h"
#include "proto/invoke_client.h"
#include "base/status.h"

namespace geysir::gateway {

// The edge's HTTP limits, chosen to match what AWS's front ends accept:
//   request line + headers  10 KiB  (API Gateway HTTP APIs' 10,240-byte limit)  -> 431
//   body                     6 MiB  (Lambda's synchronous invocation payload)    -> 413
//   headers must arrive within 10 s and the body within 30 s of them            -> 408
//   an idle keep-alive connection is closed after 60 s;
//   one client address holds at most 256 open connections (more are answered 429 and closed).
net::HttpLimits GatewayHttpLimits();

struct GatewayOptions {
  // A function URL call whose result has not come back by the function's timeout plus this
  // much is answered 504 by the gateway itself. The scheduler enforces function timeouts; this
  // is only the net under a wedged scheduler, so a client is never left waiting forever.
  uint32_t call_grace_ms = 30'000;
  std::string base_domain = "localhost";
  std::string scheduler_socket;   // run/scheduler.sock
  std::string control_socket;     // run/control.sock
  net::HttpLimits limits = GatewayHttpLimits();
  TlsEdgeOptions tls;             // HTTPS listener, operator certificate, redirect, HSTS
};

// Request ids: random (version 4) UUIDs from a generator seeded once, so making one costs no
// system call. They name a request in logs; they are not secrets.
class RequestIdGenerator {
 public:
  RequestIdGenerator();
  std::string Next();

 private:
  std::mt19937_64 rng_;
};

class Gateway {
 public:
  Gateway(uv_loop_t* loop, GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Sets up the listening socket (an inherited fd, or host:port; port 0 picks one). Serving
  // starts when the loop runs, so privileges can be dropped between Listen and uv_run.
  Status ListenFd(int fd);
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const;
  // The HTTPS listener (same routes as HTTP, TLS terminated here; certificates from control's
  // "tls" frames and the operator's PEM files). Optional.
  Status ListenTlsFd(int fd);
  Status ListenTls(const std::string& host, uint16_t port);
  uint16_t tls_port() const { return tls_port_; }

  // Connects to control and the scheduler; both reconnect on their own while peers restart.
  void Start();

  // Graceful: stop accepting, let in-flight requests finish, close the clients, then done().
  void Shutdown(std::function<void()> done);
  // Closes everything now; the loop must run once more for the close callbacks.
  void Close();

  const RouteIndex& routes() const { return routes_; }
  bool scheduler_connected() const;
  bool control_connected() const;

 private:
  void OnRequest(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder);
  bool ServeTlsEdge(net::HttpRequest& request, std::shared_ptr<net::HttpResponder>& responder);
  void ServeFunctionUrl(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder,
                        std::string url_id, std::string domain_name);
  // A request that came through a custom domain's API mapping: the mapping's stage, and the
  // path after its base path.
  struct ApiVia {
    std::string stage;
    std::string path;
  };
  void ServeApi(net::HttpRequest&& request, std::shared_ptr<net::HttpResponder> responder,
                std::string api_id, std::string domain_name, const ApiVia* via = nullptr);
  struct Call;
  void OnControlFrame(proto::Frame&& frame);
  void OnControlConnected();

  uv_loop_t* loop_;
  GatewayOptions options_;
  net::HttpServer http_;
  net::HttpServer https_;
  std::unique_ptr<TlsEdge> tls_;   // null only when the operator certificate failed to load
  Status tls_status_;
  uint16_t tls_port_ = 0;
  proto::InvokeClient invoke_;
  proto::FrameClient control_;
  RouteIndex routes_;
  RequestIdGenerator ids_;
  uint16_t port_ = 0;
  bool closed_ = false;
  // /healthz's body for the state it describes: load balancers poll it, and the state changes
  // only on a (re)connection or a new route table.
  struct Healthz {
    bool scheduler = false;
    bool control = false;
    uint64_t generation = 0;
    std::string body;  // empty: not built yet
  };
  Healthz healthz_;
};

}  // namespace geysir::gateway
