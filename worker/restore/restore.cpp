#include "worker/restore/restore.h"

#include <elf.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "worker/restore/kernel_abi.h"
#include "worker/restore/process_view.h"

namespace geysir::worker::restore {

namespace {

constexpr uint64_t kPage = 4096;
constexpr int kErestartsys = 512;        // the kernel's "restart this call" (never seen by user space)
constexpr size_t kIovMax = 1024;         // IOV_MAX: per process_vm_readv/writev call
constexpr size_t kMaxXstate = 64 * 1024;  // XSAVE area; AMX makes it ~11 KiB today
constexpr int64_t kStopTimeoutNs = 2'000'000'000;
// The most address space a snapshot tracks. Tracking costs the kernel page-table work for every
// range registered and write-protected: a Python worker maps a few hundred MiB, while a
// sanitizer's shadow (terabytes reserved) exhausted the host's memory. Such a process forks.
constexpr uint64_t kMaxTrackedBytes = uint64_t{64} << 30;
// A worker whose state a snapshot cannot take or a restore cannot undo.
constexpr Code kCannotRestore = Code::kInvalidArgument;

int64_t MonoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string Describe(const Mapping& m) {
  return Hex(m.start) + "-" + Hex(m.end) + " " + std::string(m.perms, 4) + (m.path.empty() ? "" : " " + m.path);
}

// A contiguous run of pages and where their snapshot content starts in the snapshot's buffer.
struct Extent {
  uint64_t start;
  uint64_t end;
  size_t offset;
};

// The worker between Stop() and the destructor: in a ptrace stop, attached by this thread.
// Resumes it (PTRACE_DETACH) when destroyed, unless Kill()ed. Attached with PTRACE_O_EXITKILL:
// should the scheduler die in the middle of a restore, the half-restored worker dies with it.
class Stopped {
 public:
  // `pidfd` (or -1): the worker's. Checked before the attach, and again once the process is
  // stopped, when its pid can no longer change hands: a process that only took over the pid is
  // let go untouched.
  static Result<std::unique_ptr<Stopped>> Stop(pid_t pid, int pidfd) {
    if (!Alive(pidfd)) return Status::Error(kCannotRestore, "the worker is gone");
    if (ptrace(PTRACE_SEIZE, pid, nullptr, reinterpret_cast<void*>(PTRACE_O_EXITKILL)) != 0) {
      return Status::Sys(errno, "ptrace(PTRACE_SEIZE) of worker " + std::to_string(pid));
    }
    auto s = std::unique_ptr<Stopped>(new Stopped(pid));
    if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) return Status::Sys(errno, "ptrace(PTRACE_INTERRUPT)");
    int status = 0;
    GEYSIR_RETURN_IF_ERROR(s->Wait(&status));
    if (WIFSTOPPED(status) && !Alive(pidfd)) {
      s->not_ours_ = true;
      if (WSTOPSIG(status) != SIGTRAP || (status >> 16) != PTRACE_EVENT_STOP) s->pending_signal_ = WSTOPSIG(status);
      return Status::Error(kCannotRestore, "the worker is gone (its pid names another process now)");
    }
    if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP) return s;
    if (WIFSTOPPED(status)) {
      // A signal was on its way to the worker: let it have it after we let go, and give up.
      s->pending_signal_ = WSTOPSIG(status);
      return Status::Error(kCannotRestore,
                           "a signal (" + std::to_string(WSTOPSIG(status)) + ") was being delivered to the worker");
    }
    s->gone_ = true;
    return Status::Error(kCannotRestore, "the worker exited");
  }

