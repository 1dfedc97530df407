// The durable async-invocation queue: what Lambda's Invoke(InvocationType=Event), EventBridge
// schedule firings and on-failure destinations put in, and the dispatcher that runs it through
// the scheduler.
//
//   GroupCommit  batches writes into one SQLite transaction (WAL, synchronous=FULL) on a
//                committer thread with its own connection, then calls each submitter back on
//                the loop. So an Invoke(Event) is answered 202 only after its event has reached
//                disk, concurrent enqueues share one fsync, and the loop keeps serving requests
//                while a batch syncs.
//   AsyncQueue   the tables (track "async_queue": events, per-function event-invoke configs)
//                and the dispatcher: it runs due events through ServiceHost::InvokeFunction
//                with the same request id on every attempt, keeps up to `max_in_flight` (and
//                `per_function_in_flight` per function) running, treats throttles and Geysir's
//                own failures as "wait and try again" (not attempts), retries function errors
//                and timeouts as Lambda does (1 min, then 2 min; MaximumRetryAttempts 0-2,
//                MaximumEventAgeInSeconds 60-21600), and sends an exhausted event to its
//                on-failure destination (a function, invoked asynchronously with Lambda's
//                destination record) or to the failed-event store, which an operator lists and
//                re-drives.
//
// Delivery is at-least-once: an event leaves the queue only after an attempt's result was
// recorded; a crash before that runs it again (same request id) after restart.
//
// Thread safety: loop thread only, except GroupCommit's work items (see GroupCommit).
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/uv_handle.h"
#include "control/service.h"
#include "base/status.h"

namespace geysir::control {
class Db;
}

namespace geysir::control::triggers {

// One queued (or failed) event.
struct AsyncEvent {
  int64_t id = 0;
  std::string request_id;          // the same on every attempt
  std::string function;            // resolved function name
  std::string qualifier;           // "" = unqualified ($LATEST)
  std::string payload = "{}";
  std::string client_context_b64;
  std::string source = "lambda";   // lambda | events | scheduler | destination | redrive
  int64_t enqueued_ms = 0;
  int attempts = 0;                // attempts that ran and failed
  int64_t next_attempt_ms = 0;
  std::string state = "queued";    // queued | failed
  std::string last_error;          // "Unhandled: message", "EventAgeExceeded", ...
  std::string last_response;       // the last failed attempt's response payload
  int64_t failed_ms = 0;
};

// PutFunctionEventInvokeConfig. Unset fields mean Lambda's defaults (2 retries, 6 hours).
struct EventInvokeConfig {
  std::string function;
  std::string qualifier;           // "" = unqualified
  std::optional<int> max_retry_attempts;
  std::optional<int> max_event_age_s;
  std::string on_success;          // destination ARN or ""
  std::string on_failure;
  int64_t last_modified_ms = 0;
};

// Lambda's asynchronous retry policy as plain arithmetic: what Attempt and Retry decide, kept
// apart so it can be tested without a loop or a database.
struct RetryPolicy {
  int max_retry_attempts = 2;   // MaximumRetryAttempts, 0-2
  int max_event_age_s = 21600;  // MaximumEventAgeInSeconds, 60-21600
  double time_scale = 1.0;      // test hook: divides every delay and the age limit

