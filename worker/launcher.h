// Launching a function's template process: the worker module's seam for the scheduler.
//
// SpawnTemplate() forks and execs `geysir-worker` (worker/main.cpp), which builds the sandbox
// (worker/sandbox: contain()), drops privileges to spec.uid/spec.gid and execs the language
// runtime's bootstrap (worker/runtime/python/bootstrap.py) as the *template*: it runs the
// function's init phase once (imports the handler module), reports "ready" on the control
// socket, then forks one child per "fork" request. The protocol on the control socket and on
// each child's channel is specified in docs/wire-formats.md ("Scheduler <-> template").
//
// In the scheduler only async-signal-safe calls happen between fork and exec; a launcher that
// fails before its runtime starts writes one fixed-size LaunchFailure {stage, errno} to the
// error pipe and _exits. EOF on the error pipe without a record means the runtime was exec'd.
//
// Thread safety: SpawnTemplate may be called from the loop thread; it does not block on the child.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "proto/messages.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace geysir::worker {

// Fixed-size record a launcher writes on its error pipe when a step fails: one write(2), no
// allocation, as the only async-signal-safe way to report from between fork and exec.
struct LaunchFailure {
  int32_t stage;   // a LaunchStage
  int32_t err;     // errno
};

enum LaunchStage : int32_t {
  kStageExecLauncher = 1,  // exec of geysir-worker itself failed (in the scheduler's child)
  kStageParseSpec,
  kStageCgroup,
  kStageNamespaces,
  kStageMounts,
  kStageRlimits,
  kStageDropPrivileges,
  kStageSeccomp,
  kStageChdir,
  kStageExecRuntime,
  // Added after the first version (values above are fixed; new stages are appended).
  kStageFds,               // closing inherited descriptors
  kStageEnvironment,       // building the function's environment
  kStageCapabilities,      // dropping every capability (bounding, ambient, inheritable sets)
};
const char* LaunchStageName(int32_t stage);

struct TemplateSpec {
  proto::FunctionConfig function;
  std::string template_id;       // unique per template instance, used in log stream names
  std::string worker_binary;     // absolute path of geysir-worker
  std::string runtime_dir;       // directory holding the runtime bootstrap (bootstrap.py)
  std::string python;            // interpreter for python3.x runtimes, default /usr/bin/python3.11
  uid_t uid = 65534;             // unprivileged identity the template and its children run as
  gid_t gid = 65534;
  std::string cgroup_dir;        // cgroup (v2 path, or v1 memory path) the template is placed in; may be empty
  // The namespace/mount/capability/seccomp sandbox (worker/sandbox/README.md). Off, only the
  // cgroup, rlimits and the uid switch apply: for an unprivileged scheduler (a developer's
  // machine) and for measuring what the sandbox costs. With it, SpawnTemplate starts
  // geysir-worker as PID 1 of a new PID namespace.
  bool isolate = false;
  std::string network = "none";  // "none": loopback only; "egress": see worker/sandbox/network*
  // Restore mode (worker/restore/restore.h): the seccomp filter lets a child make the one
  // userfaultfd its restorer needs (UFFD_USER_MODE_ONLY only, see worker/sandbox/seccomp.cpp).
  bool restore = false;
};

// A running template. The scheduler owns all three fds; closing `control` tells the template
// to exit. `pid` is a direct child of the scheduler and must be reaped by it. With
// spec.isolate it is PID 1 of its own PID namespace: when it exits, the kernel kills every
// process left in that namespace (its children included).
struct TemplateProcess {
  pid_t pid = -1;
  UniqueFd control;    // SOCK_SEQPACKET, JSON messages, fds passed with SCM_RIGHTS
  UniqueFd init_log;   // read end of the template's stdout+stderr (init-phase log lines)
  UniqueFd error_pipe; // read end: a LaunchFailure record, or EOF once the runtime is exec'd
};

Result<TemplateProcess> SpawnTemplate(const TemplateSpec& spec);

// Helpers for the control-socket protocol, usable by the scheduler (non-blocking sockets:
// they return Unavailable with EAGAIN when nothing is ready). ReceiveControlMessage returns
// Unavailable with sys_errno() == 0 at EOF (the template exited), and InvalidArgument for a
// datagram that is not a JSON object with a "type" string. The control socket carries the
// sender's credentials (SO_PASSCRED): `sender_pid` is the pid, in the scheduler's PID namespace,
// of the process that sent the message (the template, or a child announcing itself).
Status SendControlMessage(int control_fd, const nlohmann::json& message, const int* fds, size_t nfds);
struct ControlMessage {
  nlohmann::json message;
  pid_t sender_pid = 0;  // 0: the kernel attached no credentials
  // The first descriptor the message carried (a restore-mode child's "forked" carries its
  // userfaultfd); any others are closed on receipt.
  UniqueFd passed_fd;
};
Result<ControlMessage> ReceiveControlMessage(int control_fd);

}  // namespace geysir::worker