  ~Stopped() {
    if (gone_) return;
    if (ptrace(PTRACE_DETACH, pid_, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(pending_signal_))) != 0 &&
        !not_ours_) {
      // Not in a stop we can release it from (killed meanwhile, or it never stopped): it would
      // stay our tracee, and once dead a zombie only we can reap, which keeps its PID namespace
      // (the template's) from ever ending. Kill it and reap it.
      Kill();
    }
  }

  // The worker's stop is bounded: a worker in uninterruptible sleep past the timeout is failed.
  Status Wait(int* status) {
    const int64_t deadline = MonoNs() + kStopTimeoutNs;
    for (int spins = 0;; ++spins) {
      const pid_t r = waitpid(pid_, status, __WALL | WNOHANG);
      if (r == pid_) {
        if (WIFEXITED(*status) || WIFSIGNALED(*status)) gone_ = true;
        return Status::Ok();
      }
      if (r < 0 && errno != EINTR) return Status::Sys(errno, "waitpid for the stopped worker");
      if (MonoNs() > deadline) return Status::Error(Code::kDeadlineExceeded, "the worker did not stop within 2 s");
      if (spins < 64) {
        sched_yield();
      } else {
        timespec ts{0, 20'000};
        nanosleep(&ts, nullptr);
      }
    }
  }

  Status GetRegs(user_regs_struct* regs) {
    iovec iov{regs, sizeof *regs};
    if (ptrace(PTRACE_GETREGSET, pid_, reinterpret_cast<void*>(NT_PRSTATUS), &iov) != 0) {
      return Status::Sys(errno, "ptrace(PTRACE_GETREGSET, NT_PRSTATUS)");
    }
    return Status::Ok();
  }
  Status SetRegs(const user_regs_struct& regs) {
    iovec iov{const_cast<user_regs_struct*>(&regs), sizeof regs};
    if (ptrace(PTRACE_SETREGSET, pid_, reinterpret_cast<void*>(NT_PRSTATUS), &iov) != 0) {
      return Status::Sys(errno, "ptrace(PTRACE_SETREGSET, NT_PRSTATUS)");
    }
    return Status::Ok();
  }
  Status GetXstate(std::vector<char>* out) {
    out->resize(kMaxXstate);
    iovec iov{out->data(), out->size()};
    if (ptrace(PTRACE_GETREGSET, pid_, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) != 0) {
      return Status::Sys(errno, "ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)");
    }
    out->resize(iov.iov_len);
    return Status::Ok();
  }
  Status SetXstate(const std::vector<char>& xstate) {
    iovec iov{const_cast<char*>(xstate.data()), xstate.size()};
    if (ptrace(PTRACE_SETREGSET, pid_, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) != 0) {
      return Status::Sys(errno, "ptrace(PTRACE_SETREGSET, NT_X86_XSTATE)");
    }
    return Status::Ok();
  }

  // Makes the worker execute one system call: its registers point at a `syscall` instruction of
  // its own (the one its parked read(2) entered through), with the call's number and arguments;
  // one single step runs exactly that instruction. orig_rax = -1: no restart logic applies.
  // The caller puts the snapshot's registers back afterwards.
  Result<long> Syscall(const user_regs_struct& base, uint64_t syscall_ip, long nr, uint64_t a0 = 0, uint64_t a1 = 0,
                       uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0) {
    user_regs_struct r = base;
    r.rip = syscall_ip;
    r.rax = static_cast<uint64_t>(nr);
    r.orig_rax = static_cast<uint64_t>(-1);
    r.rdi = a0;
    r.rsi = a1;
    r.rdx = a2;
    r.r10 = a3;
    r.r8 = a4;
    r.r9 = a5;
    GEYSIR_RETURN_IF_ERROR(SetRegs(r));
    if (ptrace(PTRACE_SINGLESTEP, pid_, nullptr, nullptr) != 0) return Status::Sys(errno, "ptrace(PTRACE_SINGLESTEP)");
    int status = 0;
    GEYSIR_RETURN_IF_ERROR(Wait(&status));
    if (gone_) return Status::Error(kCannotRestore, "the worker died during a restore system call");
    if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
      if (WIFSTOPPED(status)) pending_signal_ = WSTOPSIG(status);
      return Status::Error(kCannotRestore, "a signal interrupted a restore system call");
    }
    user_regs_struct after{};
    GEYSIR_RETURN_IF_ERROR(GetRegs(&after));
    return static_cast<long>(after.rax);
  }

  // SIGKILL, then waits for the exit as its tracer: a dead tracee is a zombie until its tracer
  // has seen it, whoever its parent is (bounded: a killed process exits at once, or never).
  void Kill() {
    if (gone_) return;
    gone_ = true;  // a detach now would resume a broken worker
    kill(pid_, SIGKILL);
    const int64_t deadline = MonoNs() + kStopTimeoutNs;
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, __WALL | WNOHANG);
      if (r == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) return;
      if (r < 0 && errno != EINTR) return;  // not ours to wait for any more
      if (MonoNs() > deadline) return;
      timespec ts{0, 50'000};
      nanosleep(&ts, nullptr);
    }
  }

  pid_t pid() const { return pid_; }

 private:
  explicit Stopped(pid_t pid) : pid_(pid) {}
  static bool Alive(int pidfd) {
    return pidfd < 0 || syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0;
  }
  pid_t pid_;
  int pending_signal_ = 0;
  bool gone_ = false;
  bool not_ours_ = false;  // the pid was reused: never kill what it names now
};

// Copies between the worker's memory and ours in batches of IOV_MAX.
class Copier {
 public:
  Copier(pid_t pid, bool to_worker) : pid_(pid), to_worker_(to_worker) {}
  Status Add(uint64_t remote, const char* local, size_t len) {
    if (len == 0) return Status::Ok();
    local_.push_back({const_cast<char*>(local), len});
    remote_.push_back({reinterpret_cast<void*>(remote), len});
    bytes_ += len;
    return local_.size() == kIovMax ? Flush() : Status::Ok();
  }
  Status Flush() {
    if (local_.empty()) return Status::Ok();
    const ssize_t n = to_worker_ ? process_vm_writev(pid_, local_.data(), local_.size(), remote_.data(), remote_.size(), 0)
                                 : process_vm_readv(pid_, local_.data(), local_.size(), remote_.data(), remote_.size(), 0);
    const int err = errno;
    local_.clear();
    remote_.clear();
    const size_t want = std::exchange(bytes_, 0);
    if (n < 0) return Status::Sys(err, to_worker_ ? "process_vm_writev into the worker" : "process_vm_readv from the worker");
    if (static_cast<size_t>(n) != want) {
      return Status::Internal(std::string("partial ") + (to_worker_ ? "process_vm_writev" : "process_vm_readv") + ": " +
                              std::to_string(n) + " of " + std::to_string(want) + " bytes");
    }
    return Status::Ok();
  }

 private:
  pid_t pid_;
  bool to_worker_;
  std::vector<iovec> local_;
  std::vector<iovec> remote_;
  size_t bytes_ = 0;
};

// The worker's memory, read or written. Pages of mappings the worker may read (for a snapshot)
// or write (for a restore) go through process_vm_readv/writev in batches; others (read-only,
// inaccessible) through /proc/PID/mem, which may write where the worker itself may not, as a
// debugger's breakpoints do.
class MemoryIo {
 public:
  MemoryIo(pid_t pid, int mem, bool to_worker) : batch_(pid, to_worker), mem_(mem), to_worker_(to_worker) {}
  Status Write(uint64_t remote, const char* local, size_t len, bool direct) {
    if (direct) return batch_.Add(remote, local, len);
    return Through(remote, const_cast<char*>(local), len);
  }
  Status Read(uint64_t remote, char* local, size_t len, bool direct) {
    if (direct) return batch_.Add(remote, local, len);
    return Through(remote, local, len);
  }
  Status Zero(uint64_t remote, size_t len, bool direct) {
    for (size_t done = 0; done < len;) {
      const size_t n = std::min(len - done, kZeros.size());
      GEYSIR_RETURN_IF_ERROR(Write(remote + done, kZeros.data(), n, direct));
      done += n;
    }
    return Status::Ok();
  }
  Status Flush() { return batch_.Flush(); }

