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

#include "base/flags.h"
#include "base/log.h"
#include "worker/restore/restore.h"
#include "worker/sandbox/network.h"
#include "scheduler/server.h"

namespace {

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

  uint64_t idle_timeout_s = o.scheduler.idle_timeout_ms / 1000;
  uint64_t worker_idle_timeout_s = o.scheduler.worker_idle_timeout_ms / 1000;
  bool no_cgroups = false;
  bool no_sandbox = false;
  Flags flags("geysir-scheduler");
  flags.String("--data-dir", &data_dir, "DIR", "the data directory (default /var/lib/geysir)");
  flags.String("--socket", &socket, "PATH", "the socket to serve (default <data-dir>/run/scheduler.sock)");
  flags.Custom("--control-socket", "PATH", "control's socket for logs (default <data-dir>/run/control.sock)",
               [&](const std::string& v) {
                 control_socket = v;
                 control_socket_set = true;
                 return Status::Ok();
               });
  flags.String("--worker-binary", &o.launcher.worker_binary, "PATH", "geysir-worker (default: beside this binary)");
  flags.String("--runtime-dir", &o.launcher.runtime_dir, "DIR", "the language runtimes (default <bin>/../share/geysir/runtime)");
  flags.String("--python", &o.launcher.python, "PATH", "the Python interpreter functions run on");
  flags.Unsigned("--idle-timeout-s", &idle_timeout_s, 86400 * 365, "N", "a pool idle this long is evicted");
  flags.Unsigned("--worker-idle-timeout-s", &worker_idle_timeout_s, 86400 * 365, "N",
                 "a reuse-mode worker idle this long is stopped (default 60)");
  flags.Unsigned("--prefork", &o.scheduler.prefork, 1024, "N", "children forked ahead of demand per pool");
  flags.Unsigned("--max-pools", &o.scheduler.max_pools, 100000, "N", "function versions kept warm at once");
  flags.Unsigned("--max-prefork-total", &o.scheduler.max_prefork_total, 1000000, "N", "pre-forked children across pools");
  flags.Unsigned("--function-concurrency", &o.scheduler.function_concurrency, 100000, "N",
                 "concurrent invocations of one function version");
  flags.Unsigned("--queue-depth", &o.scheduler.queue_depth, 1000000, "N", "invocations waiting per pool before 429");
  flags.Unsigned("--uid-base", &o.scheduler.uid_base, 4000000000u, "N", "function processes run as uid N + slot");
  flags.Unsigned("--pids-max", &o.launcher.pids_max, 4194304, "N", "processes one function may have");
  flags.Custom("--cgroup-base", "NAME", "the cgroup under which pools live (default geysir/<hash of the data directory>)",
               [&](const std::string& v) {
                 o.cgroup_base = v;
                 cgroup_base_set = true;
                 return Status::Ok();
               });
  flags.Bool("--no-cgroups", &no_cgroups, "no memory, CPU or pid limits");
  flags.Bool("--no-sandbox", &no_sandbox,
             "no namespaces, mounts, capability drop or seccomp (to measure their cost; functions then see the "
             "host's files); the sandbox needs root and is on by default");
  flags.String("--egress-deny-file", &egress_deny_file, "PATH",
               "IPv4 ranges functions may not reach, one CIDR a line, on top of RFC 1918 and the built-in ones "
               "(default <data-dir>/egress-deny; docs/security.md)");
  flags.Custom("--isolation", "auto|restore|fork",
               "how a per-request function's invocations are kept apart. restore: one worker per slot, brought "
               "back to its post-init snapshot after each invocation (needs Linux >= 6.7 and the sandbox); fork: a "
               "fresh child of the template per invocation; auto (default): restore where the kernel and the "
               "sandbox allow it, else fork",
               [&](const std::string& v) {
                 if (v != "auto" && v != "restore" && v != "fork") return Status::Invalid("is auto, restore or fork, got '" + v + "'");
                 isolation = v;
                 return Status::Ok();
               });
  if (Status st = flags.Parse(argc, argv); !st.ok()) {
    fprintf(stderr, "%s\n%s", st.message().c_str(), flags.Usage().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    fputs(flags.Usage().c_str(), stdout);
    return 0;
  }
  o.scheduler.idle_timeout_ms = static_cast<int64_t>(idle_timeout_s) * 1000;
  o.scheduler.worker_idle_timeout_ms = static_cast<int64_t>(worker_idle_timeout_s) * 1000;
  if (no_cgroups) o.cgroups = false;
  if (no_sandbox) o.launcher.isolate = false;
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
