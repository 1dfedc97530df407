// Steps "no_new_privs" and "privileges": the runtime runs as the function's unprivileged
// identity and can never become root again.
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

Status SetNoNewPrivs() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return Status::Sys(errno, "prctl PR_SET_NO_NEW_PRIVS");
  return Status::Ok();
}

Status DropPrivileges(uid_t uid, gid_t gid) {
  // A function never runs as root, whatever the spec says.
  if (uid == 0 || gid == 0) return Status::Sys(EPERM, "refusing to run a function as uid or gid 0");
  // -1 means "leave unchanged" to setresuid/setresgid: it would keep root.
  if (uid == static_cast<uid_t>(-1) || gid == static_cast<gid_t>(-1)) return Status::Sys(EINVAL, "invalid uid or gid -1");
  if (geteuid() == 0) {
    // Supplementary groups first: after setuid we could no longer drop root's groups.
    if (setgroups(0, nullptr) < 0) return Status::Sys(errno, "setgroups(0)");
    if (setresgid(gid, gid, gid) < 0) return Status::Sys(errno, "setresgid " + std::to_string(gid));
    if (setresuid(uid, uid, uid) < 0) return Status::Sys(errno, "setresuid " + std::to_string(uid));
  } else if (getuid() != uid || getgid() != gid) {
    // An unprivileged scheduler (a developer's machine) can only run functions as itself.
    return Status::Sys(EPERM, "not root: cannot switch to uid " + std::to_string(uid));
  }
  // Verify: every id is the target and root cannot be regained.
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0) return Status::Sys(errno, "getresuid");
  if (r != uid || e != uid || s != uid || rg != gid || eg != gid || sg != gid) {
    return Status::Sys(EPERM, "credentials did not change as asked");
  }
  if (setuid(0) == 0 || seteuid(0) == 0) return Status::Sys(EPERM, "could regain root after dropping privileges");
  return Status::Ok();
}

}  // namespace geysir::worker::sandbox