 private:
  Status Through(uint64_t remote, char* local, size_t len) {
    while (len > 0) {
      const ssize_t n = to_worker_ ? pwrite(mem_, local, len, static_cast<off_t>(remote))
                                   : pread(mem_, local, len, static_cast<off_t>(remote));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::Sys(n < 0 ? errno : EIO, std::string(to_worker_ ? "writing" : "reading") +
                                                               " /proc/PID/mem at " + Hex(remote));
      remote += static_cast<uint64_t>(n);
      local += n;
      len -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  static inline const std::vector<char> kZeros = std::vector<char>(64 * kPage, 0);
  Copier batch_;
  int mem_;
  bool to_worker_;
};

// One PAGEMAP_SCAN over [start, end), as many calls as the output needs.
Status Scan(int pagemap, uint64_t start, uint64_t end, uint64_t flags, uint64_t inverted, uint64_t mask,
            uint64_t anyof, uint64_t ret, std::vector<abi::PageRegion>* out) {
  out->clear();
  std::vector<abi::PageRegion> buf(512);
  uint64_t at = start;
  while (at < end) {
    abi::PmScanArg a{};
    a.size = sizeof a;
    a.flags = flags;
    a.start = at;
    a.end = end;
    a.vec = reinterpret_cast<uint64_t>(buf.data());
    a.vec_len = buf.size();
    a.category_inverted = inverted;
    a.category_mask = mask;
    a.category_anyof_mask = anyof;
    a.return_mask = ret;
    const long n = ioctl(pagemap, abi::kPagemapScan, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Sys(errno, "PAGEMAP_SCAN");
    }
    out->insert(out->end(), buf.begin(), buf.begin() + n);
    if (a.walk_end <= at) break;
    at = a.walk_end;
  }
  return Status::Ok();
}

Status WriteProtect(int uffd, uint64_t start, uint64_t end) {
  uffdio_writeprotect wp{};
  wp.range.start = start;
  wp.range.len = end - start;
  wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  while (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
    if (errno != EAGAIN && errno != EINTR) return Status::Sys(errno, "UFFDIO_WRITEPROTECT " + Hex(start) + "-" + Hex(end));
  }
  return Status::Ok();
}

Status Register(int uffd, uint64_t start, uint64_t end) {
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = end - start;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) return Status::Sys(errno, "UFFDIO_REGISTER " + Hex(start) + "-" + Hex(end));
  return Status::Ok();
}

// Adds [start, end) to a sorted list of page runs, merging with the last one when adjacent.
void AddRun(std::vector<std::pair<uint64_t, uint64_t>>* runs, uint64_t start, uint64_t end) {
  if (start >= end) return;
  if (!runs->empty() && runs->back().second >= start) {
    runs->back().second = std::max(runs->back().second, end);
    return;
  }
  runs->emplace_back(start, end);
}

}  // namespace

struct Snapshot::State {
  pid_t pid = -1;
  UniqueFd uffd;
  UniqueFd pidfd;
  UniqueFd pagemap;
  std::string cgroup_procs;
  user_regs_struct regs{};
  std::vector<char> xstate;
  uint64_t syscall_ip = 0;
  // 64 bytes of the parked worker's stack below its red zone, for the arguments of the calls it
  // is made to execute (restored with the rest of its memory afterwards).
  uint64_t scratch = 0;
  uint64_t umask = 022;
  std::string name;  // comm
  // The "hot set": the pages every one of the first kLearningRestores invocations wrote. From
  // then on they are left unprotected after a restore: the worker takes no write-protect fault on
  // them (~1-2.5 us each), and, unprotected, they show as written at every restore and are always
  // copied back, so nothing written there can stay.
  static constexpr int kLearningRestores = 4;
  int restores = 0;
  std::vector<std::pair<uint64_t, uint64_t>> hot;
  // The vDSO's pages: userfaultfd cannot track them, and /proc/self/mem can write them.
  uint64_t vdso_start = 0;
  std::string vdso;

  Result<std::string> ReadVdso() const {
    std::string out(vdso.size(), '\0');
    if (out.empty()) return out;
    const ssize_t n = pread(mem.get(), out.data(), out.size(), static_cast<off_t>(vdso_start));
    if (n != static_cast<ssize_t>(out.size())) return Status::Sys(n < 0 ? errno : EIO, "reading the worker's vDSO");
    return out;
  }
  std::vector<Mapping> maps;
  std::string status_lines;
  std::vector<Descriptor> fds;
  OtherState other;
  uint64_t lo = 0;  // the tracked mappings span [lo, hi)
  uint64_t hi = 0;
  // The content of every tracked page that was present, by address; absent pages were zero
  // (anonymous memory: file-backed private mappings are copied whole).
  std::vector<Extent> extents;
  char* data = nullptr;
  size_t data_size = 0;
  UniqueFd mem;  // /proc/PID/mem: for pages of mappings the worker cannot read or write itself
  UniqueFd message_queues;  // the worker's POSIX message queues (OpenMessageQueues); may be unset

  ~State() {
    if (data != nullptr) munmap(data, data_size);
  }

