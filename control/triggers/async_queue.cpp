// AsyncQueue and GroupCommit: see async_queue.h.
#include "control/triggers/async_queue.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "control/db.h"
#include "control/db_row.h"
#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "control/store.h"
#include "base/log.h"
#include "base/json_bounds.h"

namespace geysir::control::triggers {
namespace {

using nlohmann::json;

const std::vector<Migration> kSteps = {
    {1, "async events and event-invoke configs",
     "CREATE TABLE async_events ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  request_id TEXT NOT NULL,"
     "  function TEXT NOT NULL,"
     "  qualifier TEXT NOT NULL DEFAULT '',"
     "  payload BLOB NOT NULL,"
     "  client_context TEXT NOT NULL DEFAULT '',"
     "  source TEXT NOT NULL,"
     "  enqueued_ms INTEGER NOT NULL,"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_ms INTEGER NOT NULL,"
     "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'failed')),"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  last_response TEXT NOT NULL DEFAULT '',"
     "  failed_ms INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX async_events_due ON async_events(state, next_attempt_ms, id);"
     "CREATE TABLE async_invoke_configs ("
     "  function TEXT NOT NULL,"
     "  qualifier TEXT NOT NULL DEFAULT '',"
     "  max_retry_attempts INTEGER,"
     "  max_event_age_s INTEGER,"
     "  on_success TEXT NOT NULL DEFAULT '',"
     "  on_failure TEXT NOT NULL DEFAULT '',"
     "  last_modified_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (function, qualifier));"},
    {2, "per-function due index: the dispatcher asks each function with room for its due events",
     "CREATE INDEX async_events_function_due ON async_events(state, function, next_attempt_ms, id);"},
};

// The tables as records (control/db_row.h).
const Table<AsyncEvent>& Events() {
  using E = AsyncEvent;
  static const Table<E> kTable("async_events", {Col("id", &E::id),
                                                Col("request_id", &E::request_id),
                                                Col("function", &E::function),
                                                Col("qualifier", &E::qualifier),
                                                Col("payload", &E::payload),
                                                Col("client_context", &E::client_context_b64),
                                                Col("source", &E::source),
                                                Col("enqueued_ms", &E::enqueued_ms),
                                                Col("attempts", &E::attempts),
                                                Col("next_attempt_ms", &E::next_attempt_ms),
                                                Col("state", &E::state),
                                                Col("last_error", &E::last_error),
                                                Col("last_response", &E::last_response),
                                                Col("failed_ms", &E::failed_ms)});
  return kTable;
}

// What a new event's row is given; SQLite gives it its id, state 'queued' and the rest's
// defaults.
const Table<AsyncEvent>& NewEvents() {
  static const Table<AsyncEvent> kTable = Events().Subset({"request_id", "function", "qualifier", "payload",
                                                           "client_context", "source", "enqueued_ms", "attempts",
                                                           "next_attempt_ms"});
  return kTable;
}

const Table<EventInvokeConfig>& Configs() {
  using C = EventInvokeConfig;
  static const Table<C> kTable("async_invoke_configs",
                               {Col("function", &C::function), Col("qualifier", &C::qualifier),
                                Col("max_retry_attempts", &C::max_retry_attempts),
                                Col("max_event_age_s", &C::max_event_age_s), Col("on_success", &C::on_success),
                                Col("on_failure", &C::on_failure), Col("last_modified_ms", &C::last_modified_ms)},
                               /*key_columns=*/2);
  return kTable;
}


// A second connection to `db`'s file for the committer thread; none for an in-memory database
// (tests), whose commits then run on the loop thread.
std::unique_ptr<Db> OpenWriter(const Db& db) {
  Result<Db> writer = db.OpenAnother();
  if (!writer.ok() && writer.status().code() == Code::kInvalidArgument) return nullptr;  // no file
  if (!writer.ok()) {
    log::Warn("group_commit_writer_unavailable", {{"path", db.path()}, {"error", writer.status().ToString()},
                                                   {"effect", "commits run on the loop thread"}});
    return nullptr;
  }
  return std::make_unique<Db>(std::move(*writer));
}

}  // namespace

std::unique_ptr<GroupCommit> MakeGroupCommit(uv_loop_t* loop, Db& db) {
  if (std::unique_ptr<Db> writer = OpenWriter(db)) return std::make_unique<GroupCommit>(loop, std::move(writer));
  return std::make_unique<GroupCommit>(loop, db);
}

// ---------------------------------------------------------------------------------------------
// RetryPolicy

RetryPolicy RetryPolicy::From(const std::optional<EventInvokeConfig>& config, double time_scale) {
  RetryPolicy p;
  p.time_scale = time_scale;
  if (config && config->max_retry_attempts) p.max_retry_attempts = *config->max_retry_attempts;
  if (config && config->max_event_age_s) p.max_event_age_s = *config->max_event_age_s;
  return p;
}

int64_t RetryPolicy::Scaled(int64_t ms) const {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(ms) / time_scale)));
}