  // Lambda's defaults where `config` leaves a field unset (or there is no config).
  static RetryPolicy From(const std::optional<EventInvokeConfig>& config, double time_scale);
  // `ms` divided by the time scale, at least 1 ms.
  int64_t Scaled(int64_t ms) const;
  // The wait before the next attempt after `failed_attempts` failed ones: one minute before
  // the second attempt, two before the third.
  int64_t RetryDelayMs(int failed_attempts) const;
  // After `failed_attempts` failures, is another attempt allowed?
  bool ShouldRetry(int failed_attempts) const { return failed_attempts <= max_retry_attempts; }
  // Has an event enqueued at `enqueued_ms` outlived MaximumEventAgeInSeconds at `now_ms`?
  bool Expired(int64_t enqueued_ms, int64_t now_ms) const;
};

struct AsyncQueueOptions {
  size_t max_in_flight = 256;
  size_t per_function_in_flight = 64;
  // Test hook: divides every delay (retry back-off, throttle pause, maximum event age).
  double time_scale = 1.0;
};

// Batches writes into one SQLite transaction and calls each submitter back after the commit.
//
// Two modes:
//  - loop mode (`GroupCommit(loop, db)`): everything submitted during one loop turn commits at
//    the end of that turn, on the loop thread, on the loop's own connection. The loop is blocked
//    for the fsync.
//  - committer mode (`GroupCommit(loop, writer)`): a dedicated thread owns `writer`, a second
//    connection to the same database file, and commits there. While one batch syncs, the loop
//    keeps accepting and parsing requests into the next batch, which starts the moment the
//    previous one is durable. One batch is in flight at a time, so the order of commits is the
//    order of submission.
// In both modes `done` runs on the loop thread, after the batch reached disk (or failed).
//
// Thread safety: Submit, Flush and Close on the loop thread only. In committer mode each `work`
// runs on the committer thread: it must touch nothing but the Db it is given and its own
// captured values (no `this` of a loop-thread object, no ServiceHost, no clock).
class GroupCommit {
 public:
  // `work` runs inside the shared transaction and may throw (DbError, ApiException): then that
  // one item is rolled back alone (a SAVEPOINT per item) and its `done` gets the error; the
  // others still commit.
  using Work = std::function<void(Db&)>;
  using Done = std::function<void(Status)>;
  GroupCommit(uv_loop_t* loop, Db& db);
  GroupCommit(uv_loop_t* loop, std::unique_ptr<Db> writer);
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  void Submit(Work work, Done done);
  // Commits everything pending (and waits for a batch in flight) before returning, calling
  // every `done` (shutdown, tests).
  void Flush();
  // Flush, then stop the committer thread and release the loop handles. Idempotent.
  void Close();
  bool threaded() const { return writer_ != nullptr; }
  uint64_t batches() const { return batches_; }
  uint64_t items() const { return items_; }
  size_t largest_batch() const { return largest_batch_; }

 private:
  struct Item {
    Work work;
    Done done;
  };
  // Runs `items` in one transaction on `db`; fills `results`; a failed commit fails them all
  // and its message goes to `commit_error`. Touches no member (runs on either thread).
  static void RunBatch(Db& db, std::vector<Item>& items, std::vector<Status>& results, std::string& commit_error);
  static void OnCheck(uv_check_t* h);
  void Init();
  void Dispatch();          // loop: hand pending_ to the committer, or run it here (loop mode)
  void Complete();          // loop: a committed batch's callbacks
  void Finished(std::vector<Item>& items, std::vector<Status>& results, const std::string& commit_error);
  void ThreadMain();

  uv_loop_t* loop_;
  Db* db_;                       // the connection commits run on (loop's, or *writer_)
  std::unique_ptr<Db> writer_;   // committer mode only
  std::vector<Item> pending_;
  UvHandle<uv_check_t> check_;
  UvHandle<uv_idle_t> idle_;    // keeps the loop from blocking in poll while work is pending
  UvHandle<uv_async_t> async_;  // committer -> loop: a batch is done; referenced only while one is in flight
  bool armed_ = false, closed_ = false;
  uint64_t batches_ = 0, items_ = 0;
  size_t largest_batch_ = 0;

