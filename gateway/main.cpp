// geysir-gateway: flags, privilege drop, signals; everything else is in geysir_gateway.
//
//   geysir-gateway (--listen-fd N | --listen HOST:PORT) --scheduler-socket PATH
//                  --control-socket PATH [--base-domain localhost] [--user geysir]
//                  [--tls-listen-fd N | --tls-listen HOST:PORT] [--tls-cert PEM --tls-key PEM]
//                  [--https-redirect] [--hsts-max-age SECONDS] [--https-public-port N]
//                  [--max-connections-per-client N]
//
// Exit status: 0 after a graceful SIGTERM/SIGINT (or --help), 2 on bad flags, 1 on a start-up failure.
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "gateway/gateway.h"
#include "gateway/privileges.h"
#include "base/flags.h"
#include "base/log.h"

namespace {

struct GatewayFlags {
  int listen_fd = -1;
  std::string listen;  // HOST:PORT
  std::string scheduler_socket;
  std::string control_socket;
  std::string base_domain = "localhost";
  std::string user = "geysir";
  int tls_listen_fd = -1;
  std::string tls_listen;  // HOST:PORT
  geysir::gateway::TlsEdgeOptions tls;  // https_port: the public HTTPS port for redirects
  uint32_t max_connections_per_client = 0;  // 0: GatewayHttpLimits()' default
};

// A number in [min, max] for flags whose zero means nothing useful (a port, a count).
std::function<geysir::Status(const std::string&)> InRange(uint64_t min, uint64_t max, std::function<void(uint64_t)> set) {
  return [min, max, set = std::move(set)](const std::string& v) -> geysir::Status {
    uint64_t n = 0;
    if (!geysir::Flags::ParseUnsigned(v, max, &n).ok() || n < min) {
      return geysir::Status::Invalid("wants a number from " + std::to_string(min) + " to " + std::to_string(max));
    }
    set(n);
    return geysir::Status::Ok();
  };
}

// False (after printing why, or the usage) when the process should exit with status 2; sets
// *help when --help was asked for (exit status 0).
bool ParseFlags(int argc, char** argv, GatewayFlags& f, bool* help) {
  geysir::Flags flags("geysir-gateway");
  flags.Unsigned("--listen-fd", &f.listen_fd, 65535, "N", "serve HTTP on this inherited listening socket");
  flags.String("--listen", &f.listen, "HOST:PORT", "serve HTTP on this address (instead of --listen-fd)");
  flags.String("--scheduler-socket", &f.scheduler_socket, "PATH", "the scheduler's Unix socket (required)");
  flags.String("--control-socket", &f.control_socket, "PATH", "control's Unix socket (required)");
  flags.String("--base-domain", &f.base_domain, "DOMAIN", "function URLs are <id>.lambda-url.DOMAIN (default localhost)");
  flags.String("--user", &f.user, "USER", "the unprivileged user to run as after binding (default geysir)");
  flags.Unsigned("--tls-listen-fd", &f.tls_listen_fd, 65535, "N", "serve HTTPS on this inherited listening socket");
  flags.String("--tls-listen", &f.tls_listen, "HOST:PORT", "serve HTTPS on this address");
  flags.String("--tls-cert", &f.tls.cert_file, "PEM", "the default certificate chain");
  flags.String("--tls-key", &f.tls.key_file, "PEM", "the default certificate's key");
  flags.Bool("--https-redirect", &f.tls.redirect_http, "answer plain HTTP with a redirect to HTTPS");
  flags.Unsigned("--hsts-max-age", &f.tls.hsts_max_age_s, 100'000'000, "SECONDS", "send Strict-Transport-Security");
  flags.Custom("--https-public-port", "N", "the public HTTPS port redirects name",
               InRange(1, 65535, [&f](uint64_t n) { f.tls.https_port = static_cast<uint16_t>(n); }));
  flags.Custom("--max-connections-per-client", "N", "open connections one client address may hold (default 256)",
               InRange(1, 1'000'000, [&f](uint64_t n) { f.max_connections_per_client = static_cast<uint32_t>(n); }));
  geysir::Status st = flags.Parse(argc, argv);
  if (!st.ok() || flags.help_requested()) {
    if (!st.ok()) fprintf(stderr, "%s\n", st.message().c_str());
    fputs(flags.Usage().c_str(), stderr);
    *help = st.ok();
    return false;
  }
  if ((f.listen_fd < 0) == f.listen.empty()) {
    fprintf(stderr, "geysir-gateway: give exactly one of --listen-fd and --listen\n");
    return false;
  }
  if (f.tls_listen_fd >= 0 && !f.tls_listen.empty()) {
    fprintf(stderr, "geysir-gateway: give at most one of --tls-listen-fd and --tls-listen\n");
    return false;
  }
  if (f.scheduler_socket.empty() || f.control_socket.empty()) {
    fprintf(stderr, "geysir-gateway: --scheduler-socket and --control-socket are required\n");
    return false;
  }
  return true;
}

struct SignalState {
  geysir::gateway::Gateway* gateway = nullptr;
  uv_signal_t term{};
  uv_signal_t intr{};
  bool stopping = false;
};

void OnStopSignal(uv_signal_t* handle, int signum) {
  auto* s = static_cast<SignalState*>(handle->data);
  if (s->stopping) return;
  s->stopping = true;
  geysir::log::Info("draining", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
  s->gateway->Shutdown([s] {
    // With the server and clients closed, the signal handles are all that keep the loop alive.
    uv_close(reinterpret_cast<uv_handle_t*>(&s->term), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->intr), nullptr);
  });
}

}  // namespace

