#include "scheduler/process_sandbox.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "proto/frame.h"
#include "base/json_bounds.h"
#include "base/log.h"
#include "base/loop_worker.h"
#include "scheduler/lambda_format.h"
#include "worker/launcher.h"
#include "worker/private_tmp.h"
#include "worker/restore/restore.h"

namespace geysir::scheduler {

namespace {

Status SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return Status::Sys(errno, "fcntl O_NONBLOCK");
  return Status::Ok();
}

// A uv_poll_t watching one descriptor, which it owns. Non-movable; Close() stops it for good
// (no callback after it) and the handle and the descriptor are freed in the close callback.
class FdWatch {
 public:
  using Callback = std::function<void(int status, int events)>;

  static FdWatch* Open(uv_loop_t* loop, UniqueFd fd) {
    auto* w = new FdWatch(std::move(fd));
    if (uv_poll_init(loop, &w->poll_, w->fd_.get()) != 0) {
      delete w;
      return nullptr;
    }
    w->poll_.data = w;
    return w;
  }
  int fd() const { return fd_.get(); }
  void Start(int events, Callback cb) {
    cb_ = std::move(cb);
    SetEvents(events);
  }
  void SetEvents(int events) {
    if (closing_ || events == events_) return;
    events_ = events;
    if (events == 0) {
      uv_poll_stop(&poll_);
    } else {
      uv_poll_start(&poll_, events, OnPoll);
    }
  }
  // Safe from inside the callback; the watch is freed later, in OnClose.
  static void Close(FdWatch*& w) {
    if (w == nullptr) return;
    FdWatch* self = w;
    w = nullptr;
    if (self->closing_) return;
    self->closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&self->poll_), OnClose);
  }

 private:
  explicit FdWatch(UniqueFd fd) : fd_(std::move(fd)) {}
  static void OnPoll(uv_poll_t* p, int status, int events) {
    auto* self = static_cast<FdWatch*>(p->data);
    if (self->closing_ || !self->cb_) return;
    self->cb_(status, events);
  }
  static void OnClose(uv_handle_t* h) { delete static_cast<FdWatch*>(h->data); }

  uv_poll_t poll_{};
  UniqueFd fd_;
  Callback cb_;
  int events_ = 0;
  bool closing_ = false;
};

// Reads everything available from a non-blocking fd into `out` (up to `cap` bytes kept; the
// rest is counted in `dropped`). Returns true at EOF (or on a hard error).
bool ReadAvailable(int fd, std::string& out, size_t cap, size_t& dropped) {
  char buf[65536];
  for (int round = 0; round < 64; ++round) {  // bounded: the loop comes back for more
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      size_t keep = out.size() >= cap ? 0 : std::min(static_cast<size_t>(n), cap - out.size());
      out.append(buf, keep);
      dropped += static_cast<size_t>(n) - keep;
      continue;
    }
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return !(errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return false;
}

// Signals go through pidfds (Linux >= 5.3): a pidfd names one process for good, so a signal
// sent through it reaches that process or, once it is gone, no one. A pid number is only safe
// to signal while the process is an unreaped child of ours: the processes here (a template's
// children, what they start) are reaped by their template, and the moment one is, its number may
// be handed to any new process on the host. A kernel without pidfd_open (ENOSYS) gets kill().
UniqueFd OpenPidfd(pid_t pid) { return UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))); }

