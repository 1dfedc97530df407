// Scheduler: the pool logic. Admission (per-function concurrency limit, bounded FIFO wait
// queue, throttling), one Pool per (function name, revision_id) with its template and
// pre-forked children, deadlines, idle eviction (scale to zero), revision supersede, and the
// Lambda log lines (START / END / REPORT) of each invocation.
//
// It knows nothing of sockets or processes: time comes from a Clock, processes from a
// Launcher (scheduler/sandbox.h), logs go to a LogSink. scheduler/server.h wires the real ones.
//
// Critical path of one warm invocation: Submit -> a ready child -> Child::Invoke -> report ->
// `done`. Forking (replenishing the pre-forked set), cgroup removal and log shipping happen
// after `done`, off that path.
//
// Reuse mode (a function's GEYSIR_EXECUTION_MODE=reuse, Lambda's execution model): a pool keeps
// the workers that answered as idle warm workers (most recently used first) and hands the next
// invocation to one of them: no fork, no cgroup, no waiting for EOF on its path. A worker is
// forked only when none is idle (no pre-forking ahead of demand), and one left idle for
// worker_idle_timeout_ms is stopped. A worker that timed out, crashed or was OOM-killed is
// finished as in per-request mode: the next invocation gets a fresh one.
//
// Thread safety: loop thread only. `done` callbacks run from Submit's caller's loop, never
// inside Submit() itself except for immediate refusals (throttled, shutting down, invalid).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/messages.h"
#include "scheduler/clock.h"
#include "scheduler/sandbox.h"

namespace geysir::scheduler {

// Where the scheduler's log batches go (control, over control.sock; a vector in tests).
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void Emit(proto::LogBatch batch) = 0;
  // Emits `batch` and calls `durable` once it is stored, or once it is given up (dropped and
  // counted). Sinks without acknowledgements call it at once.
  virtual void EmitDurable(proto::LogBatch batch, std::function<void()> durable) {
    Emit(std::move(batch));
    if (durable) durable();
  }
};

struct SchedulerOptions {
  uint32_t uid_base = 200000;
  uint32_t prefork = 2;                 // children kept forked ahead of demand, at least
  uint32_t max_prefork = 32;            // adaptive pre-forking never goes above this
  uint32_t function_concurrency = 32;   // default per-function limit (reserved_concurrency wins)
  uint32_t queue_depth = 64;            // per-function FIFO of requests waiting for a slot
  int64_t idle_timeout_ms = 300000;     // a pool unused this long is stopped (scale to zero)
  int64_t init_timeout_ms = 10000;      // Lambda's init phase limit
  size_t log_tail_bytes = 4096;
  // Template recycling: a template older than this, or that has forked this many children, is
  // replaced by a fresh one (new address-space layout); the old one is removed once its
  // running children are done. 0 disables either bound. worker/sandbox/README.md: trade-off.
  // Not for reuse-mode pools, whose workers keep one layout for their whole life anyway.
  int64_t template_max_age_ms = 600000;
  uint64_t template_max_children = 10000;
  // Bounds over all functions, so that the scheduler's processes, descriptors and cgroups stay
  // flat however many functions come and go. A pool is one (function, revision): at most one
  // template (plus, briefly, a recycled one finishing its invocations). A new pool beyond
  // max_pools stops the least recently used idle pool first; if every pool is busy the new
  // invocation is throttled. Pre-forked children (idle, waiting for work) are capped in total;
  // children forked for a waiting invocation are not (the concurrency limits bound those).
  // 0 disables either bound.
  uint32_t max_pools = 64;
  uint32_t max_prefork_total = 128;
  // Reuse mode (FunctionConfig::execution_mode): a warm worker left idle this long is stopped,
  // so a pool scales down worker by worker after a burst (and to zero with the pool's idle
  // eviction). Idle workers count against max_prefork_total with the pre-forked children.
  int64_t worker_idle_timeout_ms = 60000;
};

struct SchedulerStats {
  size_t pools = 0;
  size_t templates = 0;          // pools with a live template
  size_t ready_children = 0;
  size_t forks_in_flight = 0;
  size_t invocations = 0;        // accepted and not yet answered
  size_t finishing = 0;          // answered, child cleanup / log shipping still under way
  uint64_t templates_started = 0;
  uint64_t throttled = 0;
  uint64_t completed = 0;        // answered invocations, any outcome
  uint64_t ran_on_ready_child = 0;  // found a pre-forked child waiting: no fork on their path
  uint64_t waited_for_child = 0;    // had to wait for a fork (or a cold start)
  uint64_t pools_evicted = 0;       // idle pools stopped to stay within max_pools
  size_t idle_workers = 0;          // reuse mode: warm workers waiting for their next invocation
  uint64_t ran_on_warm_worker = 0;  // reuse mode: served by a worker that had served before
  uint64_t workers_idle_stopped = 0;
  size_t restoring = 0;              // restore mode: children being brought back to their snapshot
  uint64_t restored = 0;             // restore mode: children restored after an invocation
  uint64_t restore_discards = 0;     // restore mode: children that could not be, discarded
};

class Scheduler {
 public:
  using Done = std::function<void(proto::InvokeResult result, std::string payload)>;

  Scheduler(SchedulerOptions options, Clock* clock, Launcher* launcher, LogSink* logs);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs one invocation; `done` is called exactly once.
  void Submit(proto::InvokeRequest request, std::string event, Done done);

