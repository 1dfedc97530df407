// geysir-control: parses flags, starts a ControlServer on a libuv loop, and shuts it down
// gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight requests, close, exit 0).
// Flags are documented in docs/architecture.md.
#include <uv.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "control/control_server.h"
#include "base/log.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: geysir-control --data-dir DIR (--listen-fd N | --listen HOST:PORT)\n"
               "         [--socket PATH] [--scheduler-socket PATH]\n"
               "         [--function-url-template 'http://{url_id}.lambda-url.localhost:8080/']\n"
               "         [--region us-east-1] [--account-id 000000000000]\n"
               "         [--max-connections-per-client 256] [--isolation fork|restore]\n"
               "  --isolation: the scheduler's per-request isolation mode, reported by\n"
               "    GET /geysir/v1/health (default fork; geysir server passes the mode it resolved)\n");
}

bool ParsePort(std::string_view s, uint16_t* out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

struct Signals {
  uv_signal_t term{}, intr{};
  geysir::control::ControlServer* server = nullptr;
  bool stopping = false;
};

void OnSignal(uv_signal_t* handle, int signum) {
  auto* s = static_cast<Signals*>(handle->data);
  if (s->stopping) return;
  s->stopping = true;
  geysir::log::Info("shutdown", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}});
  s->server->Shutdown([s] {
    // Handles live in `Signals` on main's stack, which outlives the loop run.
    uv_close(reinterpret_cast<uv_handle_t*>(&s->term), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->intr), nullptr);
  });
}

}  // namespace

int main(int argc, char** argv) {
  geysir::log::Init("control");
  std::signal(SIGPIPE, SIG_IGN);
  geysir::control::ControlOptions opt;
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "geysir-control: %s needs a value\n", argv[i]);
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data-dir") {
      opt.data_dir = value();
    } else if (a == "--listen-fd") {
      std::string v = value();
      int fd = -1;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), fd);
      if (ec != std::errc() || p != v.data() + v.size() || fd < 0) {
        std::fprintf(stderr, "geysir-control: --listen-fd needs a file descriptor number, got '%s'\n", v.c_str());
        return 2;
      }
      opt.listen_fd = fd;
      have_listen = true;
    } else if (a == "--listen") {
      std::string v = value();
      size_t colon = v.rfind(':');
      if (colon == std::string::npos || !ParsePort(std::string_view(v).substr(colon + 1), &opt.listen_port)) {
        std::fprintf(stderr, "geysir-control: --listen needs HOST:PORT, got '%s'\n", v.c_str());
        return 2;
      }
      opt.listen_host = v.substr(0, colon);
      if (opt.listen_host.size() > 2 && opt.listen_host.front() == '[' && opt.listen_host.back() == ']') {
        opt.listen_host = opt.listen_host.substr(1, opt.listen_host.size() - 2);
      }
      have_listen = true;
    } else if (a == "--socket") {
      opt.socket_path = value();
    } else if (a == "--scheduler-socket") {
      opt.scheduler_socket = value();
    } else if (a == "--function-url-template") {
      opt.api.function_url_template = value();
    } else if (a == "--region") {
      opt.api.region = value();
    } else if (a == "--account-id") {
      opt.api.account_id = value();
    } else if (a == "--max-connections-per-client") {
      std::string v = value();
      unsigned n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > 100000) {
        std::fprintf(stderr, "geysir-control: --max-connections-per-client needs a number from 1 to 100000, got '%s'\n",
                     v.c_str());
        return 2;
      }
      opt.max_connections_per_client = n;
    } else if (a == "--isolation") {
      std::string v = value();
      if (v != "fork" && v != "restore") {
        std::fprintf(stderr, "geysir-control: --isolation is fork or restore, got '%s'\n", v.c_str());
        return 2;
      }
      opt.isolation = v;
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "geysir-control: unknown flag '%s'\n", argv[i]);
      Usage();
      return 2;
    }
  }
  if (opt.data_dir.empty() || !have_listen) {
    Usage();
    return 2;
  }
  if (opt.api.account_id.size() != 12 ||
      opt.api.account_id.find_first_not_of("0123456789") != std::string::npos) {
    std::fprintf(stderr, "geysir-control: --account-id must be 12 digits\n");
    return 2;
  }

  uv_loop_t* loop = uv_default_loop();
  {
    geysir::control::ControlServer server(loop, opt);
    geysir::Status st = server.Start();
    if (!st.ok()) {
      geysir::log::Error("start_failed", {{"error", st.ToString()}});
      std::fprintf(stderr, "geysir-control: %s\n", st.ToString().c_str());
      server.Close();
      uv_run(loop, UV_RUN_NOWAIT);
      return 1;
    }
    std::printf("Geysir admin credentials: %s\n", server.credentials_path().c_str());
    std::printf("Geysir control API listening on port %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);

    Signals sig;
    sig.server = &server;
    uv_signal_init(loop, &sig.term);
    uv_signal_init(loop, &sig.intr);
    sig.term.data = sig.intr.data = &sig;
    uv_signal_start(&sig.term, OnSignal, SIGTERM);
    uv_signal_start(&sig.intr, OnSignal, SIGINT);

    uv_run(loop, UV_RUN_DEFAULT);
    geysir::log::Info("stopped");
  }
  // Close callbacks of handles closed during destruction.
  uv_run(loop, UV_RUN_NOWAIT);
  // A handle still open here (a peer library's) is reclaimed by the OS; exit status stays 0.
  (void)uv_loop_close(loop);
  return 0;
}
