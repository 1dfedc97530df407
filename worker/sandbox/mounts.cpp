// Step "mounts": a minimal root, built in the template's own mount namespace, then pivot_root
// into it. What the function sees (worker/sandbox/README.md has the table and the reasons):
//
//   /usr, and /bin /sbin /lib* as on the host (symlinks into /usr on Debian)   read-only
//   /etc: passwd, group, hosts, hostname written here; ld.so.cache, CA certificates, a few
//         public tables bound read-only; resolv.conf only with egress networking
//   /var/task     the function's code, read-only           (LAMBDA_TASK_ROOT)
//   /var/runtime  the runtime (bootstrap.py), read-only     (LAMBDA_RUNTIME_DIR)
//                 (both read-only overlays: /proc/self/mountinfo names no host path for them)
//   /tmp          tmpfs of EphemeralStorage MB, the only writable place
//   /dev          null zero full random urandom (host nodes bound), fd/std* symlinks
//   /proc         a new procfs of the template's PID namespace
//
// Nothing else of the host is reachable: the old root is detached (umount2 MNT_DETACH) after
// pivot_root, and the new root is read-only. All mounts are nosuid (no_new_privs makes setuid
// bits inert anyway) and, except the device nodes, nodev.
//
// Between fork and exec rules do not apply here (geysir-worker was exec'd; this is ordinary
// code), but a failure must name the path it failed on.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

// Where the new root is assembled, in our private mount namespace (the host's /tmp is not
// touched: the tmpfs is mounted over it only in here). Sources below /tmp (a test's code
// directory) are opened before, and bound through /proc/self/fd.
constexpr const char* kStage = "/tmp";

constexpr unsigned long kCommon = MS_NOSUID | MS_NODEV;

Status Mount(const char* src, const std::string& dst, const char* type, unsigned long flags, const char* data) {
  if (mount(src, dst.c_str(), type, flags, data) < 0) {
    return Status::Sys(errno, std::string("mount ") + (type ? type : (src ? src : "")) + " on " + dst);
  }
  return Status::Ok();
}

Status MkDir(const std::string& path, mode_t mode = 0755) {
  if (mkdir(path.c_str(), mode) < 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  return Status::Ok();
}

Status MkDirs(const std::string& root, const std::string& relative) {
  for (size_t pos = 1; pos <= relative.size(); ++pos) {
    if (pos == relative.size() || relative[pos] == '/') GEYSIR_RETURN_IF_ERROR(MkDir(root + relative.substr(0, pos)));
  }
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& text, mode_t mode = 0644) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return Status::Sys(errno, "create " + path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) return Status::Sys(errno, "write " + path);
  return Status::Ok();
}

// Binds `src` (a path or /proc/self/fd/N) read-only on `dst`, creating the mount point as a
// directory or an empty file to match. A bind mount ignores MS_RDONLY on its first call: the
// flags take effect in the remount.
Status BindReadOnly(const std::string& src, const std::string& dst, unsigned long extra = MS_NODEV) {
  struct stat st;
  if (stat(src.c_str(), &st) < 0) return Status::Sys(errno, "stat " + src);
  if (S_ISDIR(st.st_mode)) {
    GEYSIR_RETURN_IF_ERROR(MkDir(dst));
  } else {
    GEYSIR_RETURN_IF_ERROR(WriteFile(dst, "", 0444));
  }
  GEYSIR_RETURN_IF_ERROR(Mount(src.c_str(), dst, nullptr, MS_BIND, nullptr));
  return Mount(nullptr, dst, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | extra, nullptr);
}

