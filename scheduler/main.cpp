// geysir-scheduler: parses flags and runs SchedulerServer (scheduler/server.h) on a libuv loop.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "worker/restore/restore.h"
#include "worker/sandbox/network.h"
#include "scheduler/server.h"

namespace {

const char* kUsage =
    "usage: geysir-scheduler [--data-dir DIR] [--socket PATH] [--control-socket PATH]\n"
    "         [--worker-binary PATH] [--runtime-dir DIR] [--idle-timeout-s N] [--prefork N]\n"
    "         [--max-pools N] [--max-prefork-total N] [--worker-idle-timeout-s N]\n"
    "         [--function-concurrency N] [--queue-depth N] [--uid-base N] [--python PATH]\n"
    "         [--pids-max N] [--cgroup-base NAME] [--no-cgroups] [--no-sandbox] [--egress-deny-file PATH]\n"
    "         [--isolation auto|restore|fork]\n"
    "  --cgroup-base defaults to geysir/<hash of the data directory>\n"
    "  --worker-idle-timeout-s: a reuse-mode worker idle this long is stopped (default 60)\n"
    "  --no-sandbox: no namespaces, mounts, capability drop or seccomp (to measure their cost;\n"
    "    functions then see the host's files); the sandbox needs root and is on by default\n"
    "  --egress-deny-file: IPv4 ranges egress functions may not reach, one CIDR a line, on top of\n"
    "    RFC 1918 and the built-in ones (default <data-dir>/egress-deny; docs/security.md)\n"
    "  --isolation: how a per-request function's invocations are kept apart. restore: one worker\n"
    "    per slot, brought back to its post-init snapshot after each invocation (needs Linux >= 6.7\n"
    "    and the sandbox); fork: a fresh child of the template per invocation; auto (default):\n"
    "    restore where the kernel and the sandbox allow it, else fork\n";

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// One cgroup subtree per Geysir instance, named after its data directory, so two instances on
// one host (or a test run beside a real server) never clean up each other's cgroups.
std::string DefaultCgroupBase(const std::string& data_dir) {
  char resolved[4096];
  std::string dir = realpath(data_dir.c_str(), resolved) != nullptr ? std::string(resolved) : data_dir;
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : dir) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[32];
  snprintf(buf, sizeof buf, "geysir/%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
  return buf;
}

std::string ReadSmallFile(const std::string& path, bool* exists) {
  std::string text;
  FILE* f = fopen(path.c_str(), "re");
  *exists = f != nullptr;
  if (f == nullptr) return text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (1u << 20)) text.append(buf, n);
  fclose(f);
  return text;
}

// Egress networking's host firewall (worker/sandbox/network.h), one nftables table per
// scheduler: the built-in refusals, RFC 1918 and the operator's deny file (one CIDR a line).
// Returns the table's name, or "" when egress stays unavailable (the reason is logged).
std::string InstallEgressFirewall(const std::string& deny_file) {
  namespace net = geysir::worker::sandbox;
  using geysir::log::Warn;
  net::RemoveStaleEgressFirewalls();
  std::vector<std::string> deny = net::DefaultDeniedRanges();
  bool exists = false;
  std::string text = ReadSmallFile(deny_file, &exists);
  if (exists) {
    auto listed = net::ParseDenyList(text);
    if (!listed.ok()) {
      Warn("egress_unavailable", {{"error", listed.status().ToString()}, {"file", deny_file}});
      return "";
    }
    deny.insert(deny.end(), listed->begin(), listed->end());
  }
  bool have_resolv = false;
  std::vector<std::string> dns = net::ParseNameservers(ReadSmallFile("/etc/resolv.conf", &have_resolv));
  const std::string table = "geysir_" + std::to_string(getpid());
  geysir::Status st = net::InstallEgressFirewall(table, deny, dns);
  if (!st.ok()) {
    Warn("egress_unavailable", {{"error", st.ToString()}});
    return "";
  }
  geysir::log::Info("egress_firewall", {{"table", "inet " + table}, {"deny", deny}, {"nameservers", dns}});
  return table;
}

