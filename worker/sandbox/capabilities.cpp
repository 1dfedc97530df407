// Step "capabilities": the function holds no capability, and cannot get one back.
//
// Dropping to a non-zero uid clears the effective and permitted sets (no SECBIT_KEEP_CAPS), but
// not the bounding set, and an exec of a file with file capabilities could refill permitted
// from it. So, while still root (PR_CAPBSET_DROP needs CAP_SETPCAP): empty the bounding set,
// the ambient set and the inheritable set. After the uid change VerifyNoCapabilities() checks
// that all five sets are empty.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

Status GetCaps(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  if (syscall(SYS_capget, &header, data) < 0) return Status::Sys(errno, "capget");
  return Status::Ok();
}

}  // namespace

Status DropCapabilities() {
  // Every capability the kernel knows, not only those our headers name: stop at the first the
  // kernel rejects as unknown.
  for (int cap = 0; cap < 64; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break;
      return Status::Sys(errno, "PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return Status::Sys(errno, "PR_CAP_AMBIENT_CLEAR_ALL");
  // Inheritable empty; effective and permitted stay until the uid change clears them (setgroups,
  // setresgid and setresuid still need CAP_SETGID / CAP_SETUID).
  __user_cap_data_struct data[2];
  GEYSIR_RETURN_IF_ERROR(GetCaps(data));
  data[0].inheritable = data[1].inheritable = 0;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  if (syscall(SYS_capset, &header, data) < 0) return Status::Sys(errno, "capset (inheritable = 0)");
  return Status::Ok();
}

Status VerifyNoCapabilities() {
  __user_cap_data_struct data[2];
  GEYSIR_RETURN_IF_ERROR(GetCaps(data));
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      return Status::Sys(EPERM, "capabilities remain after dropping privileges");
    }
  }
  if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0) return Status::Sys(EPERM, "CAP_SYS_ADMIN still in the bounding set");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) != 0) {
    return Status::Sys(EPERM, "ambient capabilities remain");
  }
  return Status::Ok();
}

}  // namespace geysir::worker::sandbox