  // Puts the mappings back as the snapshot had them (see the header); the pages of mappings made
  // again are refilled by the page scan that follows, which finds them missing.
  Status RepairLayout(Stopped& w, const std::vector<Mapping>& now, uint64_t* fixed);

  // The snapshot mapping holding `addr` (the layout is the snapshot's again when this is used).
  const Mapping* MappingAt(uint64_t addr) const {
    auto it = std::upper_bound(maps.begin(), maps.end(), addr, [](uint64_t a, const Mapping& m) { return a < m.end; });
    return it != maps.end() && it->start <= addr ? &*it : nullptr;
  }

  // Queues the snapshot's content of [start, end) for writing back. Where the snapshot had no
  // page: zeros in anonymous memory (what it held then), nothing when `only_present`, and an
  // error in a file mapping it did not copy (read-only ones: written only through
  // /proc/self/mem or after an mprotect, which a restore cannot undo without the file's page).
  Status PutBack(MemoryIo* io, uint64_t start, uint64_t end, bool only_present, uint64_t* pages) const {
    uint64_t at = start;
    while (at < end) {
      const Mapping* m = MappingAt(at);
      if (m == nullptr) return Status::Error(kCannotRestore, "a page outside every mapping changed: " + Hex(at));
      const uint64_t stop = std::min(end, m->end);
      auto it = std::upper_bound(extents.begin(), extents.end(), at,
                                 [](uint64_t a, const Extent& e) { return a < e.end; });
      while (at < stop) {
        const uint64_t next = (it == extents.end() || it->start >= stop) ? stop : std::max(at, it->start);
        if (next > at && !only_present) {  // a gap: the snapshot had no page here
          if (!m->anonymous()) {
            return Status::Error(kCannotRestore, "the invocation wrote to " + Describe(*m) + ", which the snapshot has no copy of");
          }
          *pages += (next - at) / kPage;
          GEYSIR_RETURN_IF_ERROR(io->Zero(at, next - at, m->writable()));
        }
        at = next;
        if (at >= stop) break;
        const uint64_t run_end = std::min(stop, it->end);
        *pages += (run_end - at) / kPage;
        GEYSIR_RETURN_IF_ERROR(io->Write(at, data + it->offset + (at - it->start), run_end - at, m->writable()));
        at = run_end;
        ++it;
      }
    }
    return Status::Ok();
  }

};

using Runs = std::vector<std::pair<uint64_t, uint64_t>>;  // sorted, disjoint [start, end) page runs

// What both sorted run lists cover.
Runs Intersect(const Runs& a, const Runs& b) {
  Runs out;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    const uint64_t lo = std::max(a[i].first, b[j].first);
    const uint64_t hi = std::min(a[i].second, b[j].second);
    if (lo < hi) out.emplace_back(lo, hi);
    if (a[i].second < b[j].second) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

// What `a` covers and `b` does not (both sorted).
Runs Subtract(const Runs& a, const Runs& b) {
  Runs out;
  size_t j = 0;
  for (auto [lo, hi] : a) {
    while (j < b.size() && b[j].second <= lo) ++j;
    for (size_t k = j; k < b.size() && b[k].first < hi; ++k) {
      if (b[k].first > lo) out.emplace_back(lo, b[k].first);
      lo = std::max(lo, b[k].second);
    }
    if (lo < hi) out.emplace_back(lo, hi);
  }
  return out;
}

// Everything of [start, end) that no mapping of `maps` (sorted) covers.
std::vector<std::pair<uint64_t, uint64_t>> Uncovered(uint64_t start, uint64_t end, const std::vector<Mapping>& maps) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t at = start;
  auto it = std::upper_bound(maps.begin(), maps.end(), start, [](uint64_t a, const Mapping& m) { return a < m.end; });
  for (; it != maps.end() && it->start < end && at < end; ++it) {
    if (it->start > at) out.emplace_back(at, std::min(end, it->start));
    at = std::max(at, it->end);
  }
  if (at < end) out.emplace_back(at, end);
  return out;
}

std::string FirstDifference(const std::vector<Mapping>& was, const std::vector<Mapping>& now) {
  for (size_t i = 0; i < std::max(was.size(), now.size()); ++i) {
    if (i >= was.size()) return "added " + Describe(now[i]);
    if (i >= now.size()) return "removed " + Describe(was[i]);
    if (!(was[i] == now[i])) return Describe(was[i]) + " is now " + Describe(now[i]);
  }
  return "none";
}