int64_t RetryPolicy::RetryDelayMs(int failed_attempts) const {
  return Scaled(failed_attempts <= 1 ? 60'000 : 120'000);
}

bool RetryPolicy::Expired(int64_t enqueued_ms, int64_t now_ms) const {
  return now_ms - enqueued_ms > Scaled(static_cast<int64_t>(max_event_age_s) * 1000);
}

// ---------------------------------------------------------------------------------------------
// GroupCommit

GroupCommit::GroupCommit(uv_loop_t* loop, Db& db) : loop_(loop), db_(&db) { Init(); }

GroupCommit::GroupCommit(uv_loop_t* loop, std::unique_ptr<Db> writer)
    : loop_(loop), db_(writer.get()), writer_(std::move(writer)) {
  Init();
  // uv_async_init only links the handle into the loop: it has no failure path.
  if (async_.Init(loop_, uv_async_init, [](uv_async_t* h) {
        if (h->data != nullptr) static_cast<GroupCommit*>(h->data)->Complete();
      }) != 0) {
    std::abort();
  }
  async_->data = this;
  // Referenced only while a batch is in flight: an idle committer must not keep the loop alive.
  uv_unref(async_.base());
  thread_ = std::thread([this] { ThreadMain(); });
}

void GroupCommit::Init() {
  // uv_check_init and uv_idle_init only link the handle into the loop: no failure path.
  if (check_.Init(loop_, uv_check_init) != 0 || idle_.Init(loop_, uv_idle_init) != 0) std::abort();
  check_->data = this;
  idle_->data = this;
}

GroupCommit::~GroupCommit() { Close(); }

void GroupCommit::Submit(Work work, Done done) {
  pending_.push_back({std::move(work), std::move(done)});
  if (!armed_ && check_) {
    armed_ = true;
    uv_check_start(check_.get(), OnCheck);
    uv_idle_start(idle_.get(), [](uv_idle_t*) {});
  }
}

void GroupCommit::OnCheck(uv_check_t* h) {
  if (h->data != nullptr) static_cast<GroupCommit*>(h->data)->Dispatch();
}

void GroupCommit::RunBatch(Db& db, std::vector<Item>& items, std::vector<Status>& results, std::string& commit_error) {
  results.assign(items.size(), Status::Ok());
  try {
    Transaction txn(db);
    for (size_t i = 0; i < items.size(); ++i) {
      db.Exec("SAVEPOINT item");
      try {
        items[i].work(db);
        db.Exec("RELEASE item");
      } catch (const ApiException& e) {
        db.Exec("ROLLBACK TO item; RELEASE item");
        results[i] = Status::Invalid(e.error().message);
      } catch (const std::exception& e) {  // DbError, or a bug in one item: that item alone fails
        db.Exec("ROLLBACK TO item; RELEASE item");
        results[i] = Status::Internal(e.what());
      }
    }
    txn.Commit();
  } catch (const std::exception& e) {
    // The commit itself failed (disk full, I/O error): nothing of this batch is durable.
    commit_error = e.what();
    for (Status& st : results) {
      if (st.ok()) st = Status::Internal(std::string("the database commit failed: ") + e.what());
    }
  }
}

