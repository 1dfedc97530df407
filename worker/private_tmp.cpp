#include "worker/private_tmp.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <thread>

#include "base/unique_fd.h"

namespace geysir::worker {

namespace {

// linux/pidfd.h of Linux 6.11; Debian 12's headers predate it.
#ifndef PIDFD_GET_MNT_NAMESPACE
#define PIDFD_GET_IPC_NAMESPACE _IO(0xFF, 2)
#define PIDFD_GET_MNT_NAMESPACE _IO(0xFF, 3)
#define PIDFD_GET_USER_NAMESPACE _IO(0xFF, 9)
#endif

// A namespace of `pid`: from its pidfd where the kernel can (Linux >= 6.11), else through
// /proc/<pid>/ns. The pidfd way costs a third of the path walk on the CI VM (a new child's /proc
// entries are built on first look-up), and names the process that `pidfd` was opened for, not
// whoever holds the pid by now.
Result<UniqueFd> OpenNamespace(int pidfd, pid_t pid, unsigned long pidfd_request, const char* kind) {
  if (pidfd >= 0) {
    UniqueFd fd(ioctl(pidfd, pidfd_request, 0));
    if (fd) return fd;
    if (errno != ENOTTY && errno != EINVAL) {
      return Status::Sys(errno, std::string("the ") + kind + " namespace of pid " + std::to_string(pid));
    }
  }
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  return fd;
}

// Namespaces are told apart by their nsfs inode (what `ls -l /proc/PID/ns` shows).
Result<ino_t> NamespaceId(int fd, const char* what) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Status::Sys(errno, std::string("fstat ") + what);
  return st.st_ino;
}

// The same without opening it.
Result<ino_t> NamespaceIdOf(pid_t pid, const char* kind) {
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return Status::Sys(errno, "stat " + path);
  return st.st_ino;
}

// NS_GET_USERNS / NS_GET_PARENT: the user namespace that owns `fd`'s namespace, or its parent.
Result<ino_t> RelatedNamespaceId(int fd, unsigned long request, const char* what) {
  UniqueFd related(ioctl(fd, request));
  if (!related) return Status::Sys(errno, what);
  return NamespaceId(related.get(), what);
}

// `name` under the child's /proc directory, open as `dir` at `dir_path` (looked up once for the
// three maps: the look-up of a new pid's /proc entry is the expensive part).
Status WriteProcFile(int dir, const std::string& dir_path, const char* name, const std::string& text) {
  UniqueFd fd(openat(dir, name, O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + dir_path + "/" + name);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::Sys(errno, "write '" + text + "' to " + dir_path + "/" + name);
  }
  return Status::Ok();
}

// What a thread that mounts children's /tmp keeps: a private fs_struct (setns(CLONE_NEWNS)
// refuses a thread that shares its root and working directory with others) and its own mount
// namespace to come back to, so that it holds no child's namespace (and tmpfs) alive between
// two mounts. Per thread by nature: thread_local, never shared.
struct MountThreadState {
  bool ready = false;
  UniqueFd home;
};

Status PrepareMountThread(MountThreadState& state) {
  if (state.ready) return Status::Ok();
  if (unshare(CLONE_FS) < 0) return Status::Sys(errno, "unshare(CLONE_FS) for the /tmp mount thread");
  UniqueFd home(open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!home) return Status::Sys(errno, "open /proc/thread-self/ns/mnt");
  state.home = std::move(home);
  state.ready = true;
  return Status::Ok();
}

// Enters the child's mount namespace, mounts, and comes back: only this thread ever sees the
// child's file system.
Status MountIn(int mnt_ns, const std::string& options) {
  thread_local MountThreadState state;
  GEYSIR_RETURN_IF_ERROR(PrepareMountThread(state));
  if (setns(mnt_ns, CLONE_NEWNS) < 0) return Status::Sys(errno, "setns into the child's mount namespace");
  Status result;
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) < 0) {
    // setns put this thread's root at the sandbox's root, where /tmp is a directory of the
    // read-only root that the function can neither replace nor mount over (seccomp).
    result = Status::Sys(errno, "mount tmpfs (" + options + ") on the child's /tmp");
  }
  if (setns(state.home.get(), CLONE_NEWNS) < 0) {
    // Cannot happen for root (the namespace is our own); if it did, this thread would stay in
    // the child's file system: refuse to go on rather than mount the next /tmp from there.
    state.ready = false;
    return Status::Sys(errno, "setns back into the scheduler's mount namespace", Code::kInternal);
  }
  return result;
}

}  // namespace

