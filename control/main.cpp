// geysir-control: parses flags, starts a ControlServer on a libuv loop, and shuts it down
// gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight requests, close, exit 0).
// Flags are documented in docs/architecture.md.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "control/control_server.h"
#include "base/flags.h"
#include "base/log.h"

namespace {

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
  geysir::Flags flags("geysir-control");
  flags.String("--data-dir", &opt.data_dir, "DIR", "the data directory (required)");
  flags.Custom("--listen-fd", "N", "serve the API on this inherited listening socket", [&](const std::string& v) {
    uint64_t fd = 0;
    GEYSIR_RETURN_IF_ERROR(geysir::Flags::ParseUnsigned(v, 65535, &fd));
    opt.listen_fd = static_cast<int>(fd);
    have_listen = true;
    return geysir::Status::Ok();
  });
  flags.Custom("--listen", "HOST:PORT", "serve the API on this address (port 0 picks a free one)",
               [&](const std::string& v) {
                 GEYSIR_RETURN_IF_ERROR(geysir::Flags::ParseHostPort(v, &opt.listen_host, &opt.listen_port));
                 have_listen = true;
                 return geysir::Status::Ok();
               });
  flags.String("--socket", &opt.socket_path, "PATH", "control.sock, where the gateway and scheduler connect");
  flags.String("--scheduler-socket", &opt.scheduler_socket, "PATH", "the scheduler's socket (for invokes)");
  flags.String("--function-url-template", &opt.api.function_url_template, "URL",
               "how function URLs are shown, e.g. 'http://{url_id}.lambda-url.localhost:8080/'");
  flags.String("--region", &opt.api.region, "REGION", "the region ARNs name (default us-east-1)");
  flags.String("--account-id", &opt.api.account_id, "DIGITS", "the 12-digit account ARNs name (default 000000000000)");
  flags.Custom("--max-connections-per-client", "N", "open connections one client address may hold (default 256)",
               [&](const std::string& v) {
                 uint64_t n = 0;
                 if (!geysir::Flags::ParseUnsigned(v, 100000, &n).ok() || n == 0) {
                   return geysir::Status::Invalid("wants a number from 1 to 100000, got '" + v + "'");
                 }
                 opt.max_connections_per_client = static_cast<uint32_t>(n);
                 return geysir::Status::Ok();
               });
  flags.Custom("--isolation", "fork|restore",
               "the scheduler's per-request isolation mode, reported by GET /geysir/v1/health (default fork; "
               "geysir server passes the mode it resolved)",
               [&](const std::string& v) {
                 if (v != "fork" && v != "restore") return geysir::Status::Invalid("is fork or restore, got '" + v + "'");
                 opt.isolation = v;
                 return geysir::Status::Ok();
               });
  if (geysir::Status st = flags.Parse(argc, argv); !st.ok()) {
    std::fprintf(stderr, "%s\n%s", st.message().c_str(), flags.Usage().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stderr);
    return 0;
  }
  if (opt.data_dir.empty() || !have_listen) {
    std::fprintf(stderr, "geysir-control: --data-dir and one of --listen-fd and --listen are required\n%s",
                 flags.Usage().c_str());
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