void GroupCommit::Dispatch() {
  if (armed_) {
    armed_ = false;
    uv_check_stop(check_.get());
    uv_idle_stop(idle_.get());
  }
  if (pending_.empty()) return;
  if (!threaded()) {
    std::vector<Item> items = std::move(pending_);
    pending_.clear();
    std::vector<Status> results;
    std::string commit_error;
    RunBatch(*db_, items, results, commit_error);
    Finished(items, results, commit_error);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // One batch at a time: what arrives meanwhile waits here and goes when this one is done.
    if (in_flight_) return;
    in_flight_ = true;
    has_batch_ = true;
    batch_done_ = false;
    batch_ = std::move(pending_);
    pending_.clear();
  }
  uv_ref(async_.base());
  cv_.notify_all();
}

void GroupCommit::ThreadMain() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || has_batch_; });
    if (!has_batch_) return;  // stop_ with nothing to do
    has_batch_ = false;
    std::vector<Item> items = std::move(batch_);
    lock.unlock();
    std::vector<Status> results;
    std::string commit_error;
    RunBatch(*db_, items, results, commit_error);
    lock.lock();
    batch_ = std::move(items);
    results_ = std::move(results);
    commit_error_ = std::move(commit_error);
    batch_done_ = true;
    cv_.notify_all();
    if (async_) uv_async_send(async_.get());
  }
}

void GroupCommit::Complete() {
  std::vector<Item> items;
  std::vector<Status> results;
  std::string commit_error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!in_flight_ || !batch_done_) return;  // Flush took it already
    items = std::move(batch_);
    batch_.clear();
    results = std::move(results_);
    commit_error = std::move(commit_error_);
    batch_done_ = false;
    in_flight_ = false;
  }
  uv_unref(async_.base());
  Finished(items, results, commit_error);
  // What arrived during that fsync is the next batch: start it now, not at the end of a turn.
  if (!pending_.empty()) Dispatch();
}

void GroupCommit::Finished(std::vector<Item>& items, std::vector<Status>& results, const std::string& commit_error) {
  if (!commit_error.empty()) log::Error("group_commit_failed", {{"items", items.size()}, {"what", commit_error}});
  ++batches_;
  items_ += items.size();
  largest_batch_ = std::max(largest_batch_, items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].done) items[i].done(results[i]);
  }
}

void GroupCommit::Flush() {
  // `done` callbacks may submit more; bounded because each round commits what it found.
  for (int round = 0; round < 100; ++round) {
    if (threaded()) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !in_flight_ || batch_done_; });
      }
      Complete();  // may hand the next batch over at once
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (in_flight_) continue;
      }
      // The committer is idle now (nothing handed over): run the rest here, on its connection.
      std::vector<Item> items = std::move(pending_);
      pending_.clear();
      if (armed_) {
        armed_ = false;
        uv_check_stop(check_.get());
        uv_idle_stop(idle_.get());
      }
      if (items.empty()) return;
      std::vector<Status> results;
      std::string commit_error;
      {
        std::lock_guard<std::mutex> lock(mu_);  // the committer waits on mu_ while we use its connection
        RunBatch(*db_, items, results, commit_error);
      }
      Finished(items, results, commit_error);
    } else {
      if (pending_.empty()) return;
      Dispatch();
    }
  }
}

void GroupCommit::Close() {
  if (closed_) return;
  closed_ = true;
  Flush();
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  check_.Close();
  idle_.Close();
  async_.Close();
  if (batches_) {
    log::Info("group_commit_stats", {{"batches", batches_},
                                     {"items", items_},
                                     {"largest_batch", largest_batch_},
                                     {"committer_thread", threaded()}});
  }
}

// ---------------------------------------------------------------------------------------------
// AsyncQueue

AsyncQueue::AsyncQueue(ServiceHost& host, AsyncQueueOptions options) : host_(host), opt_(options) {}

AsyncQueue::~AsyncQueue() { Shutdown(); }