  // Graceful stop: later Submit()s are refused (kInternal), accepted invocations — running or
  // queued — finish (each bounded by its deadline), then every template is stopped and every
  // child cleaned up, and `drained` fires.
  void Shutdown(std::function<void()> drained);

  // A function was deleted (`revision_id` empty: all its pools) or a revision of it replaced:
  // the matching pools are superseded at once, so their idle children and templates stop now
  // and the rest when their running invocations end (control's "retire").
  void Retire(const std::string& function_name, const std::string& revision_id);

  SchedulerStats stats() const;
  // The uid a function's processes run as (allocated on first sight; tests).
  std::optional<uint32_t> UidOf(const std::string& function_name) const;

 private:
  struct Pool;
  struct Function;
  struct Invocation;
  struct Finishing;
  enum class TemplateState { kNone, kStarting, kReady };

  Function& FunctionFor(const std::string& name);
  Pool* PoolFor(Function& fn, const proto::FunctionConfig& config);
  void Supersede(Pool* pool);
  uint32_t LimitOf(const Pool& pool) const;

  void Admit(Invocation* inv);
  void Dispatch(Invocation* inv);
  void Run(Invocation* inv, std::unique_ptr<Child> child);
  void OnReport(Invocation* inv, ChildReport report);
  void OnDeadline(Invocation* inv);
  void ReleaseSlot(Function& fn);

  void EnsureTemplate(Pool* pool);
  void OnTemplateReady(Pool* pool, double init_ms, std::string init_log);
  void OnInitError(Pool* pool, double init_ms, std::string error, std::string init_log);
  void OnTemplateExit(Pool* pool, Status why);
  void OnForked(Pool* pool, Result<std::unique_ptr<Child>> child);
  void StopTemplate(Pool* pool);
  void Replenish(Pool* pool);
  bool RecycleDue(const Pool& pool) const;
  void Recycle(Pool* pool);
  void ReapRetired(Pool* pool);
  uint32_t PreforkTarget(Pool* pool);
  void NoteConcurrency(Pool* pool);
  void MaybeIdle(Pool* pool);
  bool KeepWarm(const Pool& pool, uint64_t tpl_gen) const;
  void ParkWorker(Pool* pool, std::unique_ptr<Child> child, bool fresh = false);
  void RestoreChild(Pool* pool, std::unique_ptr<Child> child, uint64_t tpl_gen);
  void OnRestored(Pool* pool, Child* child, uint64_t tpl_gen, const RestoreOutcome& outcome);
  void ArmWorkerIdleTimer(Pool* pool);
  void OnWorkerIdleTimer(Pool* pool);
  void OnIdleTimer(Pool* pool);
  void RemovePool(Pool* pool);
  bool MakeRoomForPool();
  uint32_t PreforkRoom(const Pool& pool) const;

  // Cancels `inv`'s deadline, stamps `result` with its ids and forgets it; returns its callback.
  Done Forget(Invocation* inv, proto::InvokeResult& result);
  // Answers and forgets `inv` (its Child, if any, moves to the finishing set first).
  void Answer(Invocation* inv, proto::InvokeResult result, std::string payload);
  // Forgets `inv` as Answer does, but returns the answer to send instead of sending it: an
  // async invocation is answered only once its log batch is durable (WhenLogged).
  std::function<void()> Detach(Invocation* inv, proto::InvokeResult result, std::string payload);
  static bool AnswerAfterLogs(const Invocation& inv);
  void Fail(Invocation* inv, proto::InvokeOutcome outcome, const std::string& error_type, std::string body);
  void FinishChild(std::unique_ptr<Child> child, proto::LogBatch batch, size_t insert_at,
                   std::vector<std::string> trailer, std::function<void()> durable = {});
  void EmitInitLog(Pool* pool, const std::string& init_log);
  proto::LogBatch BatchFor(const Pool& pool, const std::string& request_id) const;
  void CheckDrained();

  SchedulerOptions options_;
  Clock* clock_;
  Launcher* launcher_;
  LogSink* logs_;

  std::unordered_map<std::string, std::unique_ptr<Function>> functions_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pool>> pools_;
  std::unordered_map<Invocation*, std::unique_ptr<Invocation>> invocations_;
  std::unordered_map<Finishing*, std::unique_ptr<Finishing>> finishing_;
  uint32_t next_uid_index_ = 0;
  uint64_t templates_started_ = 0;
  uint64_t throttled_ = 0;
  uint64_t completed_ = 0;
  uint64_t ran_on_ready_child_ = 0;
  uint64_t waited_for_child_ = 0;
  uint64_t pools_evicted_ = 0;
  uint64_t ran_on_warm_worker_ = 0;
  uint64_t restored_ = 0;
  uint64_t restore_discards_ = 0;
  uint64_t workers_idle_stopped_ = 0;
  bool shutting_down_ = false;
  // Answers waiting for their log batch to be durable (Detach); a drain waits for them too. The
  // answers reach the scheduler through `self_`, cleared when it is destroyed (the log sink may
  // outlive it).
  size_t awaiting_logs_ = 0;
  std::shared_ptr<Scheduler*> self_ = std::make_shared<Scheduler*>(this);
  std::function<void()> drained_;
  Clock::TimerId drain_timer_ = 0;
};

}  // namespace geysir::scheduler
