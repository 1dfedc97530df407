// Step "namespaces": the template gets its own mount, IPC, UTS and network namespaces (the PID
// namespace was made by SpawnTemplate's clone: see launcher.cpp). Every forked child shares
// its template's namespaces; nothing is shared with the host or with another function.
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

// A fresh network namespace has only a loopback interface, and it is down. Up, it lets a
// function talk to itself (a local server and its client in one invocation) and nothing else.
Status BringUpLoopback() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return Status::Sys(errno, "socket (to configure lo)");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return Status::Sys(errno, "SIOCGIFFLAGS lo");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) return Status::Sys(errno, "SIOCSIFFLAGS lo up");
  return Status::Ok();
}

}  // namespace

Status UnshareNamespaces(const TemplateSpec& spec) {
  (void)spec;
  // SpawnTemplate cloned us into a new PID namespace; if we are not its init, the /proc we
  // mount later would not be ours to show, and orphans would not be reaped by the template.
  if (getpid() != 1) return Status::Sys(EINVAL, "not PID 1 of a new PID namespace (pid " + std::to_string(getpid()) + ")");
  // mount: the root we build (mounts.cpp) is seen by this template and its children only.
  // IPC:   System V semaphores, shared memory and message queues, and POSIX message queues,
  //        private: no key collides with (or opens) another function's or the host's.
  // UTS:   our own hostname, so the host's name does not leak and sethostname is contained.
  // net:   no interface but loopback. Egress (worker/sandbox/network*) adds a veth pair into
  //        this namespace from the scheduler's side; the namespace itself is always new.
  if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) < 0) {
    return Status::Sys(errno, "unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET)");
  }
  static constexpr char kHostname[] = "localhost";
  if (sethostname(kHostname, sizeof kHostname - 1) < 0) return Status::Sys(errno, "sethostname");
  if (setdomainname("", 0) < 0) return Status::Sys(errno, "setdomainname");
  return BringUpLoopback();
}

}  // namespace geysir::worker::sandbox