Status AsyncQueue::Start() {
  try {
    host_.store().db().MigrateTrack("async_queue", kSteps);
  } catch (const DbError& e) {
    return Status::Internal(std::string("async queue tables: ") + e.what());
  }
  // GEYSIR_GROUP_COMMIT=loop: commit on the loop thread, as before the committer thread (for
  // an A/B benchmark, bench/triggers.py; not a production setting).
  const char* mode = std::getenv("GEYSIR_GROUP_COMMIT");
  if (mode && std::string(mode) == "loop") {
    commit_ = std::make_unique<GroupCommit>(host_.loop(), host_.store().db());
  } else {
    commit_ = MakeGroupCommit(host_.loop(), host_.store().db());
  }
  if (int rc = timer_.Init(host_.loop(), uv_timer_init); rc != 0) {
    return Status::Internal(std::string("async queue timer: ") + uv_strerror(rc));
  }
  timer_->data = this;
  int64_t queued = 0, failed = 0;
  {
    Statement s = host_.store().db().Prepare(
        "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'failed'), 0) FROM async_events");
    if (s.Step()) {
      queued = s.Int(0);
      failed = s.Int(1);
    }
  }
  LoadReadyFunctions();
  log::Info("async_queue_started", {{"queued", queued}, {"failed", failed}, {"time_scale", opt_.time_scale}});
  Kick();
  return Status::Ok();
}

void AsyncQueue::Shutdown() {
  if (closed_) return;
  closed_ = true;
  if (commit_) commit_->Close();
  timer_.Close();
}

int64_t AsyncQueue::Scaled(int64_t ms) const {
  RetryPolicy p;
  p.time_scale = opt_.time_scale;
  return p.Scaled(ms);
}

AsyncEvent AsyncQueue::Stamp(AsyncEvent e) const {
  if (e.request_id.empty()) e.request_id = NewUuid();
  const int64_t now = host_.NowMs();
  if (e.enqueued_ms == 0) e.enqueued_ms = now;
  if (e.next_attempt_ms == 0) e.next_attempt_ms = now;
  return e;
}

int64_t AsyncQueue::InsertRow(Db& db, const AsyncEvent& e) {
  Statement s = db.Prepare(NewEvents().Insert());
  NewEvents().Bind(s, e);
  s.Run();
  return db.LastInsertRowId();
}

void AsyncQueue::Enqueue(AsyncEvent event, std::function<void(Status)> done) {
  if (closed_ || !commit_) {
    done(Status::Unavailable("control is shutting down"));
    return;
  }
  // The work runs on the committer thread: it gets a stamped copy and touches only the Db.
  std::string function = event.function;
  commit_->Submit([event = Stamp(std::move(event))](Db& db) { InsertRow(db, event); },
                  [this, done = std::move(done), function = std::move(function)](Status st) {
                    done(st);
                    if (st.ok()) Kick(function);
                  });
}

void AsyncQueue::Kick() {
  if (closed_ || !timer_) return;
  // Coalesce: one pump per loop turn however many events arrived.
  ArmTimer(host_.NowMs());
}

void AsyncQueue::ArmTimer(int64_t at_ms) {
  if (closed_ || !timer_) return;
  const int64_t now = host_.NowMs();
  if (uv_is_active(timer_.base()) && timer_at_ <= at_ms) return;
  timer_at_ = at_ms;
  uv_timer_start(
      timer_.get(), [](uv_timer_t* t) { static_cast<AsyncQueue*>(t->data)->Pump(); },
      static_cast<uint64_t>(std::max<int64_t>(0, at_ms - now)), 0);
}

