#include "gateway/privileges.h"

#include <grp.h>  // setgroups
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <vector>

namespace geysir::gateway {
namespace {

struct Account {
  uid_t uid;
  gid_t gid;
};

// getpwnam_r with a buffer we own; nullopt when the name is unknown.
std::optional<Account> LookupUser(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return std::nullopt;
  return Account{pw.pw_uid, pw.pw_gid};
}

}  // namespace

Result<DropResult> DropPrivileges(const std::string& user) {
  DropResult r;
  if (geteuid() != 0) {
    r.uid = geteuid();
    r.gid = getegid();
    return r;
  }
  std::optional<Account> account = LookupUser(user);
  r.user = user;
  if (!account) {
    account = LookupUser("nobody");
    if (!account) return Status::Error(Code::kNotFound, "neither user " + user + " nor nobody exists");
    r.user = "nobody";
  }
  if (account->uid == 0) return Status::Invalid("refusing to 'drop' to uid 0 (user " + r.user + ")");

  // No supplementary groups: root's would otherwise survive the uid change.
  if (setgroups(0, nullptr) != 0) return Status::Sys(errno, "setgroups(0)");
  if (setresgid(account->gid, account->gid, account->gid) != 0) return Status::Sys(errno, "setresgid");
  if (setresuid(account->uid, account->uid, account->uid) != 0) return Status::Sys(errno, "setresuid");
  // Nothing we exec could regain privileges (we exec nothing, but this costs one call).
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  // Changing credentials clears the parent-death signal the supervisor set before exec; set it
  // again so a SIGKILLed supervisor does not leave an orphaned gateway holding the port.
  prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);

  if (setuid(0) == 0 || geteuid() == 0) return Status::Internal("privilege drop is reversible: setuid(0) succeeded");
  if (setgid(0) == 0 && account->gid != 0) return Status::Internal("privilege drop is reversible: setgid(0) succeeded");
  r.dropped = true;
  r.uid = account->uid;
  r.gid = account->gid;
  return r;
}

}  // namespace geysir::gateway
