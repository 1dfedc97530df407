#include "worker/private_tmp.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <thread>

#include "proto/unique_fd.h"

namespace geysir::worker {

namespace {

Result<UniqueFd> OpenNamespace(pid_t pid, const char* kind) {
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

// NS_GET_USERNS / NS_GET_PARENT: the user namespace that owns `fd`'s namespace, or its parent.
Result<ino_t> RelatedNamespaceId(int fd, unsigned long request, const char* what) {
  UniqueFd related(ioctl(fd, request));
  if (!related) return Status::Sys(errno, what);
  return NamespaceId(related.get(), what);
}

Status WriteProcFile(pid_t pid, const char* name, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::Sys(errno, "write '" + text + "' to " + path);
  }
  return Status::Ok();
}

// Mounts the tmpfs from a thread of its own: setns(CLONE_NEWNS) needs a private fs_struct
// (unshare(CLONE_FS)), and only this thread ever enters the child's mount namespace; it exits
// right after, so the scheduler's other threads never see the child's file system.
Status MountFromThread(int mnt_ns, const std::string& options) {
  Status result;
  try {
    std::thread t([&] {
      if (unshare(CLONE_FS) < 0) {
        result = Status::Sys(errno, "unshare(CLONE_FS)");
      } else if (setns(mnt_ns, CLONE_NEWNS) < 0) {
        result = Status::Sys(errno, "setns into the child's mount namespace");
      } else if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) < 0) {
        // setns put this thread's root at the sandbox's root, where /tmp is a directory of the
        // read-only root that the function can neither replace nor mount over (seccomp).
        result = Status::Sys(errno, "mount tmpfs (" + options + ") on the child's /tmp");
      }
    });
    t.join();
  } catch (const std::system_error& e) {
    return Status::Sys(e.code().value(), "starting the /tmp mount thread", Code::kResourceExhausted);
  }
  return result;
}

}  // namespace

Status MountPrivateTmp(pid_t child, pid_t template_pid, uid_t uid, gid_t gid, uint64_t size_mb) {
  auto child_mnt = OpenNamespace(child, "mnt");
  if (!child_mnt.ok()) return child_mnt.status();
  auto child_user = OpenNamespace(child, "user");
  if (!child_user.ok()) return child_user.status();
  auto template_mnt = OpenNamespace(template_pid, "mnt");
  if (!template_mnt.ok()) return template_mnt.status();
  auto template_user = OpenNamespace(template_pid, "user");
  if (!template_user.ok()) return template_user.status();

  auto cm = NamespaceId(child_mnt->get(), "the child's mount namespace");
  auto cu = NamespaceId(child_user->get(), "the child's user namespace");
  auto tm = NamespaceId(template_mnt->get(), "the template's mount namespace");
  auto tu = NamespaceId(template_user->get(), "the template's user namespace");
  for (const auto* r : {&cm, &cu, &tm, &tu}) {
    if (!r->ok()) return r->status();
  }
  if (*cm == *tm) return Status::Unavailable("the child shares its template's mount namespace (no user namespace for it)");
  // What the child must have made, and nothing else: a mount namespace owned by a user namespace
  // of its own, itself directly below the template's. Anything else (a namespace of another
  // process, a deeper nesting) is refused: the mount below goes exactly where we checked.
  auto owner = RelatedNamespaceId(child_mnt->get(), NS_GET_USERNS, "NS_GET_USERNS (the child's mount namespace)");
  if (!owner.ok()) return owner.status();
  auto parent = RelatedNamespaceId(child_user->get(), NS_GET_PARENT, "NS_GET_PARENT (the child's user namespace)");
  if (!parent.ok()) return parent.status();
  if (*owner != *cu || *parent != *tu) {
    return Status::Sys(EPERM, "the child's namespaces are not a user namespace below its template's owning a mount namespace");
  }

  // The child's own ids map to themselves, and nothing else is mapped: it is not root in its user
  // namespace, so an exec could not give it capabilities there, and getuid() reads as before.
  // "deny" for setgroups first, as for an unprivileged map (it may not drop its group list).
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(child, "uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n"));
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(child, "setgroups", "deny"));
  GEYSIR_RETURN_IF_ERROR(WriteProcFile(child, "gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n"));

  const uint64_t mb = size_mb == 0 ? 512 : size_mb;
  return MountFromThread(child_mnt->get(), "size=" + std::to_string(mb) + "m,mode=1777");
}

}  // namespace geysir::worker