int main(int argc, char** argv) {
  GatewayFlags flags;
  bool help = false;
  if (!ParseFlags(argc, argv, flags, &help)) return help ? 0 : 2;
  geysir::log::Init("gateway");
  // A client that vanishes mid-write must cost us an EPIPE, not the process.
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t* loop = uv_default_loop();
  geysir::gateway::GatewayOptions options;
  options.base_domain = flags.base_domain;
  options.scheduler_socket = flags.scheduler_socket;
  options.control_socket = flags.control_socket;
  options.tls = flags.tls;
  if (flags.max_connections_per_client > 0) options.limits.max_connections_per_client = flags.max_connections_per_client;
  geysir::gateway::Gateway gateway(loop, options);

  // "HOST:PORT" -> host, port; false (and a message) when malformed.
  auto split_listen = [](const std::string& flag, const std::string& value, std::string* host, uint16_t* port) {
    geysir::Status parsed = geysir::Flags::ParseHostPort(value, host, port);
    if (!parsed.ok()) fprintf(stderr, "geysir-gateway: %s %s\n", flag.c_str(), parsed.message().c_str());
    return parsed.ok();
  };
  geysir::Status st;
  if (flags.listen_fd >= 0) {
    st = gateway.ListenFd(flags.listen_fd);
  } else {
    std::string host;
    uint16_t port = 0;
    if (!split_listen("--listen", flags.listen, &host, &port)) return 2;
    st = gateway.Listen(host, port);
  }
  if (!st.ok()) {
    geysir::log::Error("listen_failed", {{"error", st.ToString()}});
    return 1;
  }
  if (flags.tls_listen_fd >= 0) {
    st = gateway.ListenTlsFd(flags.tls_listen_fd);
  } else if (!flags.tls_listen.empty()) {
    std::string host;
    uint16_t port = 0;
    if (!split_listen("--tls-listen", flags.tls_listen, &host, &port)) return 2;
    st = gateway.ListenTls(host, port);
  }
  if (!st.ok()) {
    geysir::log::Error("tls_listen_failed", {{"error", st.ToString()}});
    return 1;
  }

  // The socket is bound; nothing has been read from it. Drop root before the loop runs.
  auto dropped = geysir::gateway::DropPrivileges(flags.user);
  if (!dropped.ok()) {
    geysir::log::Error("drop_privileges_failed", {{"error", dropped.status().ToString()}});
    return 1;
  }
  if (dropped->dropped) {
    geysir::log::Info("privileges_dropped", {{"user", dropped->user}, {"uid", dropped->uid}, {"gid", dropped->gid},
                                             {"setuid_0", "fails"}});
  } else {
    geysir::log::Info("privileges_unchanged", {{"reason", "not running as root"}, {"uid", dropped->uid}});
  }

  SignalState signals;
  signals.gateway = &gateway;
  uv_signal_init(loop, &signals.term);
  uv_signal_init(loop, &signals.intr);
  signals.term.data = &signals;
  signals.intr.data = &signals;
  uv_signal_start(&signals.term, OnStopSignal, SIGTERM);
  uv_signal_start(&signals.intr, OnStopSignal, SIGINT);

  gateway.Start();
  geysir::log::Info("listening", {{"port", gateway.port()}, {"tls_port", gateway.tls_port()},
                                  {"base_domain", flags.base_domain}});
  uv_run(loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop);
  geysir::log::Info("stopped", {{"loop_closed", rc == 0}});
  return 0;
}