// Shows the directory open as `dir` read-only on `dst`, as a read-only overlay rather than a bind
// mount. A bind mount's line in /proc/self/mountinfo names its source's path on the host's file
// system (the data directory, the install or build tree); an overlay is a file system of its own
// whose root is the directory, and its options name the layers as they were given:
// /proc/self/fd/N, which names nothing once these descriptors are closed. A read-only overlay
// needs two layers: the second is `dst` itself, an empty directory of the staging tmpfs that the
// overlay then covers. (Not a directory removed afterwards: a merged directory with a deleted
// layer lists as empty, and Python's import system lists the directories it imports from.)
//
// A kernel without overlayfs (ENODEV): a bind mount, which shows the path but walls off the
// same files.
Status ShowReadOnly(int dir, const std::string& dst) {
  GEYSIR_RETURN_IF_ERROR(MkDir(dst));
  UniqueFd empty(open(dst.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!empty) return Status::Sys(errno, "open " + dst);
  const std::string options =
      "lowerdir=/proc/self/fd/" + std::to_string(dir) + ":/proc/self/fd/" + std::to_string(empty.get());
  if (mount("geysir", dst.c_str(), "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
    return Status::Ok();
  }
  if (errno != ENODEV) return Status::Sys(errno, "mount overlay (" + options + ") on " + dst);
  return BindReadOnly("/proc/self/fd/" + std::to_string(dir), dst);
}

// /bin, /lib, ... : the same symlink as on the host (Debian's merged /usr), or a read-only bind
// of the directory when the host has a real one. Absent on the host: absent here.
Status MirrorTopLevel(const std::string& root, const char* name) {
  std::string host = std::string("/") + name;
  struct stat st;
  if (lstat(host.c_str(), &st) < 0) return errno == ENOENT ? Status::Ok() : Status::Sys(errno, "lstat " + host);
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(host.c_str(), target, sizeof target - 1);
    if (n < 0) return Status::Sys(errno, "readlink " + host);
    target[n] = '\0';
    if (symlink(target, (root + host).c_str()) < 0) return Status::Sys(errno, "symlink " + root + host);
    return Status::Ok();
  }
  if (!S_ISDIR(st.st_mode)) return Status::Ok();
  return BindReadOnly(host, root + host);
}

Status BuildEtc(const std::string& root, const TemplateSpec& spec) {
  const std::string etc = root + "/etc";
  GEYSIR_RETURN_IF_ERROR(MkDir(etc));
  // Written, not bound: the host's passwd/group name the host's users. The function's uid gets
  // Lambda's user name, so getpass.getuser() and `id` work.
  const std::string uid = std::to_string(spec.uid), gid = std::to_string(spec.gid);
  GEYSIR_RETURN_IF_ERROR(WriteFile(etc + "/passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                                    "sbx_user1051:x:" + uid + ":" + gid + "::/tmp:/usr/sbin/nologin\n"
                                                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
  GEYSIR_RETURN_IF_ERROR(WriteFile(etc + "/group", "root:x:0:\nsbx_user1051:x:" + gid + ":\nnogroup:x:65534:\n"));
  GEYSIR_RETURN_IF_ERROR(WriteFile(etc + "/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
  GEYSIR_RETURN_IF_ERROR(WriteFile(etc + "/hostname", "localhost\n"));
  // Public, read-only: the loader's cache (without it every library is searched for), CA
  // certificates (ssl/certs links into /usr/share/ca-certificates) and OpenSSL's config, and
  // tables Python's standard library reads (mimetypes, socket.getservbyname, time zones).
  // Not /etc/ssl/private, not shadow, not anything else.
  // /etc/python3.X holds Debian's sitecustomize.py (linked from /usr/lib/python3.X).
  const std::string python_etc = spec.python.substr(spec.python.rfind('/') + 1);
  for (const std::string name : {"ld.so.cache", "ssl/certs", "ssl/openssl.cnf", "mime.types", "services", "protocols",
                                 "localtime", "nsswitch.conf", python_etc.c_str()}) {
    if (name.empty() || name.find("..") != std::string::npos) continue;
    std::string host = "/etc/" + name;
    struct stat st;
    if (stat(host.c_str(), &st) < 0) continue;  // optional: not every host has each
    std::string rel = "/etc/" + name;
    size_t slash = rel.rfind('/');
    GEYSIR_RETURN_IF_ERROR(MkDirs(root, rel.substr(0, slash)));
    GEYSIR_RETURN_IF_ERROR(BindReadOnly(host, root + rel));
  }
  // Name resolution is only of use with a route out.
  if (spec.network == "egress") {
    struct stat st;
    if (stat("/etc/resolv.conf", &st) == 0) GEYSIR_RETURN_IF_ERROR(BindReadOnly("/etc/resolv.conf", etc + "/resolv.conf"));
  }
  return Status::Ok();
}

Status BuildDev(const std::string& root) {
  const std::string dev = root + "/dev";
  GEYSIR_RETURN_IF_ERROR(MkDir(dev));
  GEYSIR_RETURN_IF_ERROR(Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"));
  // The host's own nodes, bound: mknod would need the device cgroup (v1) to allow it, and a
  // bind carries exactly these five devices and no others. No tty, no pts, no shm (Lambda has
  // no /dev/shm either).
  for (const char* name : {"null", "zero", "full", "random", "urandom"}) {
    GEYSIR_RETURN_IF_ERROR(BindReadOnly(std::string("/dev/") + name, dev + "/" + name, /*extra=*/0));
  }
  struct Link {
    const char* name;
    const char* target;
  };
  for (const Link& l : {Link{"fd", "/proc/self/fd"}, Link{"stdin", "/proc/self/fd/0"}, Link{"stdout", "/proc/self/fd/1"},
                        Link{"stderr", "/proc/self/fd/2"}}) {
    if (symlink(l.target, (dev + "/" + l.name).c_str()) < 0) return Status::Sys(errno, std::string("symlink /dev/") + l.name);
  }
  return Mount(nullptr, dev, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755");
}

}  // namespace

Status BuildRoot(const TemplateSpec& spec) {
  // No mount event of ours propagates back to the host (or to another function), and none of
  // the host's reaches us.
  GEYSIR_RETURN_IF_ERROR(Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));

  // The sources, opened before the staging tmpfs can hide them.
  UniqueFd code(open(spec.function.code_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!code) return Status::Sys(errno, "open the code directory " + spec.function.code_dir);
  UniqueFd runtime(open(spec.runtime_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!runtime) return Status::Sys(errno, "open the runtime directory " + spec.runtime_dir);

  const std::string root = kStage;
  GEYSIR_RETURN_IF_ERROR(Mount("tmpfs", root, "tmpfs", kCommon, "size=1m,nr_inodes=512,mode=0755"));

  GEYSIR_RETURN_IF_ERROR(BindReadOnly("/usr", root + "/usr"));
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    GEYSIR_RETURN_IF_ERROR(MirrorTopLevel(root, name));
  }
  GEYSIR_RETURN_IF_ERROR(BuildEtc(root, spec));
  GEYSIR_RETURN_IF_ERROR(MkDirs(root, "/var"));
  GEYSIR_RETURN_IF_ERROR(ShowReadOnly(code.get(), root + kTaskRoot));
  GEYSIR_RETURN_IF_ERROR(ShowReadOnly(runtime.get(), root + kRuntimeRoot));

  // The function's scratch space: its EphemeralStorage, and no more.
  const uint64_t mb = spec.function.ephemeral_storage_mb == 0 ? 512 : spec.function.ephemeral_storage_mb;
  GEYSIR_RETURN_IF_ERROR(MkDir(root + "/tmp"));
  const std::string tmp_opts = "size=" + std::to_string(mb) + "m,mode=1777";
  GEYSIR_RETURN_IF_ERROR(Mount("tmpfs", root + "/tmp", "tmpfs", kCommon, tmp_opts.c_str()));

  GEYSIR_RETURN_IF_ERROR(BuildDev(root));

  // A procfs of our PID namespace (we are its init: SpawnTemplate's clone), so /proc shows
  // this function's processes only; it has to be mounted by a process inside that namespace,
  // which is why this is not done by the scheduler.
  GEYSIR_RETURN_IF_ERROR(MkDir(root + "/proc"));
  GEYSIR_RETURN_IF_ERROR(Mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));

  // pivot_root(".", "."): the old root ends up stacked under the new one and is detached at
  // once, so no path (and no /proc/1/root) leads back to the host's tree.
  if (chdir(root.c_str()) < 0) return Status::Sys(errno, "chdir " + root);
  if (syscall(SYS_pivot_root, ".", ".") < 0) return Status::Sys(errno, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0) return Status::Sys(errno, "umount2 the old root");
  if (chdir("/") < 0) return Status::Sys(errno, "chdir /");
  // The root itself read-only last: nothing but /tmp is writable.
  return Mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kCommon, nullptr);
}

}  // namespace geysir::worker::sandbox
