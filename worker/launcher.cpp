#include "worker/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/json_bounds.h"
#include "worker/template_spec.h"

extern char** environ;

namespace geysir::worker {

namespace {

// Largest control message either side sends; an init_error with a long stack trace is the
// biggest (bootstrap.py truncates its error to stay below this).
constexpr size_t kMaxControlMessage = 256 * 1024;
constexpr size_t kMaxPassedFds = 8;

Status SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return Status::Sys(errno, "fcntl O_NONBLOCK");
  return Status::Ok();
}

// The scheduler's child between fork and exec. Only async-signal-safe calls (a lock another
// thread held at fork() stays locked in the child, docs/style.md, "Errors"): no allocation, no
// logging, no exceptions. Every argument was prepared before fork().
[[noreturn]] void ExecLauncher(const char* path, char* const argv[], int devnull, int log_w, int control,
                               int err_w) {
  // Fresh signal state: the scheduler's mask and ignored signals survive exec otherwise, and the
  // template (python) must start from the defaults.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  // Move every source above the target range first, so a source that happens to be fd 0..4
  // is not overwritten by an earlier dup2 (all copies are close-on-exec; dup2 clears that flag
  // on the targets only).
  int err_hi = fcntl(err_w, F_DUPFD_CLOEXEC, 10);
  int src[5] = {devnull, log_w, log_w, control, err_hi};
  int hi[5];
  for (int i = 0; i < 5; ++i) {
    hi[i] = src[i] < 0 ? -1 : fcntl(src[i], F_DUPFD_CLOEXEC, 10);
    if (hi[i] < 0) {
      LaunchFailure f{kStageExecLauncher, errno};
      if (err_hi >= 0) (void)!write(err_hi, &f, sizeof f);
      _exit(127);
    }
  }
  for (int i = 0; i < 5; ++i) {
    if (dup2(hi[i], i) < 0) {
      LaunchFailure f{kStageExecLauncher, errno};
      (void)!write(err_hi, &f, sizeof f);
      _exit(127);
    }
  }
  execve(path, argv, environ);
  LaunchFailure f{kStageExecLauncher, errno};
  (void)!write(4, &f, sizeof f);
  _exit(127);
}

}  // namespace

const char* LaunchStageName(int32_t stage) {
  switch (stage) {
    case kStageExecLauncher: return "exec-launcher";
    case kStageParseSpec: return "parse-spec";
    case kStageCgroup: return "cgroup";
    case kStageNamespaces: return "namespaces";
    case kStageMounts: return "mounts";
    case kStageRlimits: return "rlimits";
    case kStageDropPrivileges: return "drop-privileges";
    case kStageSeccomp: return "seccomp";
    case kStageChdir: return "chdir";
    case kStageExecRuntime: return "exec-runtime";
    case kStageFds: return "fds";
    case kStageEnvironment: return "environment";
    case kStageCapabilities: return "capabilities";
  }
  return "unknown";
}

Result<TemplateProcess> SpawnTemplate(const TemplateSpec& spec) {
  if (spec.worker_binary.empty() || spec.worker_binary[0] != '/') {
    return Status::Invalid("worker_binary must be an absolute path");
  }
  // Everything the child needs is built before fork(): it may not allocate afterwards.
  std::string spec_json = TemplateSpecToJson(spec);
  std::string flag = "--spec";
  std::string path = spec.worker_binary;
  char* argv[] = {path.data(), flag.data(), spec_json.data(), nullptr};

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return Status::Sys(errno, "socketpair");
  UniqueFd control(sv[0]), control_child(sv[1]);
  // Every message carries its sender's pid as the kernel sees it from here: children announce
  // themselves ("forked") with a pid that needs no trust in what they say, and that is right
  // even when they live in a PID namespace of their own.
  int one = 1;
  if (setsockopt(control.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
    return Status::Sys(errno, "setsockopt SO_PASSCRED (control socket)");
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Status::Sys(errno, "pipe2 (init log)");
  UniqueFd log_r(p[0]), log_w(p[1]);
  if (pipe2(p, O_CLOEXEC) < 0) return Status::Sys(errno, "pipe2 (error pipe)");
  UniqueFd err_r(p[0]), err_w(p[1]);
  UniqueFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Status::Sys(errno, "open /dev/null");

  // With the sandbox the launcher starts as PID 1 of a new PID namespace: clone() with
  // CLONE_NEWPID and no stack behaves as fork() otherwise. It has to be here, not in contain():
  // unshare(CLONE_NEWPID) only moves the caller's future children, and the template must stay
  // the scheduler's direct child (it is reaped here, and its pid is what the scheduler knows).
  // Everything else (mount, IPC, UTS, network) is unshared by contain() itself.
  pid_t pid = spec.isolate ? static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0))
                           : fork();
  if (pid < 0) {
    return Status::Sys(errno, spec.isolate ? "clone CLONE_NEWPID (template launcher)" : "fork (template launcher)",
                       Code::kResourceExhausted);
  }
  if (pid == 0) ExecLauncher(path.c_str(), argv, devnull.get(), log_w.get(), control_child.get(), err_w.get());

  // Parent: the child's ends close here (UniqueFd), so EOF on the pipes tracks the child.
  TemplateProcess t;
  t.pid = pid;
  t.control = std::move(control);
  t.init_log = std::move(log_r);
  t.error_pipe = std::move(err_r);
  for (int fd : {t.control.get(), t.init_log.get(), t.error_pipe.get()}) {
    Status st = SetNonBlocking(fd);
    if (!st.ok()) {
      // The launcher is ours to reap if we cannot hand it over.
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return st;
    }
  }
  return t;
}

Status SendControlMessage(int control_fd, const nlohmann::json& message, const int* fds, size_t nfds) {
  if (nfds > kMaxPassedFds) return Status::Invalid("too many fds for one control message");
  std::string text = message.dump();
  if (text.size() > kMaxControlMessage) return Status::Invalid("control message too large");
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  if (nfds > 0) {
    std::memset(cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(control_fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return Status::Ok();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Sys(errno, "send control message", Code::kUnavailable);
    return Status::Sys(errno, "send control message", Code::kUnavailable);
  }
}

Result<ControlMessage> ReceiveControlMessage(int control_fd) {
  // One buffer per thread, reused: the scheduler receives on its loop thread only.
  thread_local std::vector<char> buffer(kMaxControlMessage);
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxPassedFds) + CMSG_SPACE(sizeof(ucred))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = recvmsg(control_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Sys(errno, "receive control message", Code::kUnavailable);
  // Only a restore-mode child's "forked" carries a descriptor (its userfaultfd): the first one is
  // kept for the caller to take or drop, any others are closed rather than leaked.
  pid_t sender = 0;
  UniqueFd passed;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      sender = cred.pid;
    }
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (!passed) {
          passed.Reset(fd);
        } else {
          close(fd);
        }
      }
    }
  }
  if (n == 0) return Status::Unavailable("template closed the control socket");
  if (msg.msg_flags & MSG_TRUNC) return Status::Invalid("control message too large");
  // Written by the function's own init code as much as by the runtime: bounded before it is
  // parsed, since the scheduler dumps parts of it (an init_error's "error") again.
  nlohmann::json j = ParseUntrustedJsonOrDiscarded(std::string_view(buffer.data(), static_cast<size_t>(n)));
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Invalid("control message is not a JSON object with a type");
  }
  return ControlMessage{std::move(j), sender, std::move(passed)};
}

}  // namespace geysir::worker