void AsyncQueue::Pump() {
  if (closed_) return;
  const int64_t now = host_.NowMs();
  Db& db = host_.store().db();
  for (auto it = paused_until_.begin(); it != paused_until_.end();) {
    it = it->second <= now ? paused_until_.erase(it) : std::next(it);
  }
  if (in_flight_.size() < opt_.max_in_flight && !ready_functions_.empty()) {
    // Ids whose row is still queued on disk but must not start again: running, or their result
    // is being committed.
    std::string busy;
    for (const std::set<int64_t>* ids : {&in_flight_, &settling_}) {
      for (int64_t id : *ids) busy += (busy.empty() ? "" : ",") + std::to_string(id);
    }
    // One indexed query per function with room, round-robin from where the last pump stopped:
    // a long backlog of one function at its concurrency limit costs nothing to skip, and it
    // does not starve the others.
    std::vector<std::string> order;
    for (auto it = ready_functions_.upper_bound(round_robin_); it != ready_functions_.end(); ++it) order.push_back(*it);
    for (auto it = ready_functions_.begin(); it != ready_functions_.end() && *it <= round_robin_; ++it) order.push_back(*it);
    try {
      for (const std::string& fn : order) {
        if (in_flight_.size() >= opt_.max_in_flight) break;
        if (paused_until_.count(fn)) continue;
        const size_t running = per_function_.count(fn) ? per_function_[fn] : 0;
        const size_t limit = FunctionLimit(fn);
        if (running >= limit) continue;
        const size_t room = std::min(limit - running, opt_.max_in_flight - in_flight_.size());
        std::string sql = Events().Select("WHERE state = 'queued' AND function = ? AND next_attempt_ms <= ?");
        if (!busy.empty()) sql += " AND id NOT IN (" + busy + ")";
        sql += " ORDER BY next_attempt_ms, id LIMIT " + std::to_string(room);
        std::vector<AsyncEvent> due;
        {
          Statement s = db.Prepare(sql);
          s.BindAll(fn, now);
          while (s.Step()) due.push_back(Events().Read(s));
        }
        round_robin_ = fn;
        if (due.empty()) {
          Statement any = db.Prepare("SELECT 1 FROM async_events WHERE state = 'queued' AND function = ? LIMIT 1");
          any.Bind(1, fn);
          if (!any.Step()) ready_functions_.erase(fn);
          continue;
        }
        for (AsyncEvent& e : due) {
          ++per_function_[e.function];
          in_flight_.insert(e.id);
          Attempt(std::move(e));
        }
      }
    } catch (const DbError& e) {
      log::Error("async_pump_failed", {{"what", e.what()}});
      ArmTimer(now + 1000);
      return;
    }
  }
  // The next wake-up: the earliest future attempt or the end of a throttle pause. Completions
  // call Kick, so a full pipeline needs no timer.
  int64_t next = INT64_MAX;
  try {
    Statement s = db.Prepare("SELECT MIN(next_attempt_ms) FROM async_events WHERE state = 'queued' AND next_attempt_ms > ?");
    s.Bind(1, now);
    if (s.Step() && !s.IsNull(0)) next = s.Int(0);
  } catch (const DbError& e) {
    log::Error("async_pump_failed", {{"what", e.what()}});
    next = now + 1000;
  }
  for (const auto& [fn, until] : paused_until_) next = std::min(next, until);
  if (next != INT64_MAX && !closed_) {
    if (!uv_is_active(timer_.base()) || timer_at_ > next) ArmTimer(next);
  }
}

size_t AsyncQueue::FunctionLimit(const std::string& function) {
  // Reserved concurrency caps what the scheduler runs at once; sending more only buys throttles
  // and a pause, which leave the function idle in between. Reserved 0 still gets one attempt
  // at a time: it is throttled and waits (Lambda keeps such events until they age out).
  Result<FunctionRecord> f = host_.store().GetFunction(function);
  if (f.ok() && f->reserved_concurrency) {
    return std::clamp<size_t>(*f->reserved_concurrency, 1, opt_.per_function_in_flight);
  }
  return opt_.per_function_in_flight;
}

void AsyncQueue::Release(int64_t id, const std::string& function, bool settling) {
  in_flight_.erase(id);
  if (auto it = per_function_.find(function); it != per_function_.end() && --it->second == 0) per_function_.erase(it);
  if (settling) settling_.insert(id);
}

void AsyncQueue::Settled(int64_t id) {
  settling_.erase(id);
  Kick();
}

