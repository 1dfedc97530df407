// geysir-gateway: flags, privilege drop, signals; everything else is in geysir_gateway.
//
//   geysir-gateway (--listen-fd N | --listen HOST:PORT) --scheduler-socket PATH
//                  --control-socket PATH [--base-domain localhost] [--user geysir]
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
#include "proto/log.h"

namespace {

struct Flags {
  int listen_fd = -1;
  std::string listen;  // HOST:PORT
  std::string scheduler_socket;
  std::string control_socket;
  std::string base_domain = "localhost";
  std::string user = "geysir";
};

void Usage() {
  fprintf(stderr,
          "usage: geysir-gateway (--listen-fd N | --listen HOST:PORT) --scheduler-socket PATH\n"
          "                      --control-socket PATH [--base-domain localhost] [--user geysir]\n");
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
    } else {
      fprintf(stderr, "geysir-gateway: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if ((f.listen_fd < 0) == f.listen.empty()) {
    fprintf(stderr, "geysir-gateway: give exactly one of --listen-fd and --listen\n");
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
  geysir::gateway::Gateway gateway(loop, options);

  geysir::Status st;
  if (flags.listen_fd >= 0) {
    st = gateway.ListenFd(flags.listen_fd);
  } else {
    auto colon = flags.listen.rfind(':');
    if (colon == std::string::npos) {
      fprintf(stderr, "geysir-gateway: --listen wants HOST:PORT\n");
      return 2;
    }
    std::string host = flags.listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    long port = strtol(flags.listen.c_str() + colon + 1, nullptr, 10);
    if (port < 0 || port > 65535) {
      fprintf(stderr, "geysir-gateway: bad port in --listen\n");
      return 2;
    }
    st = gateway.Listen(host, static_cast<uint16_t>(port));
  }
  if (!st.ok()) {
    geysir::log::Error("listen_failed", {{"error", st.ToString()}});
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
  geysir::log::Info("listening", {{"port", gateway.port()}, {"base_domain", flags.base_domain}});
  uv_run(loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(loop);
  geysir::log::Info("stopped", {{"loop_closed", rc == 0}});
  return 0;
}