Status Snapshot::State::RepairLayout(Stopped& w, const std::vector<Mapping>& now, uint64_t* fixed) {
  // The program break first: glibc's heap top lives in the memory about to be restored.
  auto heap_of = [](const std::vector<Mapping>& list) -> const Mapping* {
    for (const Mapping& m : list) {
      if (m.path == "[heap]") return &m;
    }
    return nullptr;
  };
  const Mapping* was_heap = heap_of(maps);
  const Mapping* now_heap = heap_of(now);
  if (was_heap != nullptr && (now_heap == nullptr || now_heap->end != was_heap->end)) {
    auto brk = w.Syscall(regs, syscall_ip, SYS_brk, was_heap->end);
    if (!brk.ok()) return brk.status();
    if (static_cast<uint64_t>(*brk) != was_heap->end) return Status::Error(kCannotRestore, "brk could not be reset");
    // Heap the break gave back is new memory, not yet tracked; the page scan refills it.
    const uint64_t regrown = now_heap == nullptr ? was_heap->start : now_heap->end;
    if (regrown < was_heap->end) GEYSIR_RETURN_IF_ERROR(Register(uffd.get(), regrown, was_heap->end));
    ++*fixed;
  }
  auto current = ReadMappings(pid);
  if (!current.ok()) return current.status();

  // Whatever the snapshot did not have is unmapped; what changed protection gets it back.
  for (const Mapping& m : *current) {
    for (const auto& [a, b] : Uncovered(m.start, m.end, maps)) {
      auto r = w.Syscall(regs, syscall_ip, SYS_munmap, a, b - a);
      if (!r.ok()) return r.status();
      if (*r != 0) return Status::Error(kCannotRestore, "munmap of " + Describe(m) + " failed");
      ++*fixed;
    }
  }
  for (const Mapping& was : maps) {
    for (const Mapping& m : *current) {
      const uint64_t a = std::max(was.start, m.start);
      const uint64_t b = std::min(was.end, m.end);
      if (a >= b || was.SameKind(m)) continue;
      const bool only_protection = was.inode == m.inode && was.path == m.path && was.perms[3] == m.perms[3];
      if (!only_protection) return Status::Error(kCannotRestore, "mapping " + Describe(was) + " was replaced by " + Describe(m));
      auto r = w.Syscall(regs, syscall_ip, SYS_mprotect, a, b - a, static_cast<uint64_t>(was.prot()));
      if (!r.ok()) return r.status();
      if (*r != 0) return Status::Error(kCannotRestore, "mprotect of " + Describe(was) + " failed");
      ++*fixed;
    }
  }
  // Anonymous memory the invocation unmapped is mapped again, tracked, and refilled below.
  for (const Mapping& was : maps) {
    for (const auto& [a, b] : Uncovered(was.start, was.end, *current)) {
      if (!was.tracked() || was.inode != 0) {
        return Status::Error(kCannotRestore, "mapping " + Describe(was) + " was unmapped");
      }
      if (was.path != "[heap]") {
        auto r = w.Syscall(regs, syscall_ip, SYS_mmap, a, b - a, static_cast<uint64_t>(was.prot()),
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, static_cast<uint64_t>(-1), 0);
        if (!r.ok()) return r.status();
        if (static_cast<uint64_t>(*r) != a) return Status::Error(kCannotRestore, "could not map " + Describe(was) + " again");
      }
      GEYSIR_RETURN_IF_ERROR(Register(uffd.get(), a, b));
      ++*fixed;
    }
  }
  auto after = ReadMappings(pid);
  if (!after.ok()) return after.status();
  if (*after != maps) {
    return Status::Error(kCannotRestore, "the memory layout could not be put back: " + FirstDifference(maps, *after));
  }
  return Status::Ok();
}

Support Probe() {
#if !defined(__x86_64__)
  return {false, "restore mode is implemented for x86-64 only"};
#else
  UniqueFd uffd(static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)));
  if (!uffd) return {false, std::string("userfaultfd: ") + std::strerror(errno)};
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC;
  if (ioctl(uffd.get(), UFFDIO_API, &api) != 0) {
    return {false, std::string("userfaultfd has no asynchronous write-protect mode (Linux >= 6.7): ") +
                       std::strerror(errno)};
  }
  UniqueFd pagemap(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap) return {false, std::string("/proc/self/pagemap: ") + std::strerror(errno)};
  static char probe_page[4096] __attribute__((aligned(4096)));
  probe_page[0] = 1;
  abi::PageRegion region{};
  abi::PmScanArg a{};
  a.size = sizeof a;
  a.start = reinterpret_cast<uint64_t>(probe_page);
  a.end = a.start + sizeof probe_page;
  a.vec = reinterpret_cast<uint64_t>(&region);
  a.vec_len = 1;
  a.category_anyof_mask = abi::kPagePresent;
  a.return_mask = abi::kPagePresent;
  if (ioctl(pagemap.get(), abi::kPagemapScan, &a) < 0) {
    return {false, std::string("no PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux >= 6.7): ") + std::strerror(errno)};
  }
  return {true, "userfaultfd asynchronous write-protect and PAGEMAP_SCAN"};
#endif
}

// The address space `maps` would have tracked, and an error past kMaxTrackedBytes.
Status CheckTrackedSize(const std::vector<Mapping>& maps) {
  uint64_t tracked = 0;
  for (const Mapping& m : maps) tracked += m.tracked() ? m.end - m.start : 0;
  if (tracked > kMaxTrackedBytes) {
    return Status::Error(kCannotRestore, "the process maps " + std::to_string(tracked >> 30) +
                                             " GiB of private memory, more than restore mode tracks (" +
                                             std::to_string(kMaxTrackedBytes >> 30) + " GiB)");
  }
  return Status::Ok();
}

Status CheckTemplate(pid_t template_pid) {
  auto lines = ReadStateLines(template_pid);
  if (!lines.ok()) return lines.status();
  if (lines->find("Threads:\t1\n") == std::string::npos) {
    return Status::Error(kCannotRestore, "the function's init code started threads");
  }
  auto maps = ReadMappings(template_pid);
  if (!maps.ok()) return maps.status();
  GEYSIR_RETURN_IF_ERROR(CheckTrackedSize(*maps));
  for (const Mapping& m : *maps) {
    if (m.writable() && m.shared()) {
      return Status::Error(kCannotRestore, "the function's init code made a writable shared mapping (" + Describe(m) +
                                               "), which every child shares");
    }
  }
  return Status::Ok();
}

Snapshot::Snapshot(std::unique_ptr<State> state) : state_(std::move(state)) {}
Snapshot::~Snapshot() = default;
pid_t Snapshot::pid() const { return state_->pid; }
size_t Snapshot::bytes() const { return state_->data_size; }