void AsyncQueue::Kick(const std::string& function) {
  ready_functions_.insert(function);
  Kick();
}

void AsyncQueue::LoadReadyFunctions() {
  Statement s = host_.store().db().Prepare("SELECT DISTINCT function FROM async_events WHERE state = 'queued'");
  while (s.Step()) ready_functions_.insert(s.Text(0));
}

void AsyncQueue::Attempt(AsyncEvent e) {
  const int64_t now = host_.NowMs();
  std::optional<EventInvokeConfig> cfg = GetConfig(e.function, e.qualifier);
  const RetryPolicy policy = RetryPolicy::From(cfg, opt_.time_scale);
  const int max_age_s = policy.max_event_age_s;
  if (policy.Expired(e.enqueued_ms, now)) {
    Release(e.id, e.function, true);
    Fail(std::move(e), "EventAgeExceeded: the event is older than " + std::to_string(max_age_s) + " s", "",
         "EventAgeExceeded");
    return;
  }
  InvokeCall call;
  call.function = e.function;
  call.qualifier = e.qualifier;
  call.payload = e.payload;
  call.request_id = e.request_id;
  call.client_context_b64 = e.client_context_b64;
  call.source = (e.source == "events" || e.source == "scheduler") ? proto::InvokeSource::kSchedule
                                                                  : proto::InvokeSource::kAsync;
  const int64_t id = e.id;
  const std::string fn = e.function;
  Status st = host_.InvokeFunction(std::move(call), [this, e](proto::InvokeResult r, std::string body) mutable {
    OnResult(std::move(e), std::move(r), std::move(body));
  });
  if (st.ok()) return;
  // Not started: the callback will not run.
  Release(id, fn, false);
  AsyncEvent again;
  {
    Statement s = host_.store().db().Prepare(Events().Select("WHERE id = ?"));
    s.Bind(1, id);
    if (!s.Step()) return;
    again = Events().Read(s);
  }
  if (st.code() == Code::kNotFound) {
    settling_.insert(id);
    Fail(std::move(again), "ResourceNotFoundException: " + st.message(), "", "RetriesExhausted");
  } else {
    // The scheduler is not connected (restarting): wait, without spending an attempt.
    paused_until_[fn] = host_.NowMs() + Scaled(1000);
    ArmTimer(paused_until_[fn]);
  }
}

void AsyncQueue::OnResult(AsyncEvent e, proto::InvokeResult r, std::string body) {
  if (closed_) return;  // still queued on disk; the next start runs it again
  // Ok, Unhandled and Timeout write the row (delete, retry time, failed); until that commit is
  // durable the row still says "queued" and Pump must not start it again.
  const bool writes = r.outcome == proto::InvokeOutcome::kOk || r.outcome == proto::InvokeOutcome::kUnhandled ||
                      r.outcome == proto::InvokeOutcome::kTimeout;
  Release(e.id, e.function, writes);
  switch (r.outcome) {
    case proto::InvokeOutcome::kOk:
      ++completed_;
      Finish(e.id, e.function);
      log::Debug("async_event_done", {{"function", e.function}, {"request_id", e.request_id}, {"attempt", e.attempts + 1}});
      break;
    case proto::InvokeOutcome::kThrottled:
      // Throttles wait and are not failures: pause this function briefly and try again.
      paused_until_[e.function] = host_.NowMs() + Scaled(200);
      break;
    case proto::InvokeOutcome::kInternal:
    case proto::InvokeOutcome::kUnavailable:
      log::Warn("async_event_deferred", {{"function", e.function}, {"request_id", e.request_id}, {"detail", body.substr(0, 300)}});
      paused_until_[e.function] = host_.NowMs() + Scaled(1000);
      break;
    case proto::InvokeOutcome::kUnhandled:
    case proto::InvokeOutcome::kTimeout: {
      std::string error = r.outcome == proto::InvokeOutcome::kTimeout ? "Timeout" : "Unhandled";
      json j = ParseUntrustedJsonOrDiscarded(body);
      if (j.is_object() && j.contains("errorMessage") && j["errorMessage"].is_string()) {
        error += ": " + j["errorMessage"].get<std::string>().substr(0, 500);
      }
      Retry(std::move(e), error, body.substr(0, 64 * 1024), true);
      break;
    }
  }
  Kick();
}

