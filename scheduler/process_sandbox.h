// ProcessLauncher: the real Launcher (scheduler/sandbox.h). Starts `geysir-worker` templates
// with worker::SpawnTemplate, speaks the control-socket protocol of docs/wire-formats.md
// ("Scheduler <-> template"), and gives every child its own cgroup before it is handed out.
//
// Per template: cgroup <base>/<template_id> (function memory, --pids-max), the control socket,
// the init-log pipe and the launcher's error pipe, each watched with a uv_poll_t.
// Per child: a SOCK_STREAM socketpair (the invoke/result channel) and a pipe (its stdout and
// stderr), passed with the "fork" message; on "forked" the child's pid is moved into cgroup
// <base>/<template_id>-<n> with the same limits. A child that dies is told apart from one that
// answered by EOF on its channel; its exit status comes from the template's "exited" message.
//
// Blocking: cgroup operations are small synchronous file writes (worker/cgroup.h); they happen
// after an invocation is answered or before a child is handed out, never between the two. A
// sandboxed child's private /tmp (worker/private_tmp.h) is mounted on a thread of the
// launcher's own (base/loop_worker.h), not on the loop.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "scheduler/clock.h"
#include "scheduler/sandbox.h"
#include "worker/cgroup.h"

namespace geysir::scheduler {

struct ProcessLauncherOptions {
  std::string worker_binary;               // absolute path of geysir-worker
  std::string runtime_dir;                 // holds python/bootstrap.py
  std::string python = "/usr/bin/python3.11";
  uint32_t pids_max = 1024;
  int64_t log_grace_ms = 200;              // after a result: wait this long for the child to exit
  int64_t exit_wait_ms = 200;              // after a channel EOF: wait this long for "exited"
  size_t max_log_bytes = 1 << 20;          // per invocation; beyond this output is dropped
  size_t max_init_log_bytes = 64 * 1024;
  // The namespace/mount/capability/seccomp sandbox (worker/sandbox/README.md). Applies only
  // when the scheduler runs as root; off only to measure what it costs.
  bool isolate = true;
  bool egress_firewall = false;            // main installed the egress firewall (worker/sandbox/network.h)
  // Restore mode (worker/restore/restore.h): a per-request function's children are snapshotted
  // once and restored after every invocation instead of exiting. Set only where
  // worker::restore::Probe() found the kernel support; otherwise children fork per request.
  bool restore = false;
};

class ProcessLauncher final : public Launcher {
 public:
  ProcessLauncher(uv_loop_t* loop, Clock* clock, worker::CgroupDriver* cgroups, ProcessLauncherOptions options);
  ~ProcessLauncher() override;
  ProcessLauncher(const ProcessLauncher&) = delete;
  ProcessLauncher& operator=(const ProcessLauncher&) = delete;

  Result<std::unique_ptr<Template>> Start(const TemplateRequest& request, TemplateEvents events) override;

  // The owner's SIGCHLD handler reaps with waitpid(-1, WNOHANG) and reports every pid here.
  void OnReaped(pid_t pid, int wait_status);

  struct Shared;  // state shared with templates and children (internal)

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace geysir::scheduler
