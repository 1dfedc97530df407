// Dropping root: the gateway faces the internet, so right after its listening socket exists
// (and before it reads a single request) it becomes an unprivileged user for good.
//
// Order matters: supplementary groups and the gid must go while we are still root (afterwards
// we may no longer change them), the uid last; then setuid(0) must fail, proving the drop is
// irreversible (no saved-set-uid 0 left behind). Not running as root: nothing to drop.
//
// Thread safety: call once from main, before other threads exist (set*id are process-wide).
#pragma once

#include <string>
#include <sys/types.h>

#include "base/status.h"

namespace geysir::gateway {

struct DropResult {
  bool dropped = false;   // false when we were not root
  std::string user;       // the user we became
  uid_t uid = 0;
  gid_t gid = 0;
};

// Becomes `user` with its primary group. When that user does not exist, becomes "nobody" (the
// supervisor makes the same choice and gives run/ that user's group, so the sockets stay
// reachable). Errors are fatal to the caller: a gateway that stays root must not serve.
Result<DropResult> DropPrivileges(const std::string& user);

}  // namespace geysir::gateway