void AsyncQueue::Finish(int64_t id, const std::string& function) {
  commit_->Submit([id](Db& db) { db.Prepare("DELETE FROM async_events WHERE id = ?").Bind(1, id).Run(); },
                  [this, id, function](Status st) {
                    if (!st.ok()) log::Error("async_finish_failed", {{"id", id}, {"function", function}, {"error", st.ToString()}});
                    Settled(id);
                  });
}

void AsyncQueue::Retry(AsyncEvent e, const std::string& error, const std::string& response, bool counts) {
  if (counts) ++e.attempts;
  std::optional<EventInvokeConfig> cfg = GetConfig(e.function, e.qualifier);
  const RetryPolicy policy = RetryPolicy::From(cfg, opt_.time_scale);
  if (!policy.ShouldRetry(e.attempts)) {
    Fail(std::move(e), error, response, "RetriesExhausted");
    return;
  }
  e.next_attempt_ms = host_.NowMs() + policy.RetryDelayMs(e.attempts);
  log::Info("async_event_retry", {{"function", e.function},
                                  {"request_id", e.request_id},
                                  {"attempts", e.attempts},
                                  {"error", error.substr(0, 200)},
                                  {"in_ms", e.next_attempt_ms - host_.NowMs()}});
  const int64_t next = e.next_attempt_ms;
  commit_->Submit(
      [e, error, response](Db& db) {
        db.Prepare("UPDATE async_events SET attempts = ?, next_attempt_ms = ?, last_error = ?, last_response = ? WHERE id = ?")
            .BindAll(e.attempts, e.next_attempt_ms, error, response, e.id)
            .Run();
      },
      [this, next, id = e.id](Status st) {
        if (!st.ok()) log::Error("async_retry_write_failed", {{"error", st.ToString()}});
        Settled(id);
        ArmTimer(next);
      });
}

void AsyncQueue::Fail(AsyncEvent e, const std::string& error, const std::string& response, const std::string& condition) {
  std::optional<EventInvokeConfig> cfg = GetConfig(e.function, e.qualifier);
  std::string destination = cfg ? cfg->on_failure : "";
  log::Warn("async_event_failed", {{"function", e.function},
                                   {"request_id", e.request_id},
                                   {"attempts", e.attempts},
                                   {"condition", condition},
                                   {"error", error.substr(0, 300)},
                                   {"destination", destination.empty() ? "failed-event store" : destination}});
  const int64_t now = host_.NowMs();
  AsyncEvent record;
  if (!destination.empty()) {
    // Lambda's invocation record for an asynchronous destination.
    const ApiContext& api = host_.api();
    json request_payload = ParseUntrustedJsonOrDiscarded(e.payload);
    if (request_payload.is_discarded()) request_payload = e.payload;
    json body = {
        {"version", "1.0"},
        {"timestamp", IsoTimestamp(now)},
        {"requestContext",
         {{"requestId", e.request_id},
          {"functionArn", FunctionArn(api, e.function) + ":" + (e.qualifier.empty() ? "$LATEST" : e.qualifier)},
          {"condition", condition},
          {"approximateInvokeCount", e.attempts}}},
        {"requestPayload", request_payload},
    };
    if (!response.empty()) {
      json resp = ParseUntrustedJsonOrDiscarded(response);
      body["responseContext"] = {{"statusCode", 200}, {"executedVersion", "$LATEST"}, {"functionError", "Unhandled"}};
      body["responsePayload"] = resp.is_discarded() ? json(response) : resp;
    }
    try {
      FunctionRef ref = ParseFunctionRef(destination);
      record.function = ref.name;
      record.qualifier = ref.qualifier == "$LATEST" ? "" : ref.qualifier;
      record.payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
      record.source = "destination";
      record = Stamp(std::move(record));
    } catch (const ApiException&) {
      destination.clear();
    }
  }
  commit_->Submit(
      [e, error, response, destination, record, now](Db& db) {
        if (!destination.empty()) {
          db.Prepare("DELETE FROM async_events WHERE id = ?").Bind(1, e.id).Run();
          InsertRow(db, record);
        } else {
          db.Prepare("UPDATE async_events SET state = 'failed', attempts = ?, last_error = ?, last_response = ?, "
                     "failed_ms = ? WHERE id = ?")
              .BindAll(e.attempts, error, response, now, e.id)
              .Run();
        }
      },
      [this, destination, id = e.id, target = record.function](Status st) {
        if (!st.ok()) log::Error("async_fail_write_failed", {{"error", st.ToString()}});
        if (!destination.empty()) ready_functions_.insert(target);
        Settled(id);
      });
}