Result<std::unique_ptr<Snapshot>> Snapshot::Take(SnapshotRequest request) {
#if !defined(__x86_64__)
  return Status::Unavailable("restore mode is implemented for x86-64 only");
#else
  auto st = std::make_unique<State>();
  st->pid = request.pid;
  st->uffd = std::move(request.uffd);
  st->cgroup_procs = std::move(request.cgroup_procs);
  const pid_t pid = request.pid;

  st->pidfd = std::move(request.pidfd);
  auto stopped = Stopped::Stop(pid, st->pidfd.get());
  if (!stopped.ok()) return stopped.status().Wrap("stopping the worker for its snapshot");
  Stopped& w = **stopped;
  GEYSIR_RETURN_IF_ERROR(w.GetRegs(&st->regs));
  // Parked: blocked in read(2) on its channel, interrupted by our stop (the kernel restarts the
  // read when it resumes, and will again each time it resumes from these registers).
  if (st->regs.orig_rax != SYS_read || static_cast<int>(st->regs.rdi) != request.channel_fd ||
      static_cast<long>(st->regs.rax) != -kErestartsys) {
    return Status::Unavailable("the worker is not waiting on its channel yet");
  }
  GEYSIR_RETURN_IF_ERROR(w.GetXstate(&st->xstate));
  st->syscall_ip = st->regs.rip - 2;
  {
    unsigned char insn[2] = {0, 0};
    iovec local{insn, 2};
    iovec remote{reinterpret_cast<void*>(st->syscall_ip), 2};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != 2 || insn[0] != 0x0f || insn[1] != 0x05) {
      return Status::Internal("no syscall instruction before the parked worker's instruction pointer");
    }
  }

  // 64 bytes below the parked worker's red zone: where the arguments of calls made in it go.
  st->scratch = (st->regs.rsp - 1024) & ~uint64_t{63};

  auto state_lines = ReadStateLines(pid);
  if (!state_lines.ok()) return state_lines.status();
  st->status_lines = std::move(state_lines).value();
  st->name = StatusValue(st->status_lines, "Name");
  st->umask = std::strtoull(StatusValue(st->status_lines, "Umask").c_str(), nullptr, 8);
  if (st->status_lines.find("Threads:\t1\n") == std::string::npos) {
    return Status::Error(kCannotRestore, "the worker runs more than one thread (its init code started some)");
  }
  auto fds = ReadDescriptors(pid);
  if (!fds.ok()) return fds.status();
  st->fds = std::move(fds).value();
  auto other = ReadOtherState(pid);
  if (!other.ok()) return other.status();
  st->other = std::move(other).value();
  auto ipc = CountIpcObjects(pid);
  if (!ipc.ok()) return ipc.status();
  if (*ipc != 0) return Status::Error(kCannotRestore, "the worker's IPC namespace holds objects already");
  {
    // Only with an IPC namespace of its own (the sandbox's): the host's holds other programs'.
    auto queues = OpenMessageQueues(pid);
    if (!queues.ok()) return queues.status();
    if (queues->valid()) {
      auto count = CountEntries(queues->get());
      if (!count.ok()) return count.status();
      if (*count != 0) return Status::Error(kCannotRestore, "the worker's IPC namespace holds message queues already");
      st->message_queues = std::move(queues).value();
    }
  }

  auto maps = ReadMappings(pid);
  if (!maps.ok()) return maps.status();
  st->maps = std::move(maps).value();
  GEYSIR_RETURN_IF_ERROR(CheckTrackedSize(st->maps));
  st->pagemap = UniqueFd(open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC));
  if (!st->pagemap) return Status::Sys(errno, "open the worker's pagemap");

  st->mem = UniqueFd(open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDWR | O_CLOEXEC));
  if (!st->mem) return Status::Sys(errno, "open the worker's /proc/PID/mem");

  // What to copy: every present page of private anonymous memory, and private writable file
  // mappings whole (a page of those not yet read would come from the file). Read-only file
  // mappings are not copied: the file has their content, and one written is not restored.
  struct Run {
    uint64_t start, end;
    bool readable;
  };
  std::vector<Run> runs;
  std::vector<abi::PageRegion> regions;
  bool first = true;
  for (const Mapping& m : st->maps) {
    if (m.writable() && m.shared()) {
      return Status::Error(kCannotRestore, "a writable shared mapping (" + Describe(m) +
                                               "): what an invocation writes there cannot be tracked");
    }
    if (!m.tracked()) continue;
    if (first) st->lo = m.start;
    first = false;
    st->hi = m.end;
    if (!m.anonymous()) {
      if (m.writable()) {
        runs.push_back({m.start, m.end, m.readable()});
        continue;
      }
      // A read-only file mapping: only its pages written before the snapshot (relocations made
      // read-only afterwards), which are the process's own and no longer the file's.
      GEYSIR_RETURN_IF_ERROR(Scan(st->pagemap.get(), m.start, m.end, 0, abi::kPageFile,
                                  abi::kPagePresent | abi::kPageFile, 0, abi::kPagePresent, &regions));
      for (const auto& r : regions) runs.push_back({r.start, r.end, m.readable()});
      continue;
    }
    GEYSIR_RETURN_IF_ERROR(Scan(st->pagemap.get(), m.start, m.end, 0, 0, 0, abi::kPagePresent | abi::kPageSwapped,
                                abi::kPagePresent | abi::kPageSwapped, &regions));
    for (const auto& r : regions) runs.push_back({r.start, r.end, m.readable()});
  }
  size_t total = 0;
  for (const Run& r : runs) total += r.end - r.start;
  if (total > request.max_bytes) {
    return Status::Error(Code::kResourceExhausted, "the worker's writable memory (" + std::to_string(total >> 20) +
                                                       " MiB) is over the snapshot limit");
  }
  st->data_size = std::max<size_t>(total, kPage);
  void* buf = mmap(nullptr, st->data_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) return Status::Sys(errno, "mmap for a snapshot", Code::kResourceExhausted);
  st->data = static_cast<char*>(buf);
  for (const Mapping& m : st->maps) {
    if (m.path != "[vdso]") continue;
    st->vdso_start = m.start;
    st->vdso.assign(m.end - m.start, '\0');
    auto content = st->ReadVdso();
    if (!content.ok()) return content.status();
    st->vdso = std::move(content).value();
  }
  MemoryIo reader(pid, st->mem.get(), /*to_worker=*/false);
  size_t offset = 0;
  for (const Run& r : runs) {
    if (!st->extents.empty() && st->extents.back().end == r.start &&
        st->extents.back().offset + (st->extents.back().end - st->extents.back().start) == offset) {
      st->extents.back().end = r.end;
    } else {
      st->extents.push_back(Extent{r.start, r.end, offset});
    }
    GEYSIR_RETURN_IF_ERROR(reader.Read(r.start, st->data + offset, r.end - r.start, r.readable));
    offset += r.end - r.start;
  }
  GEYSIR_RETURN_IF_ERROR(reader.Flush());

  // From now on every write of the worker's to tracked memory shows in the page tables.
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC;
  if (ioctl(st->uffd.get(), UFFDIO_API, &api) != 0) return Status::Sys(errno, "UFFDIO_API on the worker's userfaultfd");
  for (const Mapping& m : st->maps) {
    if (!m.tracked()) continue;
    GEYSIR_RETURN_IF_ERROR(Register(st->uffd.get(), m.start, m.end).Wrap("tracking " + Describe(m)));
    GEYSIR_RETURN_IF_ERROR(WriteProtect(st->uffd.get(), m.start, m.end));
  }
  return std::unique_ptr<Snapshot>(new Snapshot(std::move(st)));
