// The scheduler's seam in front of function processes: the pool logic is tested against fakes
// behind it (tests/unit/scheduler/fakes.h; docs/style.md, "Shape").
//
// The pool logic (scheduler/scheduler.h) decides *when* to start a template, fork a child, hand
// it an invocation, kill it; this interface is *how*. The real implementation
// (scheduler/process_sandbox.h) runs geysir-worker templates with cgroups over the protocol in
// docs/wire-formats.md ("Scheduler <-> template"); unit tests use fakes.
//
// Contract for every callback below: it runs from the event loop, never from inside the call
// that caused it (so the caller's state is consistent), and never after the object that would
// fire it has been destroyed (destroying a Template or Child cancels its callbacks). Destroying
// a Child or Template from inside one of its own callbacks is allowed.
//
// Thread safety: loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proto/messages.h"
#include "base/status.h"

namespace geysir::scheduler {

// How an invocation on a child ended, as far as the child is concerned.
struct ChildReport {
  enum class Kind { kResult, kDied };
  Kind kind = Kind::kDied;
  bool handler_error = false;  // kResult with status "error": body is Lambda's error object
  std::string body;            // kResult: the payload
  // kDied: the child exited without a result. Exit status from the template's "exited"
  // message (-1 / 0 when it never came), and whether its cgroup recorded an OOM kill.
  int exit_code = -1;
  int exit_signal = 0;
  bool oom_killed = false;
  // The invoke frame could not be delivered at all (the child was already gone): the
  // invocation never started and may be retried on another child.
  bool never_started = false;
};

// How a restore went (Child::Restore).
struct RestoreOutcome {
  Status status;                // not OK: why the child could not be restored (it is discarded)
  uint64_t pages_written = 0;   // pages the invocation wrote, copied back
  uint64_t pages_refilled = 0;  // pages the invocation dropped, copied back
  uint64_t mappings_fixed = 0;  // mappings unmapped, remapped or re-protected, brk reset
  int64_t stopped_ns = 0;       // how long the child was stopped
};

// The header fields of the "invoke" frame a child receives (docs/wire-formats.md).
struct ChildInvoke {
  std::string request_id;
  int64_t deadline_ms = 0;  // Unix ms
  std::string function_arn;
  std::string client_context_b64;
};

// One pre-forked child: a process waiting in its own cgroup to serve exactly one invocation (in
// reuse mode, one after another: see Reuse()).
// Destroying it kills whatever is left in its cgroup and releases everything (asynchronously).
class Child {
 public:
  virtual ~Child() = default;
  virtual pid_t pid() const = 0;
  // False once the child is known to have died while waiting for work.
  virtual bool alive() const = 0;
  // Sends the invoke frame; `on_report` fires exactly once, unless Kill() comes first.
  virtual void Invoke(const ChildInvoke& invoke, std::string_view event,
                      std::function<void(ChildReport)> on_report) = 0;
  // SIGKILL everything in the child's cgroup (timeout). `on_report` will not fire.
  virtual void Kill() = 0;
  // The log text the child wrote so far, read without blocking; each byte is returned once.
  virtual std::string DrainLog() = 0;
  // The peak memory of the child's cgroup so far.
  virtual uint64_t PeakMemoryBytes() const = 0;
  // After the report (or Kill): waits, bounded, for the log's EOF, kills what is left, removes
  // the cgroup, then calls `done` with any log text not yet drained. Destroy after `done`.
  virtual void Finish(std::function<void(std::string late_log)> done) = 0;
  // Reuse mode (FunctionConfig::execution_mode), after a kResult report: the child waits on its
  // channel for its next Invoke (it flushed its log before its result, so DrainLog already
  // returned all of this invocation's). False when it cannot serve again (a child of a
  // per-request function, one that died, was killed or wrote past its result): Finish it.
  virtual bool Reuse() = 0;
  // Restore mode (worker/restore/restore.h): a per-request child that was snapshotted before it
  // was handed out. After a kResult report Restorable() says whether it can be restored; then
  // Restore() brings it back to its snapshot off the loop, and `done` fires exactly once (unless
  // the child is destroyed first). On success it waits for its next Invoke; on failure it is
  // dead or dying: Finish it. Children of other modes are never restorable.
  virtual bool Restorable() const { return false; }
  virtual void Restore(std::function<void(RestoreOutcome)> done) { (void)done; }
};

struct TemplateRequest {
  proto::FunctionConfig function;
  std::string template_id;  // unique per template instance (log stream, cgroup names)
  uint32_t uid = 0;         // the function's own unprivileged uid (gid is the same number)
};

struct TemplateEvents {
  // Init succeeded; `init_log` is what the template printed during init.
  std::function<void(double init_ms, std::string init_log)> on_ready;
  // Init failed; `error` is Lambda's error object as JSON text. The template exits after it.
  std::function<void(double init_ms, std::string error, std::string init_log)> on_init_error;
  // The template died or never started (launch failure, crash, killed).
  std::function<void(Status why)> on_exit;
  // Exactly one per Fork(): a child ready for an invocation (already in its cgroup), or why not.
  std::function<void(Result<std::unique_ptr<Child>>)> on_forked;
};

// A running template. Destroying it closes its control socket and kills and removes its
// cgroup; children already handed out live on independently.
class Template {
 public:
  virtual ~Template() = default;
  virtual pid_t pid() const = 0;
  virtual void Fork() = 0;  // valid after on_ready
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts a template; init runs asynchronously and ends in on_ready, on_init_error or on_exit.
  virtual Result<std::unique_ptr<Template>> Start(const TemplateRequest& request, TemplateEvents events) = 0;
};

}  // namespace geysir::scheduler