Result<NamespaceIds> TemplateNamespaces(pid_t template_pid) {
  auto mnt = NamespaceIdOf(template_pid, "mnt");
  if (!mnt.ok()) return mnt.status();
  auto user = NamespaceIdOf(template_pid, "user");
  if (!user.ok()) return user.status();
  return NamespaceIds{*mnt, *user};
}

Status MountPrivateTmpOnThisThread(const PrivateTmpRequest& request) {
  const pid_t child = request.child, template_pid = request.template_pid;
  const uid_t uid = request.uid;
  const gid_t gid = request.gid;
  // The child by pidfd (if this kernel has pidfd_open, Linux >= 5.3; else by pid alone).
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
  if (!pidfd && errno == ESRCH) return Status::Sys(errno, "the child " + std::to_string(child) + " is gone");
  auto child_mnt = OpenNamespace(pidfd.get(), child, PIDFD_GET_MNT_NAMESPACE, "mnt");
  if (!child_mnt.ok()) return child_mnt.status();
  auto cm = NamespaceId(child_mnt->get(), "the child's mount namespace");
  if (!cm.ok()) return cm.status();
  NamespaceIds template_ns = request.template_ns;
  if (template_ns.mnt == 0 || template_ns.user == 0) {
    auto looked_up = TemplateNamespaces(template_pid);
    if (!looked_up.ok()) return looked_up.status();
    template_ns = *looked_up;
  }
  if (*cm == template_ns.mnt) return Status::Unavailable("the child shares its template's mount namespace (no user namespace for it)");
  // What the child must have made, and nothing else: a mount namespace owned by the user
  // namespace the child is in, itself directly below the template's. Anything else (a namespace
  // of another process, a deeper nesting) is refused: the mount below goes exactly where we
  // checked, and the maps name that user namespace.
  auto child_user = OpenNamespace(pidfd.get(), child, PIDFD_GET_USER_NAMESPACE, "user");
  if (!child_user.ok()) return child_user.status();
  auto cu = NamespaceId(child_user->get(), "the child's user namespace");
  if (!cu.ok()) return cu.status();
  UniqueFd owner(ioctl(child_mnt->get(), NS_GET_USERNS));
  if (!owner) return Status::Sys(errno, "NS_GET_USERNS (the child's mount namespace)");
  auto ou = NamespaceId(owner.get(), "the owner of the child's mount namespace");
  if (!ou.ok()) return ou.status();
  auto parent = RelatedNamespaceId(owner.get(), NS_GET_PARENT, "NS_GET_PARENT (the child's user namespace)");
  if (!parent.ok()) return parent.status();
  if (*ou != *cu || *parent != template_ns.user) {
    return Status::Sys(EPERM, "the child's namespaces are not a user namespace below its template's owning a mount namespace");
  }
  // Its IPC namespace too must be the one it made with them (owned by its user namespace): in
  // the template's, System V and POSIX IPC objects would outlive the invocation and be seen by
  // the next one.
  auto child_ipc = OpenNamespace(pidfd.get(), child, PIDFD_GET_IPC_NAMESPACE, "ipc");
  if (!child_ipc.ok()) return child_ipc.status();
  auto ipc_owner = RelatedNamespaceId(child_ipc->get(), NS_GET_USERNS, "NS_GET_USERNS (the child's IPC namespace)");
  if (!ipc_owner.ok()) return ipc_owner.status();
  if (*ipc_owner != *cu) return Status::Sys(EPERM, "the child's IPC namespace is not one of its own");

  // The child's own ids map to themselves, and nothing else is mapped: it is not root in its user
  // namespace, so an exec could not give it capabilities there, and getuid() reads as before.
  // "deny" for setgroups first, as for an unprivileged map (it may not drop its group list).
  const std::string proc = "/proc/" + std::to_string(child);
  UniqueFd dir(open(proc.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::Sys(errno, "open " + proc);
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(dir.get(), proc, "uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n"));
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(dir.get(), proc, "setgroups", "deny"));
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(dir.get(), proc, "gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n"));

  const uint64_t mb = request.size_mb == 0 ? 512 : request.size_mb;
  return MountIn(child_mnt->get(), "size=" + std::to_string(mb) + "m,mode=1777");
}

Status MountPrivateTmp(const PrivateTmpRequest& request) {
  Status result;
  try {
    std::thread t([&] { result = MountPrivateTmpOnThisThread(request); });
    t.join();
  } catch (const std::system_error& e) {
    return Status::Sys(e.code().value(), "starting a /tmp mount thread", Code::kResourceExhausted);
  }
  return result;
}

}  // namespace geysir::worker