// ---------------------------------------------------------------------------------------------
// Configs and operator views (synchronous: rare, and each is its own durable write)

std::optional<EventInvokeConfig> AsyncQueue::GetConfig(const std::string& function, const std::string& qualifier) {
  Statement s = host_.store().db().Prepare(Configs().Select("WHERE function = ? AND qualifier = ?"));
  s.BindAll(function, qualifier);
  if (!s.Step()) return std::nullopt;
  return Configs().Read(s);
}

std::vector<EventInvokeConfig> AsyncQueue::ListConfigs(const std::string& function) {
  std::vector<EventInvokeConfig> out;
  Statement s = host_.store().db().Prepare("SELECT qualifier FROM async_invoke_configs WHERE function = ? ORDER BY qualifier");
  s.Bind(1, function);
  std::vector<std::string> qualifiers;
  while (s.Step()) qualifiers.push_back(s.Text(0));
  for (const std::string& q : qualifiers) {
    if (auto c = GetConfig(function, q)) out.push_back(*c);
  }
  return out;
}

void AsyncQueue::PutConfig(const EventInvokeConfig& c) {
  Db& db = host_.store().db();
  Transaction txn(db);
  Statement s = db.Prepare(Configs().Upsert());
  Configs().Bind(s, c);
  s.Run();
  txn.Commit();
}

bool AsyncQueue::DeleteConfig(const std::string& function, const std::string& qualifier) {
  Db& db = host_.store().db();
  Transaction txn(db);
  int n = db.Prepare("DELETE FROM async_invoke_configs WHERE function = ? AND qualifier = ?").BindAll(function, qualifier).Run();
  txn.Commit();
  return n > 0;
}

std::vector<AsyncEvent> AsyncQueue::List(const std::string& state, const std::string& function, int limit) {
  std::string sql = Events().Select("WHERE state = ?");
  if (!function.empty()) sql += " AND function = ?";
  sql += " ORDER BY id LIMIT ?";
  Statement s = host_.store().db().Prepare(sql);
  int i = 0;
  s.Bind(++i, state);
  if (!function.empty()) s.Bind(++i, function);
  s.Bind(++i, limit);
  std::vector<AsyncEvent> out;
  while (s.Step()) out.push_back(Events().Read(s));
  return out;
}

int AsyncQueue::Redrive(int64_t id, const std::string& function) {
  Db& db = host_.store().db();
  const int64_t now = host_.NowMs();
  std::string sql =
      "UPDATE async_events SET state = 'queued', attempts = 0, enqueued_ms = ?, next_attempt_ms = ?, failed_ms = 0 "
      "WHERE state = 'failed'";
  if (id) sql += " AND id = ?";
  if (!function.empty()) sql += " AND function = ?";
  Transaction txn(db);
  Statement s = db.Prepare(sql);
  int i = 0;
  s.Bind(++i, now);
  s.Bind(++i, now);
  if (id) s.Bind(++i, id);
  if (!function.empty()) s.Bind(++i, function);
  int n = s.Run();
  txn.Commit();
  if (n) {
    log::Info("async_events_redriven", {{"count", n}, {"id", id}, {"function", function}});
    LoadReadyFunctions();
    Kick();
  }
  return n;
}

}  // namespace geysir::control::triggers
