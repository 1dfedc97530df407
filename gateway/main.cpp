// geysir-gateway: flags, privilege drop, signals; everything else is in geysir_gateway.
//
//   geysir-gateway (--listen-fd N | --listen HOST:PORT) --scheduler-socket PATH
//                  --control-socket PATH [--base-domain localhost] [--user geysir]
//                  [--tls-listen-fd N | --tls-listen HOST:PORT] [--tls-cert PEM --tls-key PEM]
//                  [--https-redirect] [--hsts-max-age SECONDS] [--https-public-port N]
//                  [--max-connections-per-client N]
//
// Exit status: 0 after a graceful SIGTERM/SIGINT, 2 on bad flags, 1 on a start-up failure.
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gateway/gateway.h"
#include "gateway/privileges.h"
#include "base/log.h"

namespace {

struct Flags {
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

void Usage() {
  fprintf(stderr,
          "usage: geysir-gateway (--listen-fd N | --listen HOST:PORT) --scheduler-socket PATH\n"
          "                      --control-socket PATH [--base-domain localhost] [--user geysir]\n"
          "                      [--tls-listen-fd N | --tls-listen HOST:PORT] [--tls-cert PEM --tls-key PEM]\n"
          "                      [--https-redirect] [--hsts-max-age SECONDS] [--https-public-port N]\n"
          "                      [--max-connections-per-client N]\n");
}

bool ParseFlags(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a == "-h" || a == "--help") {
      return false;
    } else if (a == "--https-redirect") {
      f.tls.redirect_http = true;
      continue;
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      fprintf(stderr, "geysir-gateway: %s needs a value\n", a.c_str());
      return false;
    }
    if (a == "--listen-fd") {
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 0 || n > 65535) {
        fprintf(stderr, "geysir-gateway: --listen-fd wants a file descriptor number\n");
        return false;
      }
      f.listen_fd = static_cast<int>(n);
    } else if (a == "--listen") {
      f.listen = v;
    } else if (a == "--scheduler-socket") {
      f.scheduler_socket = v;
    } else if (a == "--control-socket") {
      f.control_socket = v;
    } else if (a == "--base-domain") {
      f.base_domain = v;
    } else if (a == "--user") {
      f.user = v;
    } else if (a == "--tls-listen-fd") {
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 0 || n > 65535) {
        fprintf(stderr, "geysir-gateway: --tls-listen-fd wants a file descriptor number\n");
        return false;
      }
      f.tls_listen_fd = static_cast<int>(n);
    } else if (a == "--tls-listen") {
      f.tls_listen = v;
    } else if (a == "--tls-cert") {
      f.tls.cert_file = v;
    } else if (a == "--tls-key") {
      f.tls.key_file = v;
    } else if (a == "--hsts-max-age") {
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 0 || n > 100'000'000) {
        fprintf(stderr, "geysir-gateway: --hsts-max-age wants seconds\n");
        return false;
      }
      f.tls.hsts_max_age_s = static_cast<uint32_t>(n);
    } else if (a == "--max-connections-per-client") {
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > 1'000'000) {
        fprintf(stderr, "geysir-gateway: --max-connections-per-client wants a number from 1 to 1000000\n");
        return false;
      }
      f.max_connections_per_client = static_cast<uint32_t>(n);
    } else if (a == "--https-public-port") {
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n <= 0 || n > 65535) {
        fprintf(stderr, "geysir-gateway: --https-public-port wants a port\n");
        return false;
      }
      f.tls.https_port = static_cast<uint16_t>(n);
    } else {
      fprintf(stderr, "geysir-gateway: unknown flag %s\n", a.c_str());
      return false;
    }
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
  Flags flags;
  if (!ParseFlags(argc, argv, flags)) {
    Usage();
    return 2;
  }
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
    auto colon = value.rfind(':');
    if (colon == std::string::npos) {
      fprintf(stderr, "geysir-gateway: %s wants HOST:PORT\n", flag.c_str());
      return false;
    }
    *host = value.substr(0, colon);
    if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
    long p = strtol(value.c_str() + colon + 1, nullptr, 10);
    if (p < 0 || p > 65535) {
      fprintf(stderr, "geysir-gateway: bad port in %s\n", flag.c_str());
      return false;
    }
    *port = static_cast<uint16_t>(p);
    return true;
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