void KillThrough(int pidfd) {
  if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

// The parent of `pid` as this PID namespace sees it (/proc/<pid>/stat), or -1.
pid_t ParentOf(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return -1;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold anything, so parse from its last ')'.
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return -1;
  char state = 0;
  int ppid = -1;
  if (std::sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

// A pidfd of the process that announced itself as a child of `template_pid` with the pid the
// kernel attached to its message: opened, then checked to be that template's child. If the
// announcing process died and its pid was reused before the open, the new holder is not the
// template's child (or is one, forked by it: a process of the same function) and is refused.
Result<UniqueFd> OpenChildPidfd(pid_t child, pid_t template_pid) {
  UniqueFd fd = OpenPidfd(child);
  if (!fd) return Status::Sys(errno, "pidfd_open of the child " + std::to_string(child));
  if (ParentOf(child) != template_pid) {
    return Status::Sys(ESRCH, "pid " + std::to_string(child) + " is not a child of its template (gone, or reused)");
  }
  return fd;
}

// SIGKILL to every process listed in `cg`, through pidfds. The list is read twice: pidfds are
// opened for the first, and only those whose pid the second still lists are signalled. A pid
// listed after its pidfd was opened names a process of this cgroup, and the pidfd names the
// process that held the pid at the open: the same one, or (had it died and its pid been reused
// in between) a dead one that the signal no longer reaches. No process outside the cgroup can be
// hit. Returns false when the cgroup was empty.
bool KillMembers(const worker::Cgroup& cg, pid_t spare = -1) {
  std::vector<pid_t> listed = cg.Processes();
  listed.erase(std::remove(listed.begin(), listed.end(), spare), listed.end());
  if (listed.empty()) return false;
  std::vector<std::pair<pid_t, UniqueFd>> opened;
  opened.reserve(listed.size());
  for (pid_t p : listed) {
    if (p <= 0) continue;
    UniqueFd fd = OpenPidfd(p);
    if (!fd && errno == ENOSYS) {
      kill(p, SIGKILL);  // a kernel older than 5.3: the pid is all there is
      continue;
    }
    if (fd) opened.emplace_back(p, std::move(fd));
  }
  if (opened.empty()) return true;
  std::vector<pid_t> still = cg.Processes();
  std::sort(still.begin(), still.end());
  for (auto& [p, fd] : opened) {
    if (std::binary_search(still.begin(), still.end(), p)) KillThrough(fd.get());
  }
  return true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}


// Child cgroups, recycled on cgroup v1. There every removal goes through KillAll(), which
// freezes the cgroup, and a freeze/thaw costs ~25 ms of kernel time on a synchronous path
// (measured on this project's CI host), while mkdir/rmdir of the four hierarchies cost ~0.5 ms
// of CPU. So an emptied child cgroup (its processes gone, no OOM kill recorded) gets its
// memory peak reset and waits for the next child of a function with the same limits. On v2
// removal is a cheap cgroup.kill + rmdir and every child gets a fresh cgroup.
class CgroupPool {
 public:
  CgroupPool(worker::CgroupDriver* driver, Clock* clock)
      : driver_(driver), clock_(clock), recycle_(driver != nullptr && std::string(driver->version()) == "v1") {}
  ~CgroupPool() { clock_->Cancel(timer_); }

  Result<std::unique_ptr<worker::Cgroup>> Acquire(const worker::CgroupLimits& limits) {
    auto it = free_.find(Key(limits));
    if (it != free_.end() && !it->second.empty()) {
      auto cg = std::move(it->second.back());
      it->second.pop_back();
      --free_count_;
      return cg;
    }
    return driver_->Create("c" + std::to_string(++seq_), limits);
  }

  // Takes back a child's cgroup once the invocation is over: whatever is still inside is
  // killed (by pid, no freeze), and the cgroup is recycled once empty, or removed.
  void Return(std::unique_ptr<worker::Cgroup> cg, const worker::CgroupLimits& limits) {
    if (!cg) return;
    if (!recycle_) return Destroy(std::move(cg));
    if (!KillMembers(*cg)) return Recycle(std::move(cg), limits);
    draining_.push_back(Draining{std::move(cg), limits, clock_->MonoMs() + kDrainMs});
    if (timer_ == 0) timer_ = clock_->Schedule(kDrainPollMs, [this] { Poll(); });
  }

 private:
  static constexpr int64_t kDrainMs = 2000;
  static constexpr int64_t kDrainPollMs = 20;
  static constexpr size_t kMaxFree = 128;
  using LimitsKey = std::tuple<uint64_t, uint32_t, uint32_t>;
  struct Draining {
    std::unique_ptr<worker::Cgroup> cg;
    worker::CgroupLimits limits;
    int64_t deadline_ms;
  };
  static LimitsKey Key(const worker::CgroupLimits& l) { return {l.memory_bytes, l.pids_max, l.cpu_weight}; }

  void Recycle(std::unique_ptr<worker::Cgroup> cg, const worker::CgroupLimits& limits) {
    if (free_count_ >= kMaxFree || cg->OomKilled()) return Destroy(std::move(cg));
    // Memory still charged once its processes are gone is what they left in the template's
    // /tmp (tmpfs pages stay charged to the cgroup that wrote them): a cgroup carrying it
    // would start the next child with less than its MemorySize. Removed instead (v1 moves the
    // charge to the parent).
    if (ChargedBytes(cg->dir()) > limits.memory_bytes / 16) return Destroy(std::move(cg));
    // v1's peak is resettable: writing 0 sets it to the current usage.
    int fd = open((cg->dir() + "/memory.max_usage_in_bytes").c_str(), O_WRONLY | O_CLOEXEC);
    bool reset = fd >= 0 && write(fd, "0", 1) == 1;
    if (fd >= 0) close(fd);
    if (!reset) return Destroy(std::move(cg));
    free_[Key(limits)].push_back(std::move(cg));
    ++free_count_;
  }

  static uint64_t ChargedBytes(const std::string& dir) {
    int fd = open((dir + "/memory.usage_in_bytes").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return UINT64_MAX;
    char buf[32] = {};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? std::strtoull(buf, nullptr, 10) : UINT64_MAX;
  }

  void Destroy(std::unique_ptr<worker::Cgroup> cg) {
    Status st = cg->Remove();
    if (!st.ok()) log::Warn("child_cgroup_remove_failed", {{"cgroup", cg->name()}, {"error", st.ToString()}});
  }

  void Poll() {
    timer_ = 0;
    const int64_t now = clock_->MonoMs();
    std::vector<Draining> still;
    for (auto& d : draining_) {
      if (d.cg->Processes().empty()) {
        Recycle(std::move(d.cg), d.limits);
      } else if (now >= d.deadline_ms) {
        Destroy(std::move(d.cg));  // freezes and kills what will not die by pid
      } else {
        KillMembers(*d.cg);
        still.push_back(std::move(d));
      }
    }
    draining_ = std::move(still);
    if (!draining_.empty()) timer_ = clock_->Schedule(kDrainPollMs, [this] { Poll(); });
  }

  worker::CgroupDriver* driver_;
  Clock* clock_;
  bool recycle_;
  uint64_t seq_ = 0;
  std::map<LimitsKey, std::vector<std::unique_ptr<worker::Cgroup>>> free_;
  size_t free_count_ = 0;
  std::vector<Draining> draining_;
  Clock::TimerId timer_ = 0;
};

}  // namespace

struct ProcessLauncher::Shared {
  uv_loop_t* loop = nullptr;
  Clock* clock = nullptr;
  worker::CgroupDriver* cgroups = nullptr;
  ProcessLauncherOptions options;
  std::unordered_map<pid_t, std::weak_ptr<class TemplateCore>> templates;
  std::unique_ptr<CgroupPool> cgroup_pool;
  // Mounts each sandboxed child's /tmp off the loop (worker/private_tmp.h): one thread, started
  // with the first sandboxed fork, stopped with the launcher.
  std::unique_ptr<LoopWorker> tmp_mounter;
  // Restore mode: takes children's snapshots and restores them (worker/restore/restore.h), off
  // the loop. One thread: every ptrace call for a worker comes from the thread that attached.
  std::unique_ptr<LoopWorker> restorer;
};

class ChildCore;

// ---- template ------------------------------------------------------------------------------

class TemplateCore : public std::enable_shared_from_this<TemplateCore> {
 public:
  TemplateCore(std::shared_ptr<ProcessLauncher::Shared> shared, TemplateEvents events, proto::FunctionConfig function,
               std::string template_id)
      : shared_(std::move(shared)), ev_(std::move(events)), function_(std::move(function)), tid_(std::move(template_id)) {}
  ~TemplateCore() { Abandon(); }

  Status Launch(uint32_t uid);
  void Fork();
  void Abandon();
  void Dead(const Status& why);
  pid_t pid() const { return pid_; }
  bool gone() const { return dead_ || abandoned_; }
  void Forget(pid_t child_pid) {
    children_.erase(child_pid);
    for (auto it = ns_pids_.begin(); it != ns_pids_.end();) {
      it = it->second == child_pid ? ns_pids_.erase(it) : std::next(it);
    }
  }

 private:
  struct PendingFork {
    UniqueFd channel;
    UniqueFd log;
    bool announced = false;  // its "forked" arrived; its /tmp is being mounted
    UniqueFd pidfd;          // from its "forked" on: every signal to the child goes through it
    UniqueFd uffd;           // restore mode: the userfaultfd its "forked" carried
    int channel_number = -1;  // restore mode: the channel's descriptor number in the child
  };
  void OnControl(int status, int events);
  void HandleMessage(const nlohmann::json& m, pid_t sender, UniqueFd passed_fd);
  void OnForked(uint64_t n, pid_t child_pid, pid_t ns_pid, UniqueFd uffd, int channel_number);
  void OnTmpMounted(uint64_t n, pid_t child_pid, pid_t ns_pid, const Status& mounted);
  void HandOut(uint64_t n, pid_t child_pid, pid_t ns_pid);
  void TakeSnapshot(std::shared_ptr<worker::restore::SnapshotRequest> request, int attempt);
  void OnSnapshot(pid_t child_pid, std::shared_ptr<worker::restore::SnapshotRequest> request, int attempt,
                  std::shared_ptr<worker::restore::Snapshot> snap, const Status& why);
  void Deliver(std::shared_ptr<ChildCore> core);
  void FailFork(const Status& why);
  void OnInitLog();
  void OnErrorPipe();
  std::string TakeInitLog();
  std::optional<Status> ReadLaunchFailure();

  std::shared_ptr<ProcessLauncher::Shared> shared_;
  TemplateEvents ev_;
  proto::FunctionConfig function_;
  std::string tid_;
  worker::CgroupLimits limits_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::unique_ptr<worker::Cgroup> cgroup_;
  FdWatch* control_ = nullptr;
  FdWatch* init_log_ = nullptr;
  FdWatch* error_pipe_ = nullptr;
  std::string init_log_buf_;
  size_t init_log_dropped_ = 0;
  bool ready_ = false;
  bool dead_ = false;
  bool abandoned_ = false;
  uint64_t next_child_ = 1;
  // With the sandbox every child gets a /tmp of its own (worker/private_tmp.h), mounted for it
  // as it announces itself; `uid_` is what its uid/gid maps name.
  bool isolate_ = false;
  bool restore_ = false;  // children of this template are snapshotted and restored (restore.h)
  uid_t uid_ = 0;
  bool warned_shared_tmp_ = false;
  // The template's own namespaces, read once it is ready (its init code has run by then; the
  // children it forks from now on must sit right below them).
  worker::NamespaceIds template_ns_;
  std::unordered_map<uint64_t, PendingFork> pending_;
  std::unordered_map<pid_t, std::weak_ptr<ChildCore>> children_;  // by pid as seen here
  // Restore mode: children handed out once their snapshot is taken (the only owner until then).
  std::unordered_map<pid_t, std::shared_ptr<ChildCore>> snapshotting_;
  // A child's pid in the template's PID namespace (what "exited" names) -> as seen here.
  std::unordered_map<pid_t, pid_t> ns_pids_;

  friend class ChildCore;
};

// ---- child ---------------------------------------------------------------------------------

class ChildCore : public std::enable_shared_from_this<ChildCore> {
 public:
  ChildCore(std::shared_ptr<ProcessLauncher::Shared> shared, std::weak_ptr<TemplateCore> tpl, pid_t pid,
            UniqueFd pidfd, std::unique_ptr<worker::Cgroup> cgroup, worker::CgroupLimits limits)
      : shared_(std::move(shared)),
        tpl_(std::move(tpl)),
        pid_(pid),
        pidfd_(std::move(pidfd)),
        cgroup_(std::move(cgroup)),
        limits_(limits) {
    if (auto t = tpl_.lock()) reuse_ = t->function_.execution_mode == proto::ExecutionMode::kReuse;
  }
  ~ChildCore() { Abandon(); }

  bool Attach(UniqueFd channel, UniqueFd log) {
    channel_ = FdWatch::Open(shared_->loop, std::move(channel));
    log_ = FdWatch::Open(shared_->loop, std::move(log));
    if (channel_ == nullptr || log_ == nullptr) return false;
    // Watched while idle too: EOF means the child died before it got any work.
    channel_->Start(UV_READABLE | UV_DISCONNECT, [this](int status, int events) {
      auto keep = shared_from_this();
      OnChannel(status, events);
    });
    return true;
  }

  pid_t pid() const { return pid_; }
  bool alive() const { return alive_; }

  void Invoke(const ChildInvoke& inv, std::string_view event, std::function<void(ChildReport)> cb) {
    on_report_ = std::move(cb);
    phase_ = Phase::kRunning;
    nlohmann::json h{{"type", "invoke"},
                     {"request_id", inv.request_id},
                     {"deadline_ms", inv.deadline_ms},
                     {"function_arn", inv.function_arn},
                     {"client_context_b64", inv.client_context_b64}};
    proto::Frame header_only;
    header_only.header = std::move(h);
    std::string head = proto::EncodeFrame(header_only);
    // EncodeFrame wrote a zero body length; patch in the event's length (big-endian u32).
    const uint32_t b = static_cast<uint32_t>(event.size());
    head[4] = static_cast<char>(b >> 24);
    head[5] = static_cast<char>(b >> 16);
    head[6] = static_cast<char>(b >> 8);
    head[7] = static_cast<char>(b);
    if (log_ != nullptr) {
      log_->Start(UV_READABLE, [this](int, int) {
        auto keep = shared_from_this();
        OnLog();
      });
    }
    if (channel_ == nullptr) return ReportLater(NeverStarted());
    iovec iov[2] = {{head.data(), head.size()}, {const_cast<char*>(event.data()), event.size()}};
    ssize_t n;
    do {
      n = writev(channel_->fd(), iov, 2);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return ReportLater(NeverStarted());
    const size_t written = n < 0 ? 0 : static_cast<size_t>(n);
    const size_t total = head.size() + event.size();
    if (written < total) {
      // The rest goes out as the child reads (events larger than the socket buffer).
      if (written < head.size()) {
        out_.assign(head, written, std::string::npos);
        out_.append(event);
      } else {
        out_.assign(event.substr(written - head.size()));
      }
      channel_->SetEvents(UV_READABLE | UV_WRITABLE | UV_DISCONNECT);
    }
  }

  void Kill() {
    on_report_ = nullptr;
    killed_ = true;
    alive_ = false;
    phase_ = Phase::kReported;
    FdWatch::Close(channel_);
    KillProcesses();
  }

  std::string DrainLog() {
    ReadLog();
    // A reused child's log never reaches EOF between invocations: what was dropped is said per
    // invocation.
    if (ServesAgain() && log_dropped_ > 0) {
      log_buf_ += "\n[geysir: " + std::to_string(log_dropped_) + " bytes of output dropped]\n";
      log_dropped_ = 0;
    }
    return std::exchange(log_buf_, std::string());
  }

  // Reuse mode: back to waiting for the next invoke frame on the same channel; the log pipe
  // stays watched (and drained) meanwhile. Bytes already read past the result would be taken for
  // the next one's: such a child is not reused.
  bool Reuse() {
    if (!reuse_ || phase_ != Phase::kReported || !alive_ || killed_ || channel_ == nullptr ||
        decoder_.buffered() > 0) {
      return false;
    }
    phase_ = Phase::kIdle;
    prefix_.clear();
    return true;
  }

  uint64_t PeakMemoryBytes() const { return cgroup_ ? cgroup_->PeakMemoryBytes() : 0; }

  // Restore mode: the child's snapshot, taken before it was handed out.
  void SetSnapshot(std::shared_ptr<worker::restore::Snapshot> snapshot) { snapshot_ = std::move(snapshot); }
  std::string CgroupProcsPath() const { return cgroup_ ? cgroup_->dir() + "/cgroup.procs" : std::string(); }
  int pidfd() const { return pidfd_.get(); }

  bool Restorable() const {
    return snapshot_ != nullptr && phase_ == Phase::kReported && alive_ && !killed_ && channel_ != nullptr &&
           decoder_.buffered() == 0;
  }

  // Restore mode, after a kResult report: the restorer thread brings the child back to its
  // snapshot; `done` runs on the loop with the outcome (never after Abandon()). On success the
  // child waits for its next Invoke as it did for its first; on failure it has been killed (or
  // is to be: the caller Finish()es it either way).
  void Restore(std::function<void(RestoreOutcome)> done) {
    std::weak_ptr<ChildCore> weak = weak_from_this();
    if (!Restorable()) {
      ReportStatusLater(std::move(done), Status::Unavailable("the worker cannot be restored (it died, was killed, "
                                                             "or wrote past its result)"));
      return;
    }
    phase_ = Phase::kRestoring;
    on_restored_ = std::move(done);
    std::shared_ptr<worker::restore::Snapshot> snap = snapshot_;
    shared_->restorer->Submit([snap, weak]() -> LoopWorker::Continuation {
      worker::restore::RestoreStats stats;
      Status restored = snap->Restore(&stats);
      RestoreOutcome outcome{restored, stats.pages_written, stats.pages_refilled, stats.mappings_fixed, stats.stopped_ns};
      return [weak, outcome] {
        auto self = weak.lock();
        if (!self || self->phase_ != Phase::kRestoring) return;
        auto cb = std::move(self->on_restored_);
        self->on_restored_ = nullptr;
        if (outcome.status.ok() && self->alive_ && self->channel_ != nullptr) {
          self->phase_ = Phase::kIdle;
          self->prefix_.clear();
        } else {
          self->phase_ = Phase::kReported;
          self->alive_ = false;
          self->snapshot_.reset();
        }
        if (cb) cb(outcome);
      };
    });
  }

  void Finish(std::function<void(std::string)> done) {
    on_finish_ = std::move(done);
    phase_ = Phase::kFinishing;
    ReadLog();
    // Never completes inside Finish() itself: `done` may destroy our owner.
    std::weak_ptr<ChildCore> weak = weak_from_this();
    timer_ = shared_->clock->Schedule(Settled() ? 0 : shared_->options.log_grace_ms, [weak] {
      if (auto self = weak.lock()) {
        self->timer_ = 0;
        if (self->Settled()) {
          self->Complete();
        } else {
          self->OnGrace();
        }
      }
    });
  }

  void OnExited(int code, int sig) {
    exited_ = true;
    alive_ = false;
    exit_code_ = code;
    exit_signal_ = sig;
    if (phase_ == Phase::kAwaitExit) return ReportDied();
    if (phase_ == Phase::kFinishing && Settled()) Complete();
  }

  // Deferred to the loop: the template may be going away inside a call of the scheduler's.
  void OnTemplateGone() {
    template_gone_ = true;
    if (phase_ != Phase::kAwaitExit && phase_ != Phase::kFinishing) return;
    std::weak_ptr<ChildCore> weak = weak_from_this();
    shared_->clock->Schedule(0, [weak] {
      auto self = weak.lock();
      if (!self) return;
      if (self->phase_ == Phase::kAwaitExit) return self->ReportDied();
      if (self->phase_ == Phase::kFinishing && self->Settled()) self->Complete();
    });
  }

  // Stops everything: no callback after this. Kills and removes the cgroup if still there.
  void Abandon() {
    on_report_ = nullptr;
    on_finish_ = nullptr;
    on_restored_ = nullptr;
    shared_->clock->Cancel(timer_);
    timer_ = 0;
    FdWatch::Close(channel_);
    FdWatch::Close(log_);
    RemoveCgroup();
    if (auto t = tpl_.lock()) t->Forget(pid_);
    phase_ = Phase::kDone;
  }

 private:
  enum class Phase { kIdle, kRunning, kAwaitExit, kReported, kRestoring, kFinishing, kDone };

  static ChildReport NeverStarted() {
    ChildReport r;
    r.kind = ChildReport::Kind::kDied;
    r.never_started = true;
    return r;
  }

  bool Settled() const { return log_eof_ && (exited_ || template_gone_); }

  void OnChannel(int status, int events) {
    if (status < 0) return OnChannelEof();
    if ((events & UV_WRITABLE) && !out_.empty()) {
      ssize_t n;
      do {
        n = write(channel_->fd(), out_.data(), out_.size());
      } while (n < 0 && errno == EINTR);
      if (n > 0) out_.erase(0, static_cast<size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return OnChannelEof();
      if (out_.empty() && channel_) channel_->SetEvents(UV_READABLE | UV_DISCONNECT);
    }
    if (!(events & (UV_READABLE | UV_DISCONNECT))) return;
    char buf[65536];
    for (int round = 0; round < 64 && channel_ != nullptr; ++round) {
      ssize_t n = read(channel_->fd(), buf, sizeof buf);
      if (n > 0) {
        if (phase_ != Phase::kRunning) {
          // Bytes from a child that was given no work: not ours to trust. Treat it as dead.
          alive_ = false;
          FdWatch::Close(channel_);
          KillProcesses();
          return;
        }
        if (ResultTooLarge(buf, static_cast<size_t>(n))) {
          alive_ = false;  // not reused
          KillProcesses();
          ChildReport r;
          r.kind = ChildReport::Kind::kResult;
          r.handler_error = true;
          r.body = ResponseTooLargeError();
          return Report(std::move(r));
        }
        decoder_.Feed(buf, static_cast<size_t>(n));
        auto next = decoder_.Next();
        if (!next.ok()) {
          // A malformed frame: the function wrote on the channel itself. It gets no result.
          KillProcesses();
          return OnChannelEof();
        }
        if (next->has_value()) return OnResult(std::move(**next));
        continue;
      }
      if (n == 0) return OnChannelEof();
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return OnChannelEof();
    }
  }

  // A result's size is in the first 8 bytes of its frame: one over Lambda's limit is refused
  // there, before its body is read. Reading first and checking after let 16 children returning
  // 60 MB each grow the scheduler by ~1 GB, charged to no function's cgroup.
  bool ResultTooLarge(const char* data, size_t n) {
    if (prefix_.size() >= 8) return false;
    prefix_.append(data, std::min(n, 8 - prefix_.size()));
    if (prefix_.size() < 8) return false;
    const auto* b = reinterpret_cast<const unsigned char*>(prefix_.data());
    const uint32_t body = (uint32_t{b[4]} << 24) | (uint32_t{b[5]} << 16) | (uint32_t{b[6]} << 8) | uint32_t{b[7]};
    return body > kMaxResponsePayloadBytes;
  }

  void OnResult(proto::Frame frame) {
    // A per-request invocation ends with its result: what it left running (a background
    // process) dies before the answer goes out, so that the next invocation, which shares the
    // template's PID namespace, never sees it in /proc. (It lived on until Finish's log grace,
    // up to 200 ms, before.) The child itself flushed its log before its result and exits by
    // itself; in restore mode the restore then discards it for what it left. A reuse-mode
    // worker's background processes live on, as on Lambda.
    if (!reuse_ && cgroup_) KillMembers(*cgroup_, pid_);
    ChildReport r;
    r.kind = ChildReport::Kind::kResult;
    auto st = frame.header.find("status");
    r.handler_error = !(st != frame.header.end() && st->is_string() && st->get<std::string>() == "ok");
    r.body = std::move(frame.body);
    Report(std::move(r));
  }

  void OnChannelEof() {
    FdWatch::Close(channel_);
    alive_ = false;
    if (phase_ != Phase::kRunning) return;  // died while idle (or already reported)
    phase_ = Phase::kAwaitExit;
    if (exited_ || template_gone_) return ReportDied();
    std::weak_ptr<ChildCore> weak = weak_from_this();
    timer_ = shared_->clock->Schedule(shared_->options.exit_wait_ms, [weak] {
      if (auto self = weak.lock()) {
        self->timer_ = 0;
        if (self->phase_ == Phase::kAwaitExit) self->ReportDied();
      }
    });
  }

  void ReportDied() {
    shared_->clock->Cancel(timer_);
    timer_ = 0;
    ChildReport r;
    r.kind = ChildReport::Kind::kDied;
    r.exit_code = exit_code_;
    r.exit_signal = exit_signal_;
    r.oom_killed = cgroup_ && cgroup_->OomKilled();
    Report(std::move(r));
  }

  void Report(ChildReport r) {
    phase_ = Phase::kReported;
    // In reuse mode a child that answered keeps its channel for its next invocation.
    if (!ServesAgain() || r.kind != ChildReport::Kind::kResult) FdWatch::Close(channel_);
    auto cb = std::move(on_report_);
    on_report_ = nullptr;
    if (cb) cb(std::move(r));  // may destroy our owner; `keep` in the caller holds us
  }

  void ReportLater(ChildReport r) {
    std::weak_ptr<ChildCore> weak = weak_from_this();
    timer_ = shared_->clock->Schedule(0, [weak, r = std::move(r)]() mutable {
      if (auto self = weak.lock()) {
        self->timer_ = 0;
        self->Report(std::move(r));
      }
    });
  }

  void ReadLog() {
    if (log_ == nullptr) return;
    if (ReadAvailable(log_->fd(), log_buf_, shared_->options.max_log_bytes, log_dropped_)) {
      log_eof_ = true;
      FdWatch::Close(log_);
      if (log_dropped_ > 0) {
        log_buf_ += "\n[geysir: " + std::to_string(log_dropped_) + " bytes of output dropped]\n";
        log_dropped_ = 0;
      }
    }
  }

  void OnLog() {
    ReadLog();
    if (phase_ == Phase::kFinishing && Settled()) Complete();
  }

  void OnGrace() {
    timer_ = 0;
    if (phase_ != Phase::kFinishing) return;
    if (!grace_expired_) {
      // The child (or something it started) outlived its invocation: kill it, then give the
      // kernel a moment to close the log pipe.
      grace_expired_ = true;
      KillProcesses();
      ReadLog();
      if (Settled()) return Complete();
      std::weak_ptr<ChildCore> weak = weak_from_this();
      timer_ = shared_->clock->Schedule(shared_->options.exit_wait_ms, [weak] {
        if (auto self = weak.lock()) self->OnGrace();
      });
      return;
    }
    Complete();
  }

  void Complete() {
    shared_->clock->Cancel(timer_);
    timer_ = 0;
    ReadLog();
    FdWatch::Close(log_);
    FdWatch::Close(channel_);
    RemoveCgroup();
    phase_ = Phase::kDone;
    auto cb = std::move(on_finish_);
    on_finish_ = nullptr;
    if (cb) cb(std::exchange(log_buf_, std::string()));
  }

  // SIGKILL to every process of the invocation, through pidfds (KillMembers). Cgroup::KillAll()
  // would freeze first, which on v1 stalls the loop for tens of milliseconds; a fork loop that
  // outruns this is bounded by pids.max and finished off by CgroupPool (repeated kills, then
  // KillAll).
  void KillProcesses() {
    // The child itself through the pidfd it was handed out with: without cgroups (development
    // only) it is all we know of, and a reaped child's pid may belong to someone else by now.
    KillThrough(pidfd_.get());
    if (!cgroup_) return;
    for (int round = 0; round < 3; ++round) {
      if (!KillMembers(*cgroup_)) return;
    }
  }

  void RemoveCgroup() {
    if (!cgroup_) return;
    // An idle child (never invoked) still waits on its channel: Return() kills it by pid.
    shared_->cgroup_pool->Return(std::move(cgroup_), limits_);
  }

  std::shared_ptr<ProcessLauncher::Shared> shared_;
  std::weak_ptr<TemplateCore> tpl_;
  pid_t pid_;
  UniqueFd pidfd_;  // the child's, checked when it announced itself (OpenChildPidfd)
  std::unique_ptr<worker::Cgroup> cgroup_;
  worker::CgroupLimits limits_;
  FdWatch* channel_ = nullptr;
  FdWatch* log_ = nullptr;
  Phase phase_ = Phase::kIdle;
  bool alive_ = true;
  bool killed_ = false;
  bool reuse_ = false;  // the function's execution mode is "reuse": see Reuse()
  std::shared_ptr<worker::restore::Snapshot> snapshot_;  // restore mode: see Restore()
  std::function<void(RestoreOutcome)> on_restored_;

  // Serves invocation after invocation on one channel: reuse mode, or restore mode.
  bool ServesAgain() const { return reuse_ || snapshot_ != nullptr; }

  void ReportStatusLater(std::function<void(RestoreOutcome)> done, Status st) {
    std::weak_ptr<ChildCore> weak = weak_from_this();
    shared_->clock->Schedule(0, [weak, done = std::move(done), st] {
      if (weak.lock() && done) done(RestoreOutcome{st});
    });
  }
  std::string out_;
  std::string prefix_;  // the result frame's first (up to 8) bytes: its lengths
  proto::FrameDecoder decoder_;
  std::function<void(ChildReport)> on_report_;
  std::function<void(std::string)> on_finish_;
  std::string log_buf_;
  size_t log_dropped_ = 0;
  bool log_eof_ = false;
  bool exited_ = false;
  bool template_gone_ = false;
  bool grace_expired_ = false;
  int exit_code_ = -1;
  int exit_signal_ = 0;
  Clock::TimerId timer_ = 0;
};

class ProcessChild final : public Child {
 public:
  explicit ProcessChild(std::shared_ptr<ChildCore> core) : core_(std::move(core)) {}
  ~ProcessChild() override { core_->Abandon(); }
  pid_t pid() const override { return core_->pid(); }
  bool alive() const override { return core_->alive(); }
  void Invoke(const ChildInvoke& invoke, std::string_view event, std::function<void(ChildReport)> cb) override {
    core_->Invoke(invoke, event, std::move(cb));
  }
  void Kill() override { core_->Kill(); }
  std::string DrainLog() override { return core_->DrainLog(); }
  uint64_t PeakMemoryBytes() const override { return core_->PeakMemoryBytes(); }
  void Finish(std::function<void(std::string)> done) override { core_->Finish(std::move(done)); }
  bool Reuse() override { return core_->Reuse(); }
  bool Restorable() const override { return core_->Restorable(); }
  void Restore(std::function<void(RestoreOutcome)> done) override {
    core_->Restore(std::move(done));
  }

 private:
  std::shared_ptr<ChildCore> core_;
};

// ---- template implementation ---------------------------------------------------------------

Status TemplateCore::Launch(uint32_t uid) {
  const auto& opt = shared_->options;
  limits_.memory_bytes = uint64_t{function_.memory_mb} * 1024 * 1024;
  limits_.pids_max = opt.pids_max;
  // Lambda gives CPU in proportion to memory (1769 MB = one vCPU); weights only matter
  // between function cgroups, which are siblings under Geysir's base.
  limits_.cpu_weight = std::max<uint32_t>(1, static_cast<uint32_t>(uint64_t{function_.memory_mb} * 100 / 1769));

  worker::TemplateSpec spec;
  spec.function = function_;
  spec.template_id = tid_;
  spec.worker_binary = opt.worker_binary;
  spec.runtime_dir = opt.runtime_dir + "/python";
  spec.python = opt.python;
  spec.uid = uid;
  spec.gid = uid;
  // The namespace sandbox needs root; an unprivileged scheduler (a developer's machine) runs
  // functions as itself with cgroups and rlimits only.
  spec.isolate = opt.isolate && geteuid() == 0;
  isolate_ = spec.isolate;
  // Restore needs the sandbox's namespaces (a child's own IPC namespace and /tmp, checked at
  // every restore) and only ever applies to per-request functions.
  restore_ = isolate_ && opt.restore && function_.execution_mode != proto::ExecutionMode::kReuse;
  spec.restore = restore_;
  uid_ = uid;
  spec.network = function_.network;
  // Without the host firewall an egress function could reach the host and private ranges.
  if (spec.network == "egress" && (!spec.isolate || !opt.egress_firewall)) {
    return Status::Unavailable("network mode egress is not available on this host: the scheduler runs without "
                               "the sandbox or could not install its nftables firewall (see its log and "
                               "docs/security.md)");
  }
  if (shared_->cgroups != nullptr) {
    auto cg = shared_->cgroups->Create(tid_, limits_);
    if (!cg.ok()) return cg.status().Wrap("creating the template's cgroup");
    cgroup_ = std::move(cg).value();
    spec.cgroup_dir = cgroup_->dir();
  }
  auto spawned = worker::SpawnTemplate(spec);
  if (!spawned.ok()) return spawned.status().Wrap("starting geysir-worker");
  worker::TemplateProcess& tp = spawned.value();
  pid_ = tp.pid;
  // Safe to open by number: the template is our child, and not reaped yet.
  pidfd_ = OpenPidfd(pid_);
  shared_->templates[pid_] = weak_from_this();
  control_ = FdWatch::Open(shared_->loop, std::move(tp.control));
  init_log_ = FdWatch::Open(shared_->loop, std::move(tp.init_log));
  error_pipe_ = FdWatch::Open(shared_->loop, std::move(tp.error_pipe));
  if (control_ == nullptr || init_log_ == nullptr || error_pipe_ == nullptr) {
    return Status::Internal("could not watch the template's descriptors");
  }
  control_->Start(UV_READABLE | UV_DISCONNECT, [this](int status, int events) {
    auto keep = shared_from_this();
    OnControl(status, events);
  });
  init_log_->Start(UV_READABLE, [this](int, int) {
    auto keep = shared_from_this();
    OnInitLog();
  });
  error_pipe_->Start(UV_READABLE, [this](int, int) {
    auto keep = shared_from_this();
    OnErrorPipe();
  });
  return Status::Ok();
}

void TemplateCore::OnInitLog() {
  if (init_log_ == nullptr) return;
  if (ReadAvailable(init_log_->fd(), init_log_buf_, shared_->options.max_init_log_bytes, init_log_dropped_)) {
    FdWatch::Close(init_log_);
  }
  // After init the template prints nothing of interest; keep the pipe drained, bounded.
  if (ready_ && init_log_buf_.size() >= shared_->options.max_init_log_bytes) init_log_buf_.clear();
}

std::string TemplateCore::TakeInitLog() {
  OnInitLog();
  return std::exchange(init_log_buf_, std::string());
}

std::optional<Status> TemplateCore::ReadLaunchFailure() {
  if (error_pipe_ == nullptr) return std::nullopt;
  worker::LaunchFailure f{};
  ssize_t n;
  do {
    n = read(error_pipe_->fd(), &f, sizeof f);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
  FdWatch::Close(error_pipe_);
  if (n != static_cast<ssize_t>(sizeof f)) return std::nullopt;  // EOF: the runtime was exec'd
  return Status::Sys(f.err, std::string("the function's sandbox could not be set up (stage ") +
                                worker::LaunchStageName(f.stage) + ")");
}

void TemplateCore::OnErrorPipe() {
  if (auto failure = ReadLaunchFailure()) Dead(*failure);
}

void TemplateCore::OnControl(int status, int events) {
  (void)events;
  for (int round = 0; round < 256 && control_ != nullptr && !gone(); ++round) {
    auto msg = worker::ReceiveControlMessage(control_->fd());
    if (msg.ok()) {
      HandleMessage(msg->message, msg->sender_pid, std::move(msg->passed_fd));
      continue;
    }
    const Status& st = msg.status();
    if (st.sys_errno() == EAGAIN || st.sys_errno() == EWOULDBLOCK) {
      if (status < 0) break;
      return;
    }
    if (st.code() == Code::kInvalidArgument) {
      log::Warn("template_bad_message", {{"template_id", tid_}, {"error", st.ToString()}});
      continue;
    }
    break;  // closed or failed: the template is gone
  }
  if (gone() || control_ == nullptr) return;
  // The control socket closed: a launch failure explains it best, if there is one.
  if (auto failure = ReadLaunchFailure()) return Dead(*failure);
  Dead(Status::Unavailable("the template closed its control socket"));
}

void TemplateCore::HandleMessage(const nlohmann::json& m, pid_t sender, UniqueFd passed_fd) {
  const std::string type = m.value("type", "");
  // The template's process runs the function's init code: numbers are read range-checked, never
  // cast from a double (1e300 as a pid is undefined behaviour).
  auto num = [&](const char* key, double dflt) {
    auto it = m.find(key);
    return it != m.end() && it->is_number() && std::isfinite(it->get<double>()) ? it->get<double>() : dflt;
  };
  auto integer = [&]<typename T>(const char* key, T dflt) { return JsonIntegerField<T>(m, key, dflt); };
  if (type == "ready") {
    if (ready_) return;
    ready_ = true;
    if (restore_) {
      Status eligible = worker::restore::CheckTemplate(pid_);
      if (!eligible.ok()) {
        log::Info("restore_unavailable", {{"template_id", tid_}, {"function", function_.name},
                                          {"reason", eligible.message()},
                                          {"effect", "this function's children fork per request"}});
        restore_ = false;
      }
    }
    if (isolate_) {
      auto ns = worker::TemplateNamespaces(pid_);
      if (ns.ok()) template_ns_ = *ns;  // else looked up per child, and a failure reported there
    }
    auto cb = ev_.on_ready;
    if (cb) cb(num("init_ms", 0), TakeInitLog());
  } else if (type == "init_error") {
    std::string error = m.contains("error") && m["error"].is_object()
                            ? m["error"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                            : std::string(R"({"errorMessage":"init failed","errorType":"Runtime.Unknown"})");
    // The template exits after this; its exit is expected and not reported as a crash.
    dead_ = true;
    FdWatch::Close(control_);
    auto cb = ev_.on_init_error;
    if (cb) cb(num("init_ms", 0), std::move(error), TakeInitLog());
  } else if (type == "forked") {
    // Sent by the new child itself (docs/wire-formats.md): the kernel-attached sender pid is
    // its pid here, whatever PID namespace it lives in, and needs no trust in the message. A
    // "forked" from the template itself is not a child and is ignored.
    if (sender <= 0 || sender == pid_) {
      log::Warn("template_bad_forked", {{"template_id", tid_}, {"sender", sender}});
      return;
    }
    OnForked(integer("child", uint64_t{0}), sender, integer("pid", pid_t{0}), std::move(passed_fd),
             integer("channel_fd", int{-1}));
  } else if (type == "fork_failed") {
    auto it = pending_.find(integer("child", uint64_t{0}));
    if (it != pending_.end()) pending_.erase(it);
    FailFork(Status::Sys(integer("errno", int{EAGAIN}), "fork in the template", Code::kResourceExhausted));
  } else if (type == "exited") {
    auto ns = ns_pids_.find(integer("pid", pid_t{0}));
    if (ns == ns_pids_.end()) return;  // not a child we handed out (e.g. a reaped orphan)
    auto it = children_.find(ns->second);
    ns_pids_.erase(ns);
    if (it == children_.end()) return;
    // `child` keeps the core alive through OnExited, which may end in its owner's destruction.
    if (auto child = it->second.lock()) child->OnExited(integer("code", -1), integer("signal", 0));
  }
}

void TemplateCore::OnForked(uint64_t n, pid_t child_pid, pid_t ns_pid, UniqueFd uffd, int channel_number) {
  auto it = pending_.find(n);
  if (it == pending_.end() || it->second.announced || child_pid <= 0 || ns_pid <= 0) return;
  it->second.uffd = std::move(uffd);
  it->second.channel_number = channel_number;
  auto pidfd = OpenChildPidfd(child_pid, pid_);
  if (!pidfd.ok()) {
    // Gone already (or never this template's child): no process to hand out.
    pending_.erase(it);
    return FailFork(pidfd.status().Wrap("taking hold of a forked child"));
  }
  it->second.pidfd = std::move(pidfd).value();
  if (!isolate_) return HandOut(n, child_pid, ns_pid);
  // Its own /tmp first (a tmpfs of the function's EphemeralStorage in the mount namespace the
  // child made): until then it has only been running the runtime's code, and it gets no work
  // before it has its /tmp. Mounted on the mounter's thread: the checks, the maps and the mount
  // take ~0.1-0.3 ms that the loop spends on other requests meanwhile.
  if (!shared_->tmp_mounter) {
    auto started = LoopWorker::Start(shared_->loop, "tmp_mounter");
    if (!started.ok()) {
      KillThrough(it->second.pidfd.get());
      pending_.erase(it);
      return FailFork(started.status().Wrap("starting the thread that mounts children's /tmp"));
    }
    shared_->tmp_mounter = std::move(started).value();
  }
  it->second.announced = true;
  const worker::PrivateTmpRequest request{.child = child_pid, .template_pid = pid_, .template_ns = template_ns_,
                                          .uid = uid_, .gid = uid_,
                                          .size_mb = function_.ephemeral_storage_mb};
  std::weak_ptr<TemplateCore> weak = weak_from_this();
  shared_->tmp_mounter->Submit([request, weak, n, ns_pid]() -> LoopWorker::Continuation {
    Status mounted = worker::MountPrivateTmpOnThisThread(request);
    return [weak, n, child = request.child, ns_pid, mounted] {
      // A template gone meanwhile took the child with it (its PID namespace ended).
      if (auto self = weak.lock()) self->OnTmpMounted(n, child, ns_pid, mounted);
    };
  });
}

void TemplateCore::OnTmpMounted(uint64_t n, pid_t child_pid, pid_t ns_pid, const Status& mounted) {
  auto it = pending_.find(n);
  if (it == pending_.end()) return;  // the template died or was abandoned meanwhile
  if (mounted.code() == Code::kUnavailable && mounted.sys_errno() == 0) {
    // The kernel gave the child no user namespace (user.max_user_namespaces = 0, or a
    // distribution's switch): it keeps the template's /tmp, shared with its siblings.
    if (!warned_shared_tmp_) {
      log::Warn("private_tmp_unavailable", {{"template_id", tid_}, {"error", mounted.message()},
                                            {"effect", "invocations of this template share one /tmp"}});
    }
    warned_shared_tmp_ = true;
  } else if (!mounted.ok()) {
    // A child whose namespaces are not what they must be is not used.
    KillThrough(it->second.pidfd.get());
    pending_.erase(it);
    return FailFork(mounted.Wrap("giving a child its private /tmp"));
  }
  HandOut(n, child_pid, ns_pid);
}

void TemplateCore::HandOut(uint64_t n, pid_t child_pid, pid_t ns_pid) {
  auto it = pending_.find(n);
  if (it == pending_.end()) return;
  PendingFork fds = std::move(it->second);
  pending_.erase(it);
  // The child waits on its channel; before it gets any work it moves into a cgroup of its own,
  // so its memory, pids and lifetime are bounded and killable as a unit.
  std::unique_ptr<worker::Cgroup> cg;
  if (shared_->cgroups != nullptr) {
    auto created = shared_->cgroup_pool->Acquire(limits_);
    if (!created.ok()) {
      KillThrough(fds.pidfd.get());
      return FailFork(created.status().Wrap("creating a child's cgroup"));
    }
    cg = std::move(created).value();
    Status st = cg->AddProcess(child_pid);
    if (!st.ok()) {
      KillThrough(fds.pidfd.get());
      shared_->cgroup_pool->Return(std::move(cg), limits_);
      return FailFork(st.Wrap("moving a child into its cgroup"));
    }
  }
  auto core = std::make_shared<ChildCore>(shared_, weak_from_this(), child_pid, std::move(fds.pidfd), std::move(cg),
                                          limits_);
  if (!core->Attach(std::move(fds.channel), std::move(fds.log))) {
    return FailFork(Status::Internal("could not watch a child's descriptors"));
  }
  children_[child_pid] = core;
  ns_pids_[ns_pid] = child_pid;
  if (restore_ && fds.uffd) {
    if (!shared_->restorer) {
      auto started = LoopWorker::Start(shared_->loop, "restorer");
      if (!started.ok()) {
        log::Warn("restore_unavailable", {{"template_id", tid_}, {"error", started.status().ToString()}});
        restore_ = false;
        return Deliver(std::move(core));
      }
      shared_->restorer = std::move(started).value();
    }
    auto request = std::make_shared<worker::restore::SnapshotRequest>();
    request->pid = child_pid;
    request->uffd = std::move(fds.uffd);
    request->channel_fd = fds.channel_number;
    request->cgroup_procs = core->CgroupProcsPath();
    request->pidfd = UniqueFd(fcntl(core->pidfd(), F_DUPFD_CLOEXEC, 0));
    snapshotting_[child_pid] = std::move(core);
    return TakeSnapshot(std::move(request), 0);
  }
  Deliver(std::move(core));
}

void TemplateCore::Deliver(std::shared_ptr<ChildCore> core) {
  auto cb = ev_.on_forked;
  if (cb) cb(std::unique_ptr<Child>(new ProcessChild(std::move(core))));
}

// Restore mode: the child's snapshot, taken once it is parked reading its channel (it announced
// itself before its last steps: the invocation log as stdout, the runtime's warm-up). Until
// then the restorer finds it elsewhere and the attempt is repeated, every millisecond for up to
// two seconds. A child that cannot be snapshotted (its init code started a thread, mapped
// memory shared...) is handed out as a per-request child, and so are this template's next ones.
void TemplateCore::TakeSnapshot(std::shared_ptr<worker::restore::SnapshotRequest> request, int attempt) {
  std::weak_ptr<TemplateCore> weak = weak_from_this();
  shared_->restorer->Submit([request, weak, attempt]() -> LoopWorker::Continuation {
    worker::restore::SnapshotRequest attempt_request;
    attempt_request.pid = request->pid;
    attempt_request.uffd = UniqueFd(fcntl(request->uffd.get(), F_DUPFD_CLOEXEC, 0));
    attempt_request.pidfd = UniqueFd(fcntl(request->pidfd.get(), F_DUPFD_CLOEXEC, 0));
    attempt_request.channel_fd = request->channel_fd;
    attempt_request.cgroup_procs = request->cgroup_procs;
    attempt_request.max_bytes = request->max_bytes;
    auto taken = worker::restore::Snapshot::Take(std::move(attempt_request));
    std::shared_ptr<worker::restore::Snapshot> snap;
    Status why;
    if (taken.ok()) {
      snap = std::move(taken).value();
    } else {
      why = taken.status();
    }
    return [weak, request, attempt, snap, why] {
      if (auto self = weak.lock()) self->OnSnapshot(request->pid, request, attempt, snap, why);
    };
  });
}

void TemplateCore::OnSnapshot(pid_t child_pid, std::shared_ptr<worker::restore::SnapshotRequest> request,
                              int attempt, std::shared_ptr<worker::restore::Snapshot> snap, const Status& why) {
  constexpr int kAttempts = 2000;
  auto it = snapshotting_.find(child_pid);
  if (it == snapshotting_.end()) return;
  if (!it->second->alive()) {
    snapshotting_.erase(it);
    return FailFork(Status::Unavailable("the child died before its snapshot"));
  }
  if (!snap && why.code() == Code::kUnavailable && attempt + 1 < kAttempts) {
    std::weak_ptr<TemplateCore> weak = weak_from_this();
    shared_->clock->Schedule(1, [weak, request, attempt] {
      if (auto self = weak.lock()) self->TakeSnapshot(request, attempt + 1);
    });
    return;
  }
  std::shared_ptr<ChildCore> core = std::move(it->second);
  snapshotting_.erase(it);
  if (snap) {
    core->SetSnapshot(std::move(snap));
    return Deliver(std::move(core));
  }
  // A child set up for restore (its own filter, a runtime that waits for the next invocation)
  // is not handed out as a per-request one: it goes, and so does restore mode for this template.
  log::Warn("restore_unavailable", {{"template_id", tid_}, {"function", function_.name}, {"reason", why.ToString()},
                                    {"effect", "this template's children fork per request"}});
  restore_ = false;
  core.reset();  // kills it and removes its cgroup
  FailFork(why.Wrap("taking a child's snapshot"));
}

void TemplateCore::FailFork(const Status& why) {
  auto cb = ev_.on_forked;
  if (cb) cb(why);
}

void TemplateCore::Fork() {
  if (gone() || control_ == nullptr) {
    // Reported from the loop, never from inside Fork().
    std::weak_ptr<TemplateCore> weak = weak_from_this();
    shared_->clock->Schedule(0, [weak] {
      if (auto self = weak.lock()) self->FailFork(Status::Unavailable("the template is gone"));
    });
    return;
  }
  const uint64_t n = next_child_++;
  int sv[2];
  int p[2];
  Status st;
  // The child's ends stay blocking (the runtime reads them synchronously); ours are not.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    st = Status::Sys(errno, "socketpair (child channel)", Code::kResourceExhausted);
  } else if (pipe2(p, O_CLOEXEC) < 0) {
    close(sv[0]);
    close(sv[1]);
    st = Status::Sys(errno, "pipe2 (child log)", Code::kResourceExhausted);
  }
  if (st.ok()) {
    UniqueFd ours(sv[0]), theirs(sv[1]), log_r(p[0]), log_w(p[1]);
    st = SetNonBlocking(ours.get());
    if (st.ok()) st = SetNonBlocking(log_r.get());
    if (st.ok()) {
      const int fds[2] = {theirs.get(), log_w.get()};
      const nlohmann::json message{{"type", "fork"}, {"child", n}, {"private_tmp", isolate_}, {"restore", restore_}};
      st = worker::SendControlMessage(control_->fd(), message, fds, 2);
    }
    if (st.ok()) {
      pending_[n] = PendingFork{std::move(ours), std::move(log_r)};
      return;  // `theirs` and `log_w` close here: the template holds its own copies now
    }
  }
  std::weak_ptr<TemplateCore> weak = weak_from_this();
  shared_->clock->Schedule(0, [weak, st] {
    if (auto self = weak.lock()) self->FailFork(st);
  });
}

void TemplateCore::Dead(const Status& why) {
  if (gone()) return;
  dead_ = true;
  FdWatch::Close(control_);
  pending_.clear();
  std::vector<std::shared_ptr<ChildCore>> children;
  for (auto& [pid, weak] : children_) {
    if (auto c = weak.lock()) children.push_back(std::move(c));
  }
  for (auto& c : children) c->OnTemplateGone();
  auto cb = ev_.on_exit;
  if (cb) cb(why);
}

void TemplateCore::Abandon() {
  if (abandoned_) return;
  abandoned_ = true;
  ev_ = TemplateEvents{};
  // Closing the control socket tells the template to exit; killing its cgroup makes sure of it
  // (and takes any child still waiting there, not yet moved to a cgroup of its own).
  FdWatch::Close(control_);
  FdWatch::Close(init_log_);
  FdWatch::Close(error_pipe_);
  pending_.clear();
  if (cgroup_) {
    Status st = cgroup_->Remove();
    if (!st.ok()) log::Warn("template_cgroup_remove_failed", {{"cgroup", cgroup_->name()}, {"error", st.ToString()}});
    cgroup_.reset();
  } else if (pid_ > 0 && !dead_) {
    if (pidfd_) {
      KillThrough(pidfd_.get());
    } else {
      kill(pid_, SIGKILL);  // no pidfd_open (Linux < 5.3); not reaped yet, so still ours
    }
  }
  std::vector<std::shared_ptr<ChildCore>> children;
  for (auto& [pid, weak] : children_) {
    if (auto c = weak.lock()) children.push_back(std::move(c));
  }
  children_.clear();
  for (auto& c : children) c->OnTemplateGone();
}

class ProcessTemplate final : public Template {
 public:
  explicit ProcessTemplate(std::shared_ptr<TemplateCore> core) : core_(std::move(core)) {}
  ~ProcessTemplate() override { core_->Abandon(); }
  pid_t pid() const override { return core_->pid(); }
  void Fork() override { core_->Fork(); }

 private:
  std::shared_ptr<TemplateCore> core_;
};

// ---- launcher ------------------------------------------------------------------------------

ProcessLauncher::ProcessLauncher(uv_loop_t* loop, Clock* clock, worker::CgroupDriver* cgroups,
                                 ProcessLauncherOptions options)
    : shared_(std::make_shared<Shared>()) {
  shared_->loop = loop;
  shared_->clock = clock;
  shared_->cgroups = cgroups;
  shared_->options = std::move(options);
  if (cgroups != nullptr) shared_->cgroup_pool = std::make_unique<CgroupPool>(cgroups, clock);
}

// The mounter's thread is joined here, on the loop thread and before the loop is closed, even if
// templates (which share `shared_`) outlive the launcher.
ProcessLauncher::~ProcessLauncher() { shared_->tmp_mounter.reset(); }

Result<std::unique_ptr<Template>> ProcessLauncher::Start(const TemplateRequest& request, TemplateEvents events) {
  if (request.function.runtime.rfind("python3", 0) != 0) {
    return Status::Invalid("runtime " + request.function.runtime + " is not supported (python3.x only)");
  }
  auto core = std::make_shared<TemplateCore>(shared_, std::move(events), request.function, request.template_id);
  Status st = core->Launch(request.uid);
  if (!st.ok()) return st;
  return std::unique_ptr<Template>(new ProcessTemplate(std::move(core)));
}

void ProcessLauncher::OnReaped(pid_t pid, int wait_status) {
  auto it = shared_->templates.find(pid);
  if (it == shared_->templates.end()) return;
  auto core = it->second.lock();
  shared_->templates.erase(it);
  if (core && !core->gone()) {
    auto keep = core;
    core->Dead(Status::Unavailable("the template " + DescribeWaitStatus(wait_status)));
  }
}

}  // namespace geysir::scheduler