  // Shared with the committer thread, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  bool in_flight_ = false;       // a batch was handed over and its callbacks have not run yet
  bool has_batch_ = false;       // the committer should run batch_
  bool batch_done_ = false;      // batch_ ran; results_ and commit_error_ are set
  bool stop_ = false;
  std::vector<Item> batch_;
  std::vector<Status> results_;
  std::string commit_error_;
  std::thread thread_;
};

// Committer mode on a second connection to `db`'s file when it is a file; loop mode otherwise
// (or if that connection cannot be opened, which is logged).
std::unique_ptr<GroupCommit> MakeGroupCommit(uv_loop_t* loop, Db& db);

class AsyncQueue {
 public:
  AsyncQueue(ServiceHost& host, AsyncQueueOptions options = {});
  ~AsyncQueue();
  AsyncQueue(const AsyncQueue&) = delete;
  AsyncQueue& operator=(const AsyncQueue&) = delete;

  // Creates the tables and starts dispatching what an earlier run left queued.
  Status Start();
  void Shutdown();
  GroupCommit& commit() { return *commit_; }

  // Durable enqueue through the group commit; `done` runs after the commit (OK) or with why it
  // failed. The event's id, enqueued and next-attempt times are set here.
  void Enqueue(AsyncEvent event, std::function<void(Status)> done);
  // Fills what an event needs before it is written (request id, enqueued and first-attempt
  // times). Loop thread.
  AsyncEvent Stamp(AsyncEvent event) const;
  // Inserts a stamped event; touches only `db` (safe inside GroupCommit work on the committer
  // thread). Schedule firings use it to commit their events together with the schedule's next
  // firing; call Kick() after the commit.
  static int64_t InsertRow(Db& db, const AsyncEvent& event);
  // Look again for due events (after an insert, a config change, a redrive).
  void Kick();
  // The same after events for `function` were committed outside Enqueue (schedule firings).
  void Kick(const std::string& function);

  // Event-invoke configs. Validation is the API's job.
  std::optional<EventInvokeConfig> GetConfig(const std::string& function, const std::string& qualifier);
  void PutConfig(const EventInvokeConfig& config);
  bool DeleteConfig(const std::string& function, const std::string& qualifier);
  std::vector<EventInvokeConfig> ListConfigs(const std::string& function);

  // Operator views.
  std::vector<AsyncEvent> List(const std::string& state, const std::string& function, int limit);
  // Failed events back to the queue (attempts and age start afresh); `id` 0 = all. Returns how many.
  int Redrive(int64_t id, const std::string& function);
  size_t in_flight() const { return in_flight_.size(); }
  size_t in_flight(const std::string& function) const {
    auto it = per_function_.find(function);
    return it == per_function_.end() ? 0 : it->second;
  }
  uint64_t completed() const { return completed_; }

 private:
  void Pump();
  void ArmTimer(int64_t at_ms);
  void Attempt(AsyncEvent e);
  void OnResult(AsyncEvent e, proto::InvokeResult r, std::string body);
  void Retry(AsyncEvent e, const std::string& error, const std::string& response, bool counts);
  void Fail(AsyncEvent e, const std::string& error, const std::string& response, const std::string& condition);
  int64_t Scaled(int64_t ms) const;
  void Finish(int64_t id, const std::string& function);
  // An attempt is over: frees its concurrency slot; `settling` keeps it from starting again
  // until the write that records its result is durable (Settled).
  void Release(int64_t id, const std::string& function, bool settling);
  void Settled(int64_t id);
  void LoadReadyFunctions();
  size_t FunctionLimit(const std::string& function);

  ServiceHost& host_;
  AsyncQueueOptions opt_;
  std::unique_ptr<GroupCommit> commit_;
  UvHandle<uv_timer_t> timer_;
  int64_t timer_at_ = 0;
  bool pumping_ = false, pump_again_ = false, closed_ = false;
  std::set<int64_t> in_flight_;
  std::set<int64_t> settling_;
  std::set<std::string> ready_functions_;  // may have queued rows; dropped when a look finds none
  std::string round_robin_;                // the function the last pump looked at
  std::map<std::string, size_t> per_function_;
  std::map<std::string, int64_t> paused_until_;  // throttled functions
  uint64_t completed_ = 0;
};

}  // namespace geysir::control::triggers
