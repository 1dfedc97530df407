// The sandbox pipeline that geysir-worker runs between its own exec and the runtime's exec:
// contain() is the ordered list of steps, one file per kernel concern, so that its body reads
// like the security specification (docs/style.md, "Shape"). The order and the reason for it are
// written down once, in contain.cpp.
//
// A failing step makes contain() write one LaunchFailure {stage, errno} to fd 4 (the error pipe)
// and _exit(127); it also writes a human-readable line to fd 2 (the init log). On success the
// process becomes the runtime (exec), and fd 4, close-on-exec, reads EOF in the scheduler.
//
// Thread safety: single-threaded process only (it changes credentials and exec's).
#pragma once

#include <sys/types.h>

#include <ctime>
#include <string>
#include <vector>

#include "base/status.h"
#include "worker/launcher.h"

namespace geysir::worker::sandbox {

// Descriptors the runtime inherits (docs/wire-formats.md): 0 /dev/null, 1-2 init log,
// 3 control socket, 4 error pipe (close-on-exec right before the runtime's exec).
inline constexpr int kControlFd = 3;
inline constexpr int kErrorFd = 4;

// Where the function's code and the runtime appear inside the sandbox (Lambda's paths).
inline constexpr char kTaskRoot[] = "/var/task";
inline constexpr char kRuntimeRoot[] = "/var/runtime";

// cgroup_join.cpp: moves this process into spec.cgroup_dir (v2 directory, or the v1 memory
// directory: the same relative cgroup is then joined in every other v1 hierarchy that has it).
Status JoinCgroup(const std::string& cgroup_dir);
// namespaces.cpp: checks we are PID 1 of a new PID namespace (SpawnTemplate's clone), then
// new mount, IPC, UTS and network namespaces, hostname "localhost", loopback up.
Status UnshareNamespaces(const TemplateSpec& spec);
// mounts.cpp: the minimal root (read-only /usr, code at /var/task, runtime at /var/runtime,
// /tmp of EphemeralStorage, minimal /dev, a new /proc) and pivot_root into it.
Status BuildRoot(const TemplateSpec& spec);
// capabilities.cpp: empties the bounding, ambient and inheritable sets (needs root: before
// DropPrivileges); VerifyNoCapabilities checks all sets are empty afterwards.
Status DropCapabilities();
Status VerifyNoCapabilities();
// seccomp.cpp: the syscall filter (EPERM for what a function never needs). Last before exec.
Status InstallSeccomp(bool restore);
// rlimits.cpp: RLIMIT_CORE 0, RLIMIT_NOFILE 1024, RLIMIT_FSIZE = ephemeral storage.
Status ApplyRlimits(const TemplateSpec& spec);
// fds.cpp: closes every descriptor above `last_kept`.
Status CloseInheritedFds(int last_kept);
// environment.cpp: Lambda's variables, then the function's own (reserved names skipped).
// `now` dates the log stream name. Pure: unit tests call it directly.
std::vector<std::string> BuildEnvironment(const TemplateSpec& spec, time_t now);
bool IsReservedEnvironmentName(const std::string& name);
std::string LogStreamName(const TemplateSpec& spec, time_t now);
// privileges.cpp: PR_SET_NO_NEW_PRIVS, then setgroups/setgid/setuid, verified irreversible.
Status SetNoNewPrivs();
Status DropPrivileges(uid_t uid, gid_t gid);
// contain.cpp: the interpreter command line, e.g. {python, "-u", "-s", "-B", "-P", bootstrap}.
std::vector<std::string> RuntimeArgv(const TemplateSpec& spec);

// Runs every step in order and exec's the runtime. Never returns.
[[noreturn]] void Contain(const TemplateSpec& spec);
// Reports a failed stage on fd 4 and fd 2, then _exit(127). Usable before the spec is parsed.
[[noreturn]] void Fail(int32_t stage, const Status& why);

}  // namespace geysir::worker::sandbox
