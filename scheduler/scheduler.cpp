#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>

#include "base/log.h"
#include "base/random.h"
#include "scheduler/lambda_format.h"

namespace geysir::scheduler {

using proto::InvokeOutcome;
using proto::InvokeResult;
using proto::LogBatch;
using proto::LogEvent;

namespace {

constexpr size_t kMaxSupersededRemembered = 16;
constexpr int kMaxStartRetries = 1;      // an invocation survives one template crash
constexpr int kMaxChildRetries = 2;      // ... and two children found dead at hand-over
constexpr uint32_t kMaxForkFailures = 3; // consecutive; then pre-forking pauses until a success
constexpr size_t kMaxInitLogBytes = 64 * 1024;

std::string StreamDate(int64_t unix_ms) {
  // "YYYY/MM/DD" as in Lambda's log stream names.
  std::string iso = IsoTime(unix_ms);
  return iso.substr(0, 4) + "/" + iso.substr(5, 2) + "/" + iso.substr(8, 2);
}

}  // namespace

struct Scheduler::Function {
  std::string name;
  uint32_t uid_index = 0;
  uint32_t active = 0;                 // admitted invocations: each holds a concurrency slot
  std::deque<Invocation*> queue;       // waiting for a slot, FIFO
  // Reserved concurrency as the newest request carried it: it belongs to the function (all its
  // versions share it) and changes without a new revision.
  std::optional<uint32_t> reserved;
  // Per version ("$LATEST", "1", ...): the pool of the newest revision seen. Published versions
  // are immutable, so only $LATEST's pool is ever superseded; keeping them apart means invoking
  // version 1 does not throw away $LATEST's template, and the reverse.
  std::map<std::string, Pool*> current;
  std::deque<std::string> superseded;  // revisions replaced by a newer one (bounded)
};

struct Scheduler::Pool {
  proto::FunctionConfig config;
  Function* fn = nullptr;
  bool superseded = false;

  TemplateState state = TemplateState::kNone;
  std::unique_ptr<Template> tpl;
  // Template recycling (worker/sandbox/README.md): each template started for this pool gets a
  // generation; a retired one is kept, without children of its own to hand out, until no
  // running invocation uses a child of it (it is PID 1 of its namespace: its exit kills them).
  uint64_t tpl_gen = 0;
  int64_t tpl_started_ms = 0;
  uint64_t tpl_forks = 0;
  std::map<uint64_t, std::unique_ptr<Template>> retired;
  std::string template_id;
  std::string log_stream;
  Clock::TimerId init_timer = 0;
  double init_ms = 0;
  bool cold_pending = false;           // the next invocation to run reports Init Duration

  std::deque<std::unique_ptr<Child>> ready;
  uint32_t forks_in_flight = 0;
  uint32_t fork_failures = 0;
  std::deque<Invocation*> waiting;     // admitted, waiting for a child
  std::set<Invocation*> running;
  uint32_t queued = 0;                 // entries of fn->queue that belong to this pool

  int64_t last_used_ms = 0;
  Clock::TimerId idle_timer = 0;

  // Reuse mode: workers that answered and wait for their next invocation, most recently used
  // first, so that light traffic keeps reusing the same worker and the others time out.
  bool reuse = false;
  struct Warm {
    std::unique_ptr<Child> child;
    int64_t idle_since_ms = 0;  // MonoMs
  };
  std::deque<Warm> warm;
  Clock::TimerId warm_timer = 0;

  // Restore mode: children that answered and are being brought back to their snapshot (off the
  // loop); they return to `ready`, or are discarded.
  std::vector<std::unique_ptr<Child>> restoring;

