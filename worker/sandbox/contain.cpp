#include "worker/sandbox/contain.h"

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

// The order of the steps, and why:
//
//  1. cgroup       first, while we are root and can still see /sys/fs/cgroup: every byte the
//                  runtime allocates from here on is charged to the function's limits.
//                  (Later: before namespaces/pivot_root, after which the hierarchy is gone.)
//  -- sandbox issue: 2a. namespaces (user, mount, pid, ipc, uts, net) and 2b. mounts
//     (read-only code, private /tmp, pivot_root, /proc) slot in here: after the cgroup join,
//     before anything that resolves paths (chdir) or drops the privileges they need.
//  2. rlimits      while privileged (raising a hard limit needs CAP_SYS_RESOURCE); limits are
//                  inherited by the runtime and every child it forks.
//  3. fds          nothing but 0..4 crosses into the function: a descriptor leaked from the
//                  scheduler would be a hole in every later wall.
//  4. environment  built from the spec only (nothing inherited from the scheduler).
//  5. no_new_privs before the uid change, so no setuid binary can hand privileges back.
//  6. privileges   setgroups(0), setgid, setuid, then checked: setuid(0) must fail.
//  7. chdir        after dropping privileges, so the code directory is opened with the
//                  function's own rights: unreadable code fails here with a clear stage.
//  -- sandbox issue: 8. seccomp, last before exec: the filter would otherwise have to allow
//     every call the steps above make (setuid, mount, ...).
//  9. exec         fd 4 is made close-on-exec just before: EOF tells the scheduler it worked.
void Contain(const TemplateSpec& spec) {
  Step(kStageCgroup, JoinCgroup(spec.cgroup_dir));
  Step(kStageRlimits, ApplyRlimits(spec));
  Step(kStageFds, CloseInheritedFds(kErrorFd));
  std::vector<std::string> env = BuildEnvironment(spec, time(nullptr));
  std::vector<std::string> argv = RuntimeArgv(spec);
  Step(kStageDropPrivileges, SetNoNewPrivs());
  Step(kStageDropPrivileges, DropPrivileges(spec.uid, spec.gid));
  if (chdir(spec.function.code_dir.c_str()) < 0) Step(kStageChdir, Status::Sys(errno, "chdir " + spec.function.code_dir));

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
