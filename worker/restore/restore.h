// Restore: per-request isolation without a process per request. A worker (a child of the
// function's template, sandboxed like any) is snapshotted once, parked before its first
// invocation; after each invocation it is stopped and brought back to that snapshot, so the next
// invocation finds exactly the memory, registers and process state the first one found.
//
// How (docs/security.md, "Restore mode"):
//   - Memory: the worker made a userfaultfd for its own address space (UFFD_USER_MODE_ONLY) and
//     handed it over. Take() registers every private writable mapping for asynchronous
//     write-protection (Linux 6.7) and copies its present pages. A write by the worker clears a
//     page's protection bit in the page table, at the cost of a minor fault and no message; after
//     the invocation one PAGEMAP_SCAN ioctl on /proc/PID/pagemap lists the pages written (and the
//     pages that are gone, e.g. by MADV_DONTNEED), which are copied back and protected again.
//   - Layout: mappings added by the invocation are unmapped, anonymous ones it removed are mapped
//     again and refilled, protections and the program break put back, by system calls the
//     restorer makes the stopped worker execute (ptrace).
//   - Registers: the general-purpose and the whole XSAVE state (FPU, SSE, AVX...), as they were
//     while the worker waited in read(2) on its channel: it resumes in that same read.
//   - Process state it cannot put back cheaply (threads, child processes, descriptors, signal
//     dispositions and mask, pending signals, cwd, rlimits, System V IPC objects, files in /tmp,
//     POSIX timers) is compared with the snapshot: any difference makes Restore() fail, and the
//     caller discards the worker. Correctness never rests on the fast path.
//
// Blocking: every call stops the worker with ptrace and waits for it; run them on a thread of
// their own (the scheduler's restorer thread), never on an event loop. All calls for one worker
// must come from one thread at a time (ptrace ties a tracee to the thread that attached; each
// call attaches and detaches). The caller must not reap tracee stops: a SIGCHLD handler that
// waits for any child must pass __WNOTHREAD (scheduler/server.cpp).
//
// x86-64 only for now (register sets and the system-call instruction); Probe() says so elsewhere.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace geysir::worker::restore {

// What this machine offers. `detail` says why not, or what was found.
struct Support {
  bool available = false;
  std::string detail;
};
Support Probe();

// What every child of `template_pid` would inherit that rules a snapshot out: more than one thread
// (a fork copies only the forking one, but the runtime's state then says otherwise) or a writable
// shared mapping (its pages are the template's and every sibling's: nothing to restore them to).
// OK when its children can be restored; otherwise the message says why not.
Status CheckTemplate(pid_t template_pid);

struct SnapshotRequest {
  pid_t pid = -1;
  // The worker's userfaultfd for its own memory (it made it, sent it, closed its copy).
  UniqueFd uffd;
  // A pidfd of the worker, taken while it was known to be the worker: every stop checks through
  // it that the pid still names the worker (a pid is reused once its process is gone).
  UniqueFd pidfd;
  // The worker's descriptor number for its channel: the snapshot is taken while it is blocked
  // reading it (a worker caught anywhere else is not parked yet: kUnavailable, try again).
  int channel_fd = -1;
  // The worker's cgroup.procs ("" without cgroups): at a restore the worker must be alone in it.
  std::string cgroup_procs;
  // The most memory a snapshot may copy; a worker with more is refused (kResourceExhausted).
  size_t max_bytes = size_t{1} << 30;
};

struct RestoreStats {
  uint64_t pages_written = 0;    // written by the invocation, copied back
  uint64_t pages_refilled = 0;   // present in the snapshot, gone after the invocation, copied back
  uint64_t mappings_fixed = 0;   // mappings unmapped, mapped again or re-protected, brk reset
  int64_t stopped_ns = 0;        // how long the worker was stopped
};

class Snapshot {
 public:
  // Stops the worker, checks that it is parked and can be restored, copies what a restore needs
  // and resumes it. Errors: kUnavailable (not parked yet; retry), anything else (this worker
  // cannot be restored: e.g. a second thread, a writable shared mapping; the message says what).
  static Result<std::unique_ptr<Snapshot>> Take(SnapshotRequest request);
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  // After an invocation: stops the worker, brings it back to the snapshot and resumes it.
  // An error names what could not be undone; the worker is then in no defined state and must
  // be discarded (killed) by the caller.
  Status Restore(RestoreStats* stats);

  pid_t pid() const;
  size_t bytes() const;  // memory the snapshot holds

  struct State;

 private:
  explicit Snapshot(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace geysir::worker::restore