#endif
}

Status Snapshot::Restore(RestoreStats* stats) {
#if !defined(__x86_64__)
  (void)stats;
  return Status::Unavailable("restore mode is implemented for x86-64 only");
#else
  State& st = *state_;
  const int64_t t0 = MonoNs();
  auto stopped = Stopped::Stop(st.pid, st.pidfd.get());
  if (!stopped.ok()) return stopped.status();
  Stopped& w = **stopped;
  // Anything failing from here on leaves the worker half-restored: it is killed, never resumed.
  struct KillUnlessDone {
    Stopped* w;
    bool done = false;
    ~KillUnlessDone() {
      if (!done) w->Kill();
    }
  } guard{&w};

  // State a restore does not undo must be as it was; the name and the umask it puts back.
  auto lines = ReadStateLines(st.pid);
  if (!lines.ok()) return lines.status();
  bool name_changed = false, umask_changed = false;
  if (*lines != st.status_lines) {
    std::string changed;
    for (const std::string& key : ChangedKeys(st.status_lines, *lines)) {
      if (key == "Name") {
        name_changed = true;
      } else if (key == "Umask") {
        umask_changed = true;
      } else {
        changed += (changed.empty() ? "" : ", ") + key;
      }
    }
    if (!changed.empty()) return Status::Error(kCannotRestore, "changed in /proc/PID/status: " + changed);
  }
  if (!st.cgroup_procs.empty()) {
    auto procs = ReadProcs(st.cgroup_procs);
    if (!procs.ok()) return procs.status();
    if (procs->size() != 1 || procs->front() != st.pid) {
      return Status::Error(kCannotRestore, "other processes remain in the worker's cgroup");
    }
  }
  auto other = ReadOtherState(st.pid);
  if (!other.ok()) return other.status();
  if (other->children != st.other.children) return Status::Error(kCannotRestore, "the worker has child processes");
  if (other->cwd != st.other.cwd) return Status::Error(kCannotRestore, "the working directory changed");
  if (other->limits != st.other.limits) return Status::Error(kCannotRestore, "resource limits changed");
  if (other->timers != st.other.timers) return Status::Error(kCannotRestore, "POSIX timers were created");
  if (other->tmp_entries != st.other.tmp_entries) return Status::Error(kCannotRestore, "files were left in /tmp");
  auto fds = ReadDescriptors(st.pid);
  if (!fds.ok()) return fds.status();
  if (*fds != st.fds) return Status::Error(kCannotRestore, "descriptors were opened, closed or moved");
  auto ipc = CountIpcObjects(st.pid);
  if (!ipc.ok()) return ipc.status();
  if (*ipc != 0) return Status::Error(kCannotRestore, "System V IPC objects were created");
  if (st.message_queues) {
    auto queues = CountEntries(st.message_queues.get());
    if (!queues.ok()) return queues.status();
    if (*queues != 0) return Status::Error(kCannotRestore, "POSIX message queues were created");
  }

  auto vdso = st.ReadVdso();
  if (!vdso.ok()) return vdso.status();
  if (*vdso != st.vdso) return Status::Error(kCannotRestore, "the vDSO was written");
  if (other->scheduling != st.other.scheduling || other->timer_slack != st.other.timer_slack) {
    return Status::Error(kCannotRestore, "the scheduling policy, priority or timer slack changed");
  }

  // A pending alarm (ITIMER_REAL runs while the worker waits) would fire in the next invocation:
  // cancelled. The timers that count CPU time, the parent-death signal and the subreaper flag,
  // which a fork never inherits (zero in every snapshot), the runtime resets itself when it
  // resumes, before the next invocation's code (worker/runtime/child_enter.c,
  // geysir_restore_reset): each call made here is a ptrace single step, ~10 us of every restore.
  {
    auto alarm = w.Syscall(st.regs, st.syscall_ip, SYS_alarm, 0);
    if (!alarm.ok()) return alarm.status();
    if (umask_changed) {
      auto r = w.Syscall(st.regs, st.syscall_ip, SYS_umask, st.umask);
      if (!r.ok()) return r.status();
    }
    if (name_changed) {
      char name[16] = {};
      std::memcpy(name, st.name.data(), std::min(st.name.size(), sizeof name - 1));
      iovec nlocal{name, sizeof name};
      iovec nremote{reinterpret_cast<void*>(st.scratch + 32), sizeof name};
      if (process_vm_writev(st.pid, &nlocal, 1, &nremote, 1, 0) != static_cast<ssize_t>(sizeof name)) {
        return Status::Sys(errno, "writing the worker's scratch stack");
      }
      auto r = w.Syscall(st.regs, st.syscall_ip, SYS_prctl, PR_SET_NAME, st.scratch + 32);
      if (!r.ok()) return r.status();
      if (*r != 0) return Status::Error(kCannotRestore, "resetting the process name failed");
    }
  }

  // The layout: mappings the invocation added go, anonymous ones it removed come back.
  MemoryIo writer(st.pid, st.mem.get(), /*to_worker=*/true);
  std::vector<std::pair<uint64_t, uint64_t>> reprotect;
  uint64_t fixed = 0;
  auto maps = ReadMappings(st.pid);
  if (!maps.ok()) return maps.status();
  if (*maps != st.maps) {
    GEYSIR_RETURN_IF_ERROR(st.RepairLayout(w, *maps, &fixed));
  }

  // Pages written, and pages that are not there: one walk of the tracked page tables finds both.
  // Only pages that were present carry write-protection (unpopulated ones get no marker: on a
  // process with terabytes reserved, such as a sanitizer's shadow, the markers' page tables alone
  // would not fit), so a hole reads as "written" and is told apart by being neither present nor
  // swapped out: it holds nothing the invocation wrote, and gets the snapshot's content back
  // only where the snapshot had some (a page the invocation dropped with MADV_DONTNEED).
  std::vector<abi::PageRegion> regions;
  GEYSIR_RETURN_IF_ERROR(Scan(st.pagemap.get(), st.lo, st.hi, 0, abi::kPagePresent, abi::kPageWpAllowed,
                              abi::kPageWritten | abi::kPagePresent,
                              abi::kPageWritten | abi::kPagePresent | abi::kPageSwapped | abi::kPageFile,
                              &regions));
  uint64_t written = 0, refilled = 0;
  Runs written_runs;
  for (const auto& r : regions) {
    const bool present = r.categories & abi::kPagePresent;
    const bool swapped = r.categories & abi::kPageSwapped;  // swapped out, or a protection marker
    if (present && (r.categories & abi::kPageFile)) {
      // Still the file's own page (a private mapping's page is copied away from the file when
      // written): read in since the snapshot, not written. Protected, so it stops showing.
      AddRun(&reprotect, r.start, r.end);
      continue;
    }
    if ((r.categories & abi::kPageWritten) && (present || swapped)) {
      written += (r.end - r.start) / kPage;
      uint64_t n = 0;
      GEYSIR_RETURN_IF_ERROR(st.PutBack(&writer, r.start, r.end, /*only_present=*/false, &n));
      AddRun(&reprotect, r.start, r.end);
      AddRun(&written_runs, r.start, r.end);
    } else {
      uint64_t n = 0;
      GEYSIR_RETURN_IF_ERROR(st.PutBack(&writer, r.start, r.end, /*only_present=*/true, &n));
      if (n > 0) AddRun(&reprotect, r.start, r.end);
      refilled += n;
    }
  }
  GEYSIR_RETURN_IF_ERROR(writer.Flush());
  // Our own writes cleared the pages' protection: protect them again, all but the hot set's.
  // Range by range while they are few; past that one walk that protects every written page
  // (the hot set's too, which then learn nothing this time) costs less than an ioctl and a TLB
  // flush per range (Flask without a hot set: ~200 ranges, 210 -> ~90 us).
  std::sort(reprotect.begin(), reprotect.end());
  if (st.restores < State::kLearningRestores) {
    st.hot = st.restores == 0 ? written_runs : Intersect(st.hot, written_runs);
    ++st.restores;
  } else {
    reprotect = Subtract(reprotect, st.hot);
  }
  constexpr size_t kRangesPerIoctl = 48;
  if (reprotect.size() <= kRangesPerIoctl) {
    for (const auto& [a, b] : reprotect) GEYSIR_RETURN_IF_ERROR(WriteProtect(st.uffd.get(), a, b));
  } else {
    std::vector<abi::PageRegion> ignored;
    GEYSIR_RETURN_IF_ERROR(Scan(st.pagemap.get(), st.lo, st.hi, abi::kScanWpMatching, 0,
                                abi::kPageWpAllowed | abi::kPageWritten, 0, abi::kPageWritten, &ignored));
  }

  GEYSIR_RETURN_IF_ERROR(w.SetXstate(st.xstate));
  GEYSIR_RETURN_IF_ERROR(w.SetRegs(st.regs));
  guard.done = true;
  if (stats != nullptr) {
    stats->pages_written = written;
    stats->pages_refilled = refilled;
    stats->mappings_fixed = fixed;
    stats->stopped_ns = MonoNs() - t0;
  }
  return Status::Ok();
#endif
}

}  // namespace geysir::worker::restore
