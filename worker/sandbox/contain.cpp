#include "worker/sandbox/contain.h"
#include "worker/sandbox/network.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace geysir::worker::sandbox {

std::vector<std::string> RuntimeArgv(const TemplateSpec& spec) {
  // -u: stdout/stderr unbuffered, so a child killed at its timeout has already written every
  //     line it printed (the children re-wrap them line-buffered over the same fds).
  // -s: no user site-packages: HOME is not the function's to extend sys.path from.
  // -B: never write .pyc files: the code is read-only and shared between functions.
  // -P: do not put the runtime directory in front of sys.path, so a function module named like
  //     ours cannot be shadowed and ours cannot shadow the function's. PYTHONPATH (the code
  //     directory) is honoured on purpose, unlike -E/-I.
  return {spec.python, "-u", "-s", "-B", "-P", spec.runtime_dir + "/bootstrap.py"};
}

void Fail(int32_t stage, const Status& why) {
  std::string line = std::string("geysir-worker: ") + LaunchStageName(stage) + ": " + why.message() + "\n";
  (void)!write(2, line.data(), line.size());
  LaunchFailure f{stage, why.sys_errno() != 0 ? why.sys_errno() : EINVAL};
  (void)!write(kErrorFd, &f, sizeof f);
  _exit(127);
}

namespace {

void Step(int32_t stage, const Status& st) {
  if (!st.ok()) Fail(stage, st);
}

}  // namespace

// The order of the steps, and why (worker/sandbox/README.md has the same table):
//
//  1. cgroup       first, while we are root and can still see /sys/fs/cgroup: every byte the
//                  runtime allocates from here on is charged to the function's limits, and
//                  the hierarchy is out of sight after pivot_root.
//  -  (PID namespace: made by SpawnTemplate's clone(CLONE_NEWPID); we are its PID 1.)
//  2. namespaces   mount, IPC, UTS, network: before the mounts (which must land in our own
//                  mount namespace) and while we hold CAP_SYS_ADMIN / CAP_NET_ADMIN. Egress
//                  networking (network.cpp) is wired here too, while the host's /proc is
//                  still visible.
//  3. mounts       the minimal root and pivot_root, while still root (mount needs it) and
//                  before anything resolves a path the function will use (chdir, exec).
//                  From here on paths are the sandbox's: /var/task, /var/runtime.
//  4. rlimits      while privileged (raising a hard limit needs CAP_SYS_RESOURCE); limits are
//                  inherited by the runtime and every child it forks.
//  5. fds          nothing but 0..4 crosses into the function: a descriptor leaked from the
//                  scheduler (or left by the steps above) would be a hole in every wall.
//  6. environment  built from the spec only (nothing inherited from the scheduler).
//  7. capabilities bounding, ambient and inheritable sets emptied: needs CAP_SETPCAP, so
//                  before the uid change; the uid change then clears effective and permitted.
//  8. no_new_privs before the uid change, so no setuid binary can hand privileges back.
//  9. privileges   setgroups(0), setgid, setuid, then checked: setuid(0) must fail and no
//                  capability may be left.
// 10. chdir        after dropping privileges, so the code directory is opened with the
//                  function's own rights: unreadable code fails here with a clear stage.
// 11. seccomp      last before exec: the filter would otherwise have to allow every call the
//                  steps above make (mount, pivot_root, setns-like unshare, ...).
// 12. exec         fd 4 is made close-on-exec just before: EOF tells the scheduler it worked.
//
// Without spec.isolate (an unprivileged scheduler, or a measurement of the sandbox's cost)
// steps 2, 3, 7 and 11 are skipped and the function sees the host's file system.
void Contain(const TemplateSpec& spec) {
  Step(kStageCgroup, JoinCgroup(spec.cgroup_dir));
  TemplateSpec inside = spec;
  if (spec.isolate) {
    Step(kStageNamespaces, UnshareNamespaces(spec));
    Step(kStageNamespaces, SetUpNetwork(spec));  // egress only (network.h): while root, before the mounts
    Step(kStageMounts, BuildRoot(spec));
    inside.function.code_dir = kTaskRoot;
    inside.runtime_dir = kRuntimeRoot;
  }
  Step(kStageRlimits, ApplyRlimits(inside));
  Step(kStageFds, CloseInheritedFds(kErrorFd));
  std::vector<std::string> env = BuildEnvironment(inside, time(nullptr));
  std::vector<std::string> argv = RuntimeArgv(inside);
  if (spec.isolate) Step(kStageCapabilities, DropCapabilities());
  Step(kStageDropPrivileges, SetNoNewPrivs());
  Step(kStageDropPrivileges, DropPrivileges(spec.uid, spec.gid));
  if (spec.isolate) Step(kStageCapabilities, VerifyNoCapabilities());
  const std::string& code_dir = inside.function.code_dir;
  if (chdir(code_dir.c_str()) < 0) Step(kStageChdir, Status::Sys(errno, "chdir " + code_dir));
  if (spec.isolate) Step(kStageSeccomp, InstallSeccomp(spec.restore));

  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  if (fcntl(kErrorFd, F_SETFD, FD_CLOEXEC) < 0) Step(kStageExecRuntime, Status::Sys(errno, "fcntl fd 4"));
  execve(cargv[0], cargv.data(), cenv.data());
  Fail(kStageExecRuntime, Status::Sys(errno, "exec " + argv[0]));
}

}  // namespace geysir::worker::sandbox