bool ParseUint(const char* text, uint64_t max, uint64_t& out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max || text[0] == '-') return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace geysir;
  using namespace geysir::scheduler;
  log::Init("scheduler");

  std::string data_dir = "/var/lib/geysir";
  ServerOptions o;
  const std::string bin = SelfDir();
  o.launcher.worker_binary = bin + "/geysir-worker";
  o.launcher.runtime_dir = bin + "/../share/geysir/runtime";
  std::string socket, control_socket;
  bool control_socket_set = false;
  bool cgroup_base_set = false;
  std::string egress_deny_file;
  std::string isolation = "auto";

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        fprintf(stderr, "geysir-scheduler: %s needs a value\n%s", a.c_str(), kUsage);
        exit(2);
      }
      return argv[++i];
    };
    auto number = [&](uint64_t max) -> uint64_t {
      const char* v = value();
      uint64_t n = 0;
      if (!ParseUint(v, max, n)) {
        fprintf(stderr, "geysir-scheduler: %s: '%s' is not a number in 0..%llu\n", a.c_str(), v,
                static_cast<unsigned long long>(max));
        exit(2);
      }
      return n;
    };
    if (a == "--data-dir") data_dir = value();
    else if (a == "--socket") socket = value();
    else if (a == "--control-socket") { control_socket = value(); control_socket_set = true; }
    else if (a == "--worker-binary") o.launcher.worker_binary = value();
    else if (a == "--runtime-dir") o.launcher.runtime_dir = value();
    else if (a == "--python") o.launcher.python = value();
    else if (a == "--idle-timeout-s") o.scheduler.idle_timeout_ms = static_cast<int64_t>(number(86400 * 365)) * 1000;
    else if (a == "--worker-idle-timeout-s") o.scheduler.worker_idle_timeout_ms = static_cast<int64_t>(number(86400 * 365)) * 1000;
    else if (a == "--prefork") o.scheduler.prefork = static_cast<uint32_t>(number(1024));
    else if (a == "--max-pools") o.scheduler.max_pools = static_cast<uint32_t>(number(100000));
    else if (a == "--max-prefork-total") o.scheduler.max_prefork_total = static_cast<uint32_t>(number(1000000));
    else if (a == "--function-concurrency") o.scheduler.function_concurrency = static_cast<uint32_t>(number(100000));
    else if (a == "--queue-depth") o.scheduler.queue_depth = static_cast<uint32_t>(number(1000000));
    else if (a == "--uid-base") o.scheduler.uid_base = static_cast<uint32_t>(number(4000000000u));
    else if (a == "--pids-max") o.launcher.pids_max = static_cast<uint32_t>(number(4194304));
    else if (a == "--cgroup-base") { o.cgroup_base = value(); cgroup_base_set = true; }
    else if (a == "--no-cgroups") o.cgroups = false;
    else if (a == "--egress-deny-file") egress_deny_file = value();
    else if (a == "--no-sandbox") o.launcher.isolate = false;
    else if (a == "--isolation") {
      isolation = value();
      if (isolation != "auto" && isolation != "restore" && isolation != "fork") {
        fprintf(stderr, "geysir-scheduler: --isolation is auto, restore or fork, got '%s'\n%s", isolation.c_str(), kUsage);
        return 2;
      }
    }
    else if (a == "--help" || a == "-h") { fputs(kUsage, stdout); return 0; }
    else {
      fprintf(stderr, "geysir-scheduler: unknown argument %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  // The worker binary and the runtime are exec'd and bound into every sandbox by absolute path:
  // resolve them once here, so a relative or missing one is an error at start, not one per
  // invocation.
  for (auto [flag, path] : {std::pair<const char*, std::string*>{"--worker-binary", &o.launcher.worker_binary},
                            std::pair<const char*, std::string*>{"--runtime-dir", &o.launcher.runtime_dir}}) {
    char resolved[PATH_MAX];
    if (realpath(path->c_str(), resolved) == nullptr) {
      fprintf(stderr, "geysir-scheduler: %s %s: %s\n", flag, path->c_str(), strerror(errno));
      return 2;
    }
    *path = resolved;
  }
  o.socket_path = socket.empty() ? data_dir + "/run/scheduler.sock" : socket;
  o.control_socket_path = control_socket_set ? control_socket : data_dir + "/run/control.sock";
  if (!cgroup_base_set) o.cgroup_base = DefaultCgroupBase(data_dir);
  // The supervisor gives each daemon 30 s before SIGKILL; finish draining before that.
  o.drain_cap_ms = 25000;
  if (o.scheduler.prefork > o.scheduler.max_prefork) o.scheduler.max_prefork = o.scheduler.prefork;

  // Restore mode restores workers that run inside the sandbox (their own cgroup, no way out of
  // their namespaces while stopped); without it, or without the kernel's userfaultfd
  // write-protect and PAGEMAP_SCAN, per-request functions fork per invocation. An explicit
  // `restore` that cannot be honoured is refused rather than quietly weakened to fork.
  {
    const bool sandbox = geteuid() == 0 && o.launcher.isolate;
    worker::restore::Support support = worker::restore::Probe();
    std::string detail = support.detail;
    bool can_restore = support.available && sandbox;
    if (support.available && !sandbox) {
      detail = o.launcher.isolate ? "restore mode needs the sandbox, which needs root"
                                  : "restore mode needs the sandbox (--no-sandbox is set)";
    }
    if (isolation == "restore" && !can_restore) {
      fprintf(stderr, "geysir-scheduler: --isolation restore is not available here: %s\n", detail.c_str());
      log::Error("isolation_unavailable", {{"mode", "restore"}, {"detail", detail}});
      return 1;
    }
    o.launcher.restore = isolation == "restore" || (isolation == "auto" && can_restore);
    if (isolation == "fork") detail = "forced by --isolation fork; " + detail;
    log::Info("isolation_mode", {{"mode", o.launcher.restore ? "restore" : "fork"}, {"requested", isolation},
                                 {"detail", detail}});
  }

  // A write to a peer that went away must be an error return, not a fatal signal.
  signal(SIGPIPE, SIG_IGN);
  // Function processes orphaned by a dying template are re-parented to us and reaped by the
  // SIGCHLD loop, instead of piling up under init.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  std::string egress_table;
  if (geteuid() == 0 && o.launcher.isolate) {
    egress_table = InstallEgressFirewall(egress_deny_file.empty() ? data_dir + "/egress-deny" : egress_deny_file);
    o.launcher.egress_firewall = !egress_table.empty();
  }

  uv_loop_t* loop = uv_default_loop();
  int exit_code = 0;
  {
    SchedulerServer server(loop, o);
    server.on_signal_stop([] {});
    Status st = server.Start();
    if (!st.ok()) {
      log::Error("start_failed", {{"error", st.ToString()}});
      exit_code = 1;
      server.Shutdown([] {});
    }
    uv_run(loop, UV_RUN_DEFAULT);
  }
  // Close callbacks of handles freed during the server's destruction.
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) log::Warn("loop_not_empty_at_exit");
  // Every template is gone by now, so no function depends on the table any more.
  if (!egress_table.empty()) {
    Status st = worker::sandbox::RemoveEgressFirewall(egress_table);
    if (!st.ok()) log::Warn("egress_firewall_remove_failed", {{"error", st.ToString()}});
  }
  return exit_code;
}