  // Adaptive pre-forking: the peak concurrency of the current and the previous 1 s window.
  int64_t window_start_ms = 0;
  uint32_t peak_cur = 0;
  uint32_t peak_prev = 0;
};

struct Scheduler::Invocation {
  enum class Phase { kNew, kQueued, kWaiting, kRunning };
  proto::InvokeRequest req;
  std::string event;
  Done done;
  Pool* pool = nullptr;
  Phase phase = Phase::kNew;
  bool admitted = false;
  int start_retries = 0;
  int child_retries = 0;
  int64_t arrival_ms = 0;              // MonoMs
  int64_t start_ns = 0;                // MonoNs when handed to a child
  int64_t start_wall_ms = 0;
  Clock::TimerId deadline_timer = 0;
  std::unique_ptr<Child> child;
  uint64_t tpl_gen = 0;                // the generation of the template `child` was forked from
  std::optional<double> init_ms;       // cold start
};

struct Scheduler::Finishing {
  std::unique_ptr<Child> child;
  LogBatch batch;
  size_t insert_at = 0;                // late log lines go here (before END)
};

Scheduler::Scheduler(SchedulerOptions options, Clock* clock, Launcher* launcher, LogSink* logs)
    : options_(options), clock_(clock), launcher_(launcher), logs_(logs) {}

Scheduler::~Scheduler() {
  *self_ = nullptr;
  // Children and templates are destroyed with their owners; their destructors clean up.
  for (auto& [key, pool] : pools_) {
    clock_->Cancel(pool->idle_timer);
    clock_->Cancel(pool->init_timer);
    clock_->Cancel(pool->warm_timer);
  }
  for (auto& [p, inv] : invocations_) clock_->Cancel(inv->deadline_timer);
  clock_->Cancel(drain_timer_);
}

std::optional<uint32_t> Scheduler::UidOf(const std::string& function_name) const {
  auto it = functions_.find(function_name);
  if (it == functions_.end()) return std::nullopt;
  return options_.uid_base + it->second->uid_index;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.pools = pools_.size();
  for (const auto& [key, pool] : pools_) {
    if (pool->tpl) ++s.templates;
    s.ready_children += pool->ready.size();
    s.forks_in_flight += pool->forks_in_flight;
    s.idle_workers += pool->warm.size();
    s.restoring += pool->restoring.size();
  }
  s.invocations = invocations_.size();
  s.finishing = finishing_.size();
  s.templates_started = templates_started_;
  s.throttled = throttled_;
  s.completed = completed_;
  s.ran_on_ready_child = ran_on_ready_child_;
  s.waited_for_child = waited_for_child_;
  s.pools_evicted = pools_evicted_;
  s.ran_on_warm_worker = ran_on_warm_worker_;
  s.workers_idle_stopped = workers_idle_stopped_;
  s.restored = restored_;
  s.restore_discards = restore_discards_;
  return s;
}

Scheduler::Function& Scheduler::FunctionFor(const std::string& name) {
  auto it = functions_.find(name);
  if (it != functions_.end()) return *it->second;
  auto fn = std::make_unique<Function>();
  fn->name = name;
  // Each function gets its own uid for its whole life in this process, so two functions never
  // share a uid (and therefore cannot signal or ptrace each other).
  fn->uid_index = next_uid_index_++;
  Function& ref = *fn;
  functions_.emplace(name, std::move(fn));
  return ref;
}

Scheduler::Pool* Scheduler::PoolFor(Function& fn, const proto::FunctionConfig& config) {
  const auto key = std::make_pair(config.name, config.revision_id);
  auto it = pools_.find(key);
  Pool*& current = fn.current[config.version];
  if (current && current->config.revision_id == config.revision_id) return current;

  const bool old_revision =
      std::find(fn.superseded.begin(), fn.superseded.end(), config.revision_id) != fn.superseded.end();
  if (!old_revision && current) {
    // A newer revision: the current pool drains and is reaped as soon as it is idle.
    Pool* prev = current;
    fn.superseded.push_back(prev->config.revision_id);
    if (fn.superseded.size() > kMaxSupersededRemembered) fn.superseded.pop_front();
    current = nullptr;
    Supersede(prev);
  }
  if (it != pools_.end()) {
    if (!old_revision) current = it->second.get();
    return it->second.get();
  }
  auto pool = std::make_unique<Pool>();
  pool->config = config;
  pool->fn = &fn;
  pool->reuse = config.execution_mode == proto::ExecutionMode::kReuse;
  // A late request for a revision already replaced is served by a pool that is reaped as
  // soon as it is idle, without pre-forking.
  pool->superseded = old_revision;
  pool->last_used_ms = clock_->MonoMs();
  pool->window_start_ms = pool->last_used_ms;
  Pool* raw = pool.get();
  pools_.emplace(key, std::move(pool));
  if (!old_revision) current = raw;
  return raw;
}

void Scheduler::Supersede(Pool* pool) {
  pool->superseded = true;
  pool->ready.clear();  // idle children of old code are of no use any more
  pool->warm.clear();   // nor idle workers: destroying one closes its channel and its cgroup
  log::Info("pool_superseded", {{"function", pool->config.name}, {"revision_id", pool->config.revision_id}});
  MaybeIdle(pool);  // reaped on the next loop turn if idle
}

void Scheduler::Retire(const std::string& function_name, const std::string& revision_id) {
  auto fit = functions_.find(function_name);
  if (fit == functions_.end()) return;
  Function& fn = *fit->second;
  std::vector<Pool*> matching;
  for (auto& [key, pool] : pools_) {
    if (key.first == function_name && (revision_id.empty() || key.second == revision_id) && !pool->superseded) {
      matching.push_back(pool.get());
    }
  }
  for (Pool* pool : matching) {
    // A late invoke of this revision is served without pre-forking, and reaped when idle.
    fn.superseded.push_back(pool->config.revision_id);
    if (fn.superseded.size() > kMaxSupersededRemembered) fn.superseded.pop_front();
    auto cur = fn.current.find(pool->config.version);
    if (cur != fn.current.end() && cur->second == pool) fn.current.erase(cur);
    log::Info("pool_retired", {{"function", function_name}, {"revision_id", pool->config.revision_id},
                               {"running", pool->running.size()}});
    Supersede(pool);
  }
}

uint32_t Scheduler::LimitOf(const Pool& pool) const {
  return pool.fn->reserved.value_or(options_.function_concurrency);
}

// ---- admission ---------------------------------------------------------------------------

void Scheduler::Submit(proto::InvokeRequest request, std::string event, Done done) {
  auto refuse = [&](InvokeOutcome outcome, const std::string& message) {
    InvokeResult r;
    r.id = request.id;
    r.request_id = request.request_id;
    r.outcome = outcome;
    r.executed_version = request.function.version;
    r.memory_size_mb = request.function.memory_mb;
    done(std::move(r), MessageObject(message));
  };
  if (shutting_down_) return refuse(InvokeOutcome::kInternal, "the scheduler is shutting down");
  if (request.function.name.empty()) return refuse(InvokeOutcome::kInternal, "invoke without a function name");
  if (request.function.timeout_s == 0) request.function.timeout_s = 3;
  if (request.function.memory_mb == 0) request.function.memory_mb = 128;

  if (!pools_.count(std::make_pair(request.function.name, request.function.revision_id)) && !MakeRoomForPool()) {
    ++throttled_;
    return refuse(InvokeOutcome::kThrottled, "Rate exceeded: every one of the scheduler's " +
                                                 std::to_string(options_.max_pools) + " function pools is busy");
  }
  Function& fn = FunctionFor(request.function.name);
  fn.reserved = request.function.reserved_concurrency;
  Pool* pool = PoolFor(fn, request.function);

  auto owned = std::make_unique<Invocation>();
  Invocation* inv = owned.get();
  inv->req = std::move(request);
  inv->event = std::move(event);
  inv->done = std::move(done);
  inv->pool = pool;
  inv->arrival_ms = clock_->MonoMs();
  invocations_.emplace(inv, std::move(owned));

  const uint32_t limit = LimitOf(*pool);
  if (fn.active < limit && fn.queue.empty()) {
    Admit(inv);
    return;
  }
  // Reserved concurrency is a hard cap, as on Lambda: beyond it an invocation is throttled at
  // once (429 ReservedFunctionConcurrentInvocationLimitExceeded), never queued. Without one, a
  // burst above the default limit waits in the bounded queue.
  if (limit > 0 && !fn.reserved && fn.queue.size() < options_.queue_depth) {
    inv->phase = Invocation::Phase::kQueued;
    fn.queue.push_back(inv);
    ++pool->queued;
    inv->deadline_timer = clock_->Schedule(int64_t{inv->req.function.timeout_s} * 1000, [this, inv] { OnDeadline(inv); });
    return;
  }
  ++throttled_;
  Fail(inv, InvokeOutcome::kThrottled, "", MessageObject("Rate exceeded"));
}

void Scheduler::Admit(Invocation* inv) {
  ++inv->pool->fn->active;
  inv->admitted = true;
  Dispatch(inv);
}

void Scheduler::ReleaseSlot(Function& fn) {
  if (fn.active > 0) --fn.active;
  while (!fn.queue.empty()) {
    Invocation* next = fn.queue.front();
    if (fn.active >= LimitOf(*next->pool)) break;
    fn.queue.pop_front();
    --next->pool->queued;
    Admit(next);  // keeps its deadline timer: queue time counts against it
  }
}

void Scheduler::NoteConcurrency(Pool* pool) {
  const int64_t now = clock_->MonoMs();
  if (now - pool->window_start_ms >= 1000) {
    pool->peak_prev = now - pool->window_start_ms >= 2000 ? 0 : pool->peak_cur;
    pool->peak_cur = 0;
    pool->window_start_ms = now;
  }
  uint32_t c = static_cast<uint32_t>(pool->running.size() + pool->waiting.size());
  pool->peak_cur = std::max(pool->peak_cur, c);
}

// Below max_pools, or made so by stopping the least recently used idle pool (called from
// Submit, a top-level call: nothing up the stack holds the pool removed). False: every pool is
// busy.
bool Scheduler::MakeRoomForPool() {
  if (options_.max_pools == 0) return true;
  while (pools_.size() >= options_.max_pools) {
    Pool* victim = nullptr;
    for (auto& [key, pool] : pools_) {
      Pool* p = pool.get();
      if (!p->running.empty() || !p->waiting.empty() || p->queued > 0) continue;
      if (victim == nullptr || p->last_used_ms < victim->last_used_ms) victim = p;
    }
    if (victim == nullptr) return false;
    log::Info("pool_evicted", {{"function", victim->config.name}, {"revision_id", victim->config.revision_id},
                               {"idle_ms", clock_->MonoMs() - victim->last_used_ms}, {"pools", pools_.size()}});
    ++pools_evicted_;
    RemovePool(victim);
  }
  return true;
}

// How many children `pool` may keep pre-forked (ready or being forked) within
// max_prefork_total, given what the other pools hold.
uint32_t Scheduler::PreforkRoom(const Pool& pool) const {
  if (options_.max_prefork_total == 0) return UINT32_MAX;
  size_t others = 0;
  for (const auto& [key, p] : pools_) {
    if (p.get() != &pool) others += p->ready.size() + p->forks_in_flight + p->warm.size();
  }
  return others >= options_.max_prefork_total ? 0 : static_cast<uint32_t>(options_.max_prefork_total - others);
}

uint32_t Scheduler::PreforkTarget(Pool* pool) {
  NoteConcurrency(pool);
  uint32_t target = std::max(options_.prefork, std::max(pool->peak_cur, pool->peak_prev));
  uint32_t cap = std::min(options_.max_prefork, LimitOf(*pool));
  return std::min(target, cap);
}

void Scheduler::Dispatch(Invocation* inv) {
  Pool* pool = inv->pool;
  pool->last_used_ms = clock_->MonoMs();
  while (!pool->warm.empty()) {
    std::unique_ptr<Child> child = std::move(pool->warm.front().child);
    pool->warm.pop_front();
    if (!child->alive()) continue;  // exited while idle: destroying it cleans up
    ++ran_on_warm_worker_;
    Run(inv, std::move(child));
    NoteConcurrency(pool);
    Replenish(pool);
    return;
  }
  while (!pool->ready.empty()) {
    std::unique_ptr<Child> child = std::move(pool->ready.front());
    pool->ready.pop_front();
    if (!child->alive()) continue;  // died while waiting: destroying it cleans up
    ++ran_on_ready_child_;
    Run(inv, std::move(child));
    NoteConcurrency(pool);
    Replenish(pool);
    return;
  }
  inv->phase = Invocation::Phase::kWaiting;
  pool->waiting.push_back(inv);
  ++waited_for_child_;
  NoteConcurrency(pool);
  if (inv->deadline_timer == 0) {
    int64_t left = int64_t{inv->req.function.timeout_s} * 1000 - (clock_->MonoMs() - inv->arrival_ms);
    inv->deadline_timer = clock_->Schedule(left, [this, inv] { OnDeadline(inv); });
  }
  if (pool->state == TemplateState::kNone) {
    EnsureTemplate(pool);
  } else {
    Replenish(pool);
  }
}

void Scheduler::Run(Invocation* inv, std::unique_ptr<Child> child) {
  Pool* pool = inv->pool;
  inv->phase = Invocation::Phase::kRunning;
  inv->child = std::move(child);
  // Children of a retired template are dropped, never handed out: this one is the current's.
  inv->tpl_gen = pool->tpl_gen;
  pool->running.insert(inv);
  clock_->Cancel(inv->deadline_timer);
  const int64_t timeout_ms = int64_t{inv->req.function.timeout_s} * 1000;
  inv->deadline_timer = clock_->Schedule(timeout_ms, [this, inv] { OnDeadline(inv); });
  inv->start_ns = clock_->MonoNs();
  inv->start_wall_ms = clock_->WallMs();
  if (pool->cold_pending) {
    inv->init_ms = pool->init_ms;
    pool->cold_pending = false;
  }
  ChildInvoke ci;
  ci.request_id = inv->req.request_id;
  ci.deadline_ms = inv->start_wall_ms + timeout_ms;
  ci.function_arn = inv->req.function.arn;
  ci.client_context_b64 = inv->req.client_context_b64;
  inv->child->Invoke(ci, inv->event, [this, inv](ChildReport report) { OnReport(inv, std::move(report)); });
}

// ---- completion --------------------------------------------------------------------------

LogBatch Scheduler::BatchFor(const Pool& pool, const std::string& request_id) const {
  LogBatch b;
  b.function_name = pool.config.name;
  b.version = pool.config.version;
  b.log_stream = pool.log_stream;
  b.request_id = request_id;
  return b;
}

void Scheduler::OnReport(Invocation* inv, ChildReport report) {
  Pool* pool = inv->pool;
  if (report.kind == ChildReport::Kind::kDied && report.never_started && inv->child_retries < kMaxChildRetries) {
    // The child was gone before it got the invocation: nothing ran, so try another one.
    ++inv->child_retries;
    pool->running.erase(inv);
    inv->child.reset();
    clock_->Cancel(inv->deadline_timer);
    inv->deadline_timer = 0;
    Dispatch(inv);
    return;
  }
  clock_->Cancel(inv->deadline_timer);
  inv->deadline_timer = 0;

  const double duration_ms = static_cast<double>(clock_->MonoNs() - inv->start_ns) / 1e6;
  const int64_t now_wall = clock_->WallMs();
  const std::string& rid = inv->req.request_id;
  std::string log_text = inv->child->DrainLog();
  const uint64_t peak = inv->child->PeakMemoryBytes();

  InvokeResult result;
  std::string payload;
  std::vector<std::string> error_lines;
  if (report.kind == ChildReport::Kind::kResult) {
    if (report.handler_error) {
      result.outcome = InvokeOutcome::kUnhandled;
      result.error_type = ErrorTypeOf(report.body, "Runtime.Unknown");
    } else {
      result.outcome = InvokeOutcome::kOk;
    }
    payload = std::move(report.body);
  } else {
    result.outcome = InvokeOutcome::kUnhandled;
    const std::string why = "Runtime exited with error: " +
                            (report.oom_killed ? std::string("signal: killed")
                                               : ExitDescription(report.exit_code, report.exit_signal));
    result.error_type = report.oom_killed ? "Runtime.OutOfMemory" : "Runtime.ExitError";
    const std::string message = "RequestId: " + rid + " Error: " + why;
    payload = ErrorObject(message, result.error_type);
    error_lines.push_back(message);
    error_lines.push_back(result.error_type);
  }
  result.duration_ms = duration_ms;
  result.billed_duration_ms = BilledMs(duration_ms);
  result.max_memory_used_mb = ToMb(peak);
  result.init_duration_ms = inv->init_ms;
  result.worker_pid = static_cast<int32_t>(inv->child->pid());

  LogBatch batch = BatchFor(*pool, rid);
  batch.outcome = result.outcome == InvokeOutcome::kOk ? "ok" : "unhandled";
  batch.duration_ms = duration_ms;
  batch.events.push_back({inv->start_wall_ms, StartLine(rid, pool->config.version)});
  for (auto& line : SplitLines(log_text)) batch.events.push_back({now_wall, std::move(line)});
  for (auto& line : error_lines) batch.events.push_back({now_wall, std::move(line)});
  const size_t insert_at = batch.events.size();
  batch.events.push_back({now_wall, EndLine(rid)});
  batch.events.push_back({now_wall, ReportLine(rid, duration_ms, result.billed_duration_ms, pool->config.memory_mb,
                                               result.max_memory_used_mb, inv->init_ms)});
  if (inv->req.want_log_tail) {
    std::vector<std::string> lines;
    for (const auto& e : batch.events) lines.push_back(e.message);
    result.log_tail = Tail(lines, options_.log_tail_bytes);
  }

  std::unique_ptr<Child> child = std::move(inv->child);
  const uint64_t gen = inv->tpl_gen;
  pool->running.erase(inv);
  Function& fn = *pool->fn;
  if (pool->reuse && report.kind == ChildReport::Kind::kResult) {
    // A reuse worker flushed its log before its result: the batch is complete now, with no EOF
    // to wait for. The worker goes back to the idle set, or (not kept) is destroyed, which
    // closes its channel (it exits) and removes its cgroup.
    if (AnswerAfterLogs(*inv)) {
      logs_->EmitDurable(std::move(batch), Detach(inv, std::move(result), std::move(payload)));
    } else {
      Answer(inv, std::move(result), std::move(payload));
      logs_->Emit(std::move(batch));
    }
    if (KeepWarm(*pool, gen) && child->Reuse()) ParkWorker(pool, std::move(child));
  } else if (report.kind == ChildReport::Kind::kResult && child->Restorable()) {
    // Restore mode: the child flushed its log before its result too, so the batch is complete;
    // the child is brought back to its snapshot after the answer, off the critical path.
    if (AnswerAfterLogs(*inv)) {
      logs_->EmitDurable(std::move(batch), Detach(inv, std::move(result), std::move(payload)));
    } else {
      Answer(inv, std::move(result), std::move(payload));
      logs_->Emit(std::move(batch));
    }
    RestoreChild(pool, std::move(child), gen);
  } else if (AnswerAfterLogs(*inv)) {
    FinishChild(std::move(child), std::move(batch), insert_at, {}, Detach(inv, std::move(result), std::move(payload)));
  } else {
    Answer(inv, std::move(result), std::move(payload));
    FinishChild(std::move(child), std::move(batch), insert_at, {});
  }
  ReleaseSlot(fn);
  Replenish(pool);
  MaybeIdle(pool);
}

void Scheduler::OnDeadline(Invocation* inv) {
  inv->deadline_timer = 0;
  Pool* pool = inv->pool;
  Function& fn = *pool->fn;
  const std::string& rid = inv->req.request_id;
  const int64_t now_wall = clock_->WallMs();
  switch (inv->phase) {
    case Invocation::Phase::kQueued: {
      fn.queue.erase(std::find(fn.queue.begin(), fn.queue.end(), inv));
      --pool->queued;
      const double waited = static_cast<double>(clock_->MonoMs() - inv->arrival_ms) / 1000.0;
      Fail(inv, InvokeOutcome::kTimeout, "Sandbox.Timedout",
           ErrorObject(TimeoutMessage(now_wall, rid, waited), "Sandbox.Timedout"));
      MaybeIdle(pool);
      return;
    }
    case Invocation::Phase::kWaiting: {
      pool->waiting.erase(std::find(pool->waiting.begin(), pool->waiting.end(), inv));
      const double waited = static_cast<double>(clock_->MonoMs() - inv->arrival_ms) / 1000.0;
      Fail(inv, InvokeOutcome::kTimeout, "Sandbox.Timedout",
           ErrorObject(TimeoutMessage(now_wall, rid, waited), "Sandbox.Timedout"));
      ReleaseSlot(fn);
      MaybeIdle(pool);
      return;
    }
    case Invocation::Phase::kRunning:
      break;
    case Invocation::Phase::kNew:
      return;
  }
  // The function ran out of time: kill it and everything it started.
  inv->child->Kill();
  const double duration_ms = static_cast<double>(clock_->MonoNs() - inv->start_ns) / 1e6;
  std::string log_text = inv->child->DrainLog();
  const uint64_t peak = inv->child->PeakMemoryBytes();
  const std::string message = TimeoutMessage(now_wall, rid, duration_ms / 1000.0);

  InvokeResult result;
  result.outcome = InvokeOutcome::kTimeout;
  result.error_type = "Sandbox.Timedout";
  result.duration_ms = duration_ms;
  result.billed_duration_ms = BilledMs(duration_ms);
  result.max_memory_used_mb = ToMb(peak);
  result.init_duration_ms = inv->init_ms;
  result.worker_pid = static_cast<int32_t>(inv->child->pid());

  LogBatch batch = BatchFor(*pool, rid);
  batch.outcome = "timeout";
  batch.duration_ms = duration_ms;
  batch.events.push_back({inv->start_wall_ms, StartLine(rid, pool->config.version)});
  for (auto& line : SplitLines(log_text)) batch.events.push_back({now_wall, std::move(line)});
  const size_t insert_at = batch.events.size();
  batch.events.push_back({now_wall, EndLine(rid)});
  batch.events.push_back({now_wall, ReportLine(rid, duration_ms, result.billed_duration_ms, pool->config.memory_mb,
                                               result.max_memory_used_mb, inv->init_ms)});
  batch.events.push_back({now_wall, message});
  if (inv->req.want_log_tail) {
    std::vector<std::string> lines;
    for (const auto& e : batch.events) lines.push_back(e.message);
    result.log_tail = Tail(lines, options_.log_tail_bytes);
  }
  std::unique_ptr<Child> child = std::move(inv->child);
  pool->running.erase(inv);
  if (AnswerAfterLogs(*inv)) {
    FinishChild(std::move(child), std::move(batch), insert_at, {},
                Detach(inv, std::move(result), ErrorObject(message, "Sandbox.Timedout")));
  } else {
    Answer(inv, std::move(result), ErrorObject(message, "Sandbox.Timedout"));
    FinishChild(std::move(child), std::move(batch), insert_at, {});
  }
  ReleaseSlot(fn);
  Replenish(pool);
  MaybeIdle(pool);
}

Scheduler::Done Scheduler::Forget(Invocation* inv, InvokeResult& result) {
  clock_->Cancel(inv->deadline_timer);
  result.id = inv->req.id;
  result.request_id = inv->req.request_id;
  result.executed_version = inv->req.function.version;
  result.memory_size_mb = inv->req.function.memory_mb;
  Done done = std::move(inv->done);
  invocations_.erase(inv);  // destroys inv
  ++completed_;
  return done;
}

void Scheduler::Answer(Invocation* inv, InvokeResult result, std::string payload) {
  Done done = Forget(inv, result);
  done(std::move(result), std::move(payload));
  CheckDrained();
}

// Control deletes an async event once it has its result. Answered before the invocation's log
// batch (its lines and its metric) was stored, a scheduler killed in between left an
// acknowledged event with no trace; answered after, such a kill leaves the event unanswered, and
// control runs it again (at least once, as Lambda's async invocations are).
bool Scheduler::AnswerAfterLogs(const Invocation& inv) {
  return inv.req.source == proto::InvokeSource::kAsync || inv.req.source == proto::InvokeSource::kSchedule;
}

std::function<void()> Scheduler::Detach(Invocation* inv, InvokeResult result, std::string payload) {
  Done done = Forget(inv, result);
  ++awaiting_logs_;
  return [self = self_, done = std::move(done), result = std::move(result), payload = std::move(payload)]() mutable {
    if (done) done(std::move(result), std::move(payload));
    done = nullptr;
    if (Scheduler* s = *self) {
      --s->awaiting_logs_;
      s->CheckDrained();
    }
  };
}

void Scheduler::Fail(Invocation* inv, InvokeOutcome outcome, const std::string& error_type, std::string body) {
  InvokeResult r;
  r.outcome = outcome;
  r.error_type = error_type;
  Answer(inv, std::move(r), std::move(body));
}

void Scheduler::FinishChild(std::unique_ptr<Child> child, LogBatch batch, size_t insert_at,
                            std::vector<std::string> trailer, std::function<void()> durable) {
  auto owned = std::make_unique<Finishing>();
  Finishing* f = owned.get();
  f->child = std::move(child);
  f->batch = std::move(batch);
  f->insert_at = insert_at;
  for (auto& t : trailer) f->batch.events.push_back({clock_->WallMs(), std::move(t)});
  finishing_.emplace(f, std::move(owned));
  f->child->Finish([this, f, durable = std::move(durable)](std::string late_log) mutable {
    if (!late_log.empty() && !f->batch.events.empty()) {
      std::vector<LogEvent> late;
      const int64_t now = clock_->WallMs();
      for (auto& line : SplitLines(late_log)) late.push_back({now, std::move(line)});
      f->batch.events.insert(f->batch.events.begin() + static_cast<std::ptrdiff_t>(f->insert_at),
                             std::make_move_iterator(late.begin()), std::make_move_iterator(late.end()));
    }
    if (!f->batch.events.empty()) {
      logs_->EmitDurable(std::move(f->batch), std::move(durable));
    } else if (durable) {
      durable();
    }
    finishing_.erase(f);  // destroys the child: allowed from inside its Finish callback
    CheckDrained();
  });
}

// ---- templates and children --------------------------------------------------------------

void Scheduler::EnsureTemplate(Pool* pool) {
  if (pool->tpl) return;
  pool->template_id = RandomHex(16);
  pool->log_stream = StreamDate(clock_->WallMs()) + "/[" + pool->config.version + "]" + pool->template_id;
  TemplateRequest req;
  req.function = pool->config;
  req.template_id = pool->template_id;
  req.uid = options_.uid_base + pool->fn->uid_index;
  const uint64_t gen = ++pool->tpl_gen;
  TemplateEvents ev;
  // Events of a retired template (gen no longer current) only matter for its own life: its
  // exit frees it, a child it forks late is dropped.
  ev.on_ready = [this, pool, gen](double init_ms, std::string init_log) {
    if (gen == pool->tpl_gen) OnTemplateReady(pool, init_ms, std::move(init_log));
  };
  ev.on_init_error = [this, pool, gen](double init_ms, std::string error, std::string init_log) {
    if (gen == pool->tpl_gen) OnInitError(pool, init_ms, std::move(error), std::move(init_log));
  };
  ev.on_exit = [this, pool, gen](Status why) {
    if (gen == pool->tpl_gen) return OnTemplateExit(pool, std::move(why));
    pool->retired.erase(gen);  // destroying it from its own callback is allowed (sandbox.h)
  };
  ev.on_forked = [this, pool, gen](Result<std::unique_ptr<Child>> child) {
    if (gen == pool->tpl_gen) OnForked(pool, std::move(child));
  };
  auto started = launcher_->Start(req, std::move(ev));
  if (!started.ok()) {
    log::Error("template_start_failed", {{"function", pool->config.name}, {"error", started.status().ToString()}});
    std::deque<Invocation*> waiters = std::move(pool->waiting);
    pool->waiting.clear();
    Function& fn = *pool->fn;
    for (Invocation* inv : waiters) {
      Fail(inv, InvokeOutcome::kInternal, "", MessageObject("could not start the function's sandbox: " + started.status().message()));
    }
    for (size_t i = 0; i < waiters.size(); ++i) ReleaseSlot(fn);
    MaybeIdle(pool);
    return;
  }
  pool->tpl = std::move(started).value();
  pool->state = TemplateState::kStarting;
  pool->fork_failures = 0;
  pool->tpl_started_ms = clock_->MonoMs();
  pool->tpl_forks = 0;
  ++templates_started_;
  pool->init_timer = clock_->Schedule(options_.init_timeout_ms, [this, pool] {
    pool->init_timer = 0;
    if (pool->state != TemplateState::kStarting) return;
    log::Warn("template_init_timeout", {{"function", pool->config.name}, {"template_id", pool->template_id}});
    OnTemplateExit(pool, Status::Error(Code::kDeadlineExceeded, "the init phase did not finish in time"));
  });
}

void Scheduler::EmitInitLog(Pool* pool, const std::string& init_log) {
  if (init_log.empty()) return;
  LogBatch b = BatchFor(*pool, "");
  const int64_t now = clock_->WallMs();
  std::string_view text(init_log.data(), std::min(init_log.size(), kMaxInitLogBytes));
  for (auto& line : SplitLines(text)) b.events.push_back({now, std::move(line)});
  logs_->Emit(std::move(b));
}

void Scheduler::OnTemplateReady(Pool* pool, double init_ms, std::string init_log) {
  clock_->Cancel(pool->init_timer);
  pool->init_timer = 0;
  pool->state = TemplateState::kReady;
  pool->init_ms = init_ms;
  pool->cold_pending = true;
  log::Info("template_ready", {{"function", pool->config.name}, {"template_id", pool->template_id},
                               {"pid", pool->tpl->pid()}, {"init_ms", init_ms}});
  EmitInitLog(pool, init_log);
  Replenish(pool);
  MaybeIdle(pool);
}

void Scheduler::OnInitError(Pool* pool, double init_ms, std::string error, std::string init_log) {
  clock_->Cancel(pool->init_timer);
  pool->init_timer = 0;
  log::Warn("template_init_error", {{"function", pool->config.name}, {"template_id", pool->template_id}});
  EmitInitLog(pool, init_log);
  StopTemplate(pool);
  // Every invocation waiting for this init gets its error; the next one re-runs init, as
  // Lambda does.
  std::deque<Invocation*> waiters = std::move(pool->waiting);
  pool->waiting.clear();
  Function& fn = *pool->fn;
  const std::string type = ErrorTypeOf(error, "Runtime.Unknown");
  for (Invocation* inv : waiters) {
    const std::string& rid = inv->req.request_id;
    const int64_t now = clock_->WallMs();
    LogBatch batch = BatchFor(*pool, rid);
    batch.outcome = "unhandled";  // the init failed: an error invocation, as Lambda counts it
    batch.events.push_back({now, StartLine(rid, pool->config.version)});
    batch.events.push_back({now, EndLine(rid)});
    batch.events.push_back({now, ReportLine(rid, 0, 1, pool->config.memory_mb, 0, init_ms)});
    InvokeResult r;
    r.outcome = InvokeOutcome::kUnhandled;
    r.error_type = type;
    r.init_duration_ms = init_ms;
    r.billed_duration_ms = 1;
    if (inv->req.want_log_tail) {
      std::vector<std::string> lines = SplitLines(init_log);
      for (const auto& e : batch.events) lines.push_back(e.message);
      r.log_tail = Tail(lines, options_.log_tail_bytes);
    }
    if (AnswerAfterLogs(*inv)) {
      logs_->EmitDurable(std::move(batch), Detach(inv, std::move(r), error));
    } else {
      logs_->Emit(std::move(batch));
      Answer(inv, std::move(r), error);
    }
  }
  for (size_t i = 0; i < waiters.size(); ++i) ReleaseSlot(fn);
  MaybeIdle(pool);
}

void Scheduler::StopTemplate(Pool* pool) {
  clock_->Cancel(pool->init_timer);
  pool->init_timer = 0;
  pool->tpl.reset();  // closes the control socket; the template's cgroup is killed and removed
  pool->state = TemplateState::kNone;
  pool->forks_in_flight = 0;  // their callbacks died with the template
  pool->cold_pending = false;
}

void Scheduler::OnTemplateExit(Pool* pool, Status why) {
  log::Warn("template_exited", {{"function", pool->config.name}, {"template_id", pool->template_id},
                                {"why", why.ToString()}});
  StopTemplate(pool);
  // Children already forked serve on, but exit statuses would no longer be reported: drop the
  // idle ones and fork fresh children from the new template.
  pool->ready.clear();
  pool->warm.clear();
  std::deque<Invocation*> keep;
  std::vector<Invocation*> failed;
  for (Invocation* inv : pool->waiting) {
    if (inv->start_retries < kMaxStartRetries) {
      ++inv->start_retries;
      keep.push_back(inv);
    } else {
      failed.push_back(inv);
    }
  }
  pool->waiting = std::move(keep);
  Function& fn = *pool->fn;
  for (Invocation* inv : failed) {
    Fail(inv, InvokeOutcome::kInternal, "", MessageObject("the function's sandbox failed: " + why.message()));
  }
  for (size_t i = 0; i < failed.size(); ++i) ReleaseSlot(fn);
  // Rebuild at once for the invocations still waiting (each retried at most once); otherwise
  // on the next request.
  if (!pool->waiting.empty() && !pool->tpl) EnsureTemplate(pool);
  MaybeIdle(pool);
}

void Scheduler::OnForked(Pool* pool, Result<std::unique_ptr<Child>> child) {
  if (pool->forks_in_flight > 0) --pool->forks_in_flight;
  if (!child.ok()) {
    ++pool->fork_failures;
    log::Warn("fork_failed", {{"function", pool->config.name}, {"error", child.status().ToString()}});
    if (!pool->waiting.empty()) {
      Invocation* inv = pool->waiting.front();
      pool->waiting.pop_front();
      Function& fn = *pool->fn;
      Fail(inv, InvokeOutcome::kInternal, "", MessageObject("could not prepare a process for the function: " + child.status().message()));
      ReleaseSlot(fn);
    }
    Replenish(pool);
    MaybeIdle(pool);
    return;
  }
  pool->fork_failures = 0;
  std::unique_ptr<Child> c = std::move(child).value();
  if (!pool->waiting.empty()) {
    Invocation* inv = pool->waiting.front();
    pool->waiting.pop_front();
    Run(inv, std::move(c));
  } else if (!pool->superseded && !shutting_down_) {
    if (pool->reuse) {
      // Forked for an invocation a warm worker took meanwhile: idle like any other worker (and
      // timed out like one), within max_prefork_total.
      if (KeepWarm(*pool, pool->tpl_gen)) ParkWorker(pool, std::move(c), /*fresh=*/true);
    } else {
      pool->ready.push_back(std::move(c));
    }
  }
  Replenish(pool);
}

void Scheduler::Replenish(Pool* pool) {
  ReapRetired(pool);
  if (pool->state != TemplateState::kReady || !pool->tpl) return;
  if (RecycleDue(*pool)) return Recycle(pool);
  // Forget children that died while waiting.
  pool->ready.erase(std::remove_if(pool->ready.begin(), pool->ready.end(),
                                   [](const std::unique_ptr<Child>& c) { return !c->alive(); }),
                    pool->ready.end());
  size_t want = pool->waiting.size();
  // Reuse mode forks for waiting invocations only: its idle workers are the ones kept warm.
  if (!pool->reuse && !pool->superseded && !shutting_down_ && pool->fork_failures < kMaxForkFailures) {
    want += std::min(PreforkTarget(pool), PreforkRoom(*pool));
  }
  if (pool->fork_failures >= kMaxForkFailures) want = std::min<size_t>(want, 1);
  while (pool->ready.size() + pool->forks_in_flight + pool->restoring.size() < want) {
    ++pool->forks_in_flight;
    ++pool->tpl_forks;
    pool->tpl->Fork();
  }
}

bool Scheduler::RecycleDue(const Pool& pool) const {
  if (pool.superseded || shutting_down_) return false;  // it goes away anyway
  // A reuse worker serves invocation after invocation in one address space by design (as a
  // Lambda execution environment does): a new template would add no layout diversity, only
  // throw the warm workers away (they die with the template, PID 1 of their namespace).
  if (pool.reuse) return false;
  const bool too_old = options_.template_max_age_ms > 0 &&
                       clock_->MonoMs() - pool.tpl_started_ms >= options_.template_max_age_ms;
  const bool too_many = options_.template_max_children > 0 && pool.tpl_forks >= options_.template_max_children;
  return too_old || too_many;
}

// A new template for the same code, so that children stop sharing one address-space layout
// (and one copy of the random generators' state) forever. The old one finishes what it runs.
void Scheduler::Recycle(Pool* pool) {
  log::Info("template_recycled", {{"function", pool->config.name}, {"template_id", pool->template_id},
                                  {"age_ms", clock_->MonoMs() - pool->tpl_started_ms}, {"forks", pool->tpl_forks}});
  pool->retired[pool->tpl_gen] = std::move(pool->tpl);
  // Idle children of the old template would keep its layout in service: drop them.
  pool->ready.clear();
  pool->warm.clear();
  StopTemplate(pool);  // pool->tpl is already empty: this resets the pool's template state
  ReapRetired(pool);
  EnsureTemplate(pool);  // at once: the next invocation waits for less of the new init
}

void Scheduler::ReapRetired(Pool* pool) {
  for (auto it = pool->retired.begin(); it != pool->retired.end();) {
    const uint64_t gen = it->first;
    const bool in_use = std::any_of(pool->running.begin(), pool->running.end(),
                                    [gen](const Invocation* inv) { return inv->tpl_gen == gen; });
    it = in_use ? std::next(it) : pool->retired.erase(it);
  }
}

void Scheduler::MaybeIdle(Pool* pool) {
  if (!pool->running.empty() || !pool->waiting.empty() || pool->queued > 0) return;
  // Never removes the pool itself: callers up the stack may still hold it. Removal happens in
  // OnIdleTimer, a top-level callback; superseded pools (and all pools at shutdown) go on the
  // next loop turn.
  const bool reap_now = pool->superseded || shutting_down_;
  if (pool->idle_timer != 0) {
    if (!reap_now) return;
    clock_->Cancel(pool->idle_timer);
  }
  const int64_t due = reap_now ? 0 : pool->last_used_ms + options_.idle_timeout_ms - clock_->MonoMs();
  pool->idle_timer = clock_->Schedule(due, [this, pool] { OnIdleTimer(pool); });
}

// A reuse worker that answered may serve again if it belongs to the pool's current, ready
// template (a retired or dead template's workers are not handed out), the pool is neither
// superseded nor shutting down, and idle processes stay within max_prefork_total (a waiting
// invocation takes it at once, so it always may then).
bool Scheduler::KeepWarm(const Pool& pool, uint64_t tpl_gen) const {
  if (pool.superseded || shutting_down_ || !pool.tpl || pool.state != TemplateState::kReady) return false;
  if (tpl_gen != pool.tpl_gen) return false;
  if (!pool.waiting.empty()) return true;
  return PreforkRoom(pool) > pool.ready.size() + pool.forks_in_flight + pool.warm.size();
}

// A worker that served goes first (the next invocation finds its state warm); a `fresh` one,
// forked for an invocation that a warm worker took meanwhile, goes last and times out with the
// least recently used (the idle set stays ordered by idle time, newest first).
void Scheduler::ParkWorker(Pool* pool, std::unique_ptr<Child> child, bool fresh) {
  if (!pool->waiting.empty()) {
    Invocation* next = pool->waiting.front();
    pool->waiting.pop_front();
    if (!fresh) ++ran_on_warm_worker_;
    Run(next, std::move(child));
    return;
  }
  const int64_t now = clock_->MonoMs();
  if (fresh) {
    pool->warm.push_back(Pool::Warm{std::move(child), pool->warm.empty() ? now : pool->warm.back().idle_since_ms});
  } else {
    pool->warm.push_front(Pool::Warm{std::move(child), now});
  }
  ArmWorkerIdleTimer(pool);
}

// Restore mode: the pool owns the child while the restorer works on it (destroying it, with the
// pool, cancels the callback).
void Scheduler::RestoreChild(Pool* pool, std::unique_ptr<Child> child, uint64_t tpl_gen) {
  Child* raw = child.get();
  pool->restoring.push_back(std::move(child));
  raw->Restore([this, pool, raw, tpl_gen](RestoreOutcome outcome) { OnRestored(pool, raw, tpl_gen, outcome); });
}

// A restored child serves the next waiting invocation or waits in `ready` like a pre-forked one;
// one that could not be restored is discarded (its cgroup killed and removed) and the pool forks
// a fresh child from the template, as it would have in fork mode.
void Scheduler::OnRestored(Pool* pool, Child* raw, uint64_t tpl_gen, const RestoreOutcome& outcome) {
  auto it = std::find_if(pool->restoring.begin(), pool->restoring.end(),
                         [raw](const std::unique_ptr<Child>& c) { return c.get() == raw; });
  if (it == pool->restoring.end()) return;
  std::unique_ptr<Child> child = std::move(*it);
  pool->restoring.erase(it);
  if (outcome.status.ok()) {
    ++restored_;
    if (KeepWarm(*pool, tpl_gen)) {
      if (!pool->waiting.empty()) {
        Invocation* next = pool->waiting.front();
        pool->waiting.pop_front();
        Run(next, std::move(child));
      } else {
        // First in line: its pages and the restorer's copy of them are warm in the caches.
        pool->ready.push_front(std::move(child));
      }
    } else {
      FinishChild(std::move(child), LogBatch{}, 0, {});
    }
  } else {
    ++restore_discards_;
    log::Info("worker_discarded", {{"function", pool->config.name}, {"template_id", pool->template_id},
                                   {"pid", static_cast<int64_t>(child->pid())},
                                   {"reason", outcome.status.message()}});
    FinishChild(std::move(child), LogBatch{}, 0, {});
  }
  Replenish(pool);
  MaybeIdle(pool);
}

// One timer per pool, due when its least recently used idle worker (the back) times out.
void Scheduler::ArmWorkerIdleTimer(Pool* pool) {
  if (pool->warm_timer != 0 || pool->warm.empty()) return;
  const int64_t due = pool->warm.back().idle_since_ms + options_.worker_idle_timeout_ms - clock_->MonoMs();
  pool->warm_timer = clock_->Schedule(due, [this, pool] { OnWorkerIdleTimer(pool); });
}

void Scheduler::OnWorkerIdleTimer(Pool* pool) {
  pool->warm_timer = 0;
  const int64_t now = clock_->MonoMs();
  size_t stopped = 0;
  while (!pool->warm.empty() && now - pool->warm.back().idle_since_ms >= options_.worker_idle_timeout_ms) {
    pool->warm.pop_back();  // destroying it closes its channel: the worker exits; its cgroup goes
    ++stopped;
  }
  // Workers that died while idle (nothing to stop, only their descriptors and cgroup to free).
  auto dead = [](const Pool::Warm& w) { return !w.child->alive(); };
  pool->warm.erase(std::remove_if(pool->warm.begin(), pool->warm.end(), dead), pool->warm.end());
  if (stopped > 0) {
    workers_idle_stopped_ += stopped;
    log::Info("workers_idle_stopped", {{"function", pool->config.name}, {"revision_id", pool->config.revision_id},
                                       {"stopped", stopped}, {"idle_workers", pool->warm.size()}});
  }
  ArmWorkerIdleTimer(pool);
}

void Scheduler::OnIdleTimer(Pool* pool) {
  pool->idle_timer = 0;
  if (!pool->running.empty() || !pool->waiting.empty() || pool->queued > 0) return;  // re-armed when idle again
  if (pool->superseded || shutting_down_) {
    RemovePool(pool);
    CheckDrained();
    return;
  }
  const int64_t idle_for = clock_->MonoMs() - pool->last_used_ms;
  if (idle_for < options_.idle_timeout_ms) {
    MaybeIdle(pool);  // used since the timer was set
    return;
  }
  log::Info("pool_idle_evicted", {{"function", pool->config.name}, {"revision_id", pool->config.revision_id},
                                  {"idle_ms", idle_for}});
  RemovePool(pool);
}

void Scheduler::RemovePool(Pool* pool) {
  pool->retired.clear();
  clock_->Cancel(pool->idle_timer);
  clock_->Cancel(pool->init_timer);
  clock_->Cancel(pool->warm_timer);
  pool->ready.clear();
  pool->warm.clear();
  pool->tpl.reset();
  auto cur = pool->fn->current.find(pool->config.version);
  if (cur != pool->fn->current.end() && cur->second == pool) pool->fn->current.erase(cur);
  pools_.erase(std::make_pair(pool->config.name, pool->config.revision_id));
}

// ---- shutdown ----------------------------------------------------------------------------

void Scheduler::Shutdown(std::function<void()> drained) {
  shutting_down_ = true;
  drained_ = std::move(drained);
  std::vector<Pool*> all;
  for (auto& [key, pool] : pools_) all.push_back(pool.get());
  for (Pool* pool : all) {
    pool->ready.clear();
    pool->warm.clear();
    MaybeIdle(pool);  // idle pools go at once; busy ones when their last invocation ends
  }
  CheckDrained();
}

void Scheduler::CheckDrained() {
  if (!shutting_down_ || !drained_ || drain_timer_ != 0) return;
  if (!invocations_.empty() || !finishing_.empty() || awaiting_logs_ > 0) return;
  // Deferred to a top-level callback: the caller may still hold pools we are about to remove.
  drain_timer_ = clock_->Schedule(0, [this] {
    drain_timer_ = 0;
    if (!invocations_.empty() || !finishing_.empty() || awaiting_logs_ > 0 || !drained_) return;
    std::vector<Pool*> all;
    for (auto& [key, pool] : pools_) all.push_back(pool.get());
    for (Pool* pool : all) RemovePool(pool);
    auto cb = std::move(drained_);
    drained_ = nullptr;
    cb();
  });
}

}  // namespace geysir::scheduler
