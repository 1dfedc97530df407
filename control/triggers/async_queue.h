// The durable async-invocation queue: what Lambda's Invoke(InvocationType=Event), EventBridge
// schedule firings and on-failure destinations put in, and the dispatcher that runs it through
// the scheduler.
//
//   GroupCommit  batches every write submitted during one turn of the loop into one SQLite
//                transaction (WAL, synchronous=FULL), then calls each submitter back. So an
//                Invoke(Event) is answered 202 only after its event has reached disk, and
//                concurrent enqueues share one fsync.
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
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "control/service.h"
#include "proto/status.h"

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

struct AsyncQueueOptions {
  size_t max_in_flight = 256;
  size_t per_function_in_flight = 64;
  // Test hook: divides every delay (retry back-off, throttle pause, maximum event age).
  double time_scale = 1.0;
};

// Batches writes into one transaction per loop turn. Runs on the loop thread.
class GroupCommit {
 public:
  // `work` runs inside the shared transaction and may throw (DbError, ApiException): then that
  // one item is rolled back alone and its `done` gets the error; the others still commit.
  using Work = std::function<void(Db&)>;
  using Done = std::function<void(Status)>;
  GroupCommit(uv_loop_t* loop, Db& db);
  ~GroupCommit();
  void Submit(Work work, Done done);
  // Runs everything pending now (shutdown, tests).
  void Flush();
  void Close();
  uint64_t batches() const { return batches_; }
  uint64_t items() const { return items_; }

 private:
  struct Item {
    Work work;
    Done done;
  };
  static void OnCheck(uv_check_t* h);
  uv_loop_t* loop_;
  Db& db_;
  std::vector<Item> pending_;
  uv_check_t* check_ = nullptr;  // freed in its close callback
  uv_idle_t* idle_ = nullptr;    // keeps the loop from blocking in poll while work is pending
  bool armed_ = false;
  uint64_t batches_ = 0, items_ = 0;
};

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
  // Inserts inside a transaction the caller already holds (schedule firings commit the event
  // and the schedule's next firing together). Call Kick() after the commit.
  int64_t InsertInTransaction(Db& db, AsyncEvent event);
  // Look again for due events (after an insert, a config change, a redrive).
  void Kick();

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

  ServiceHost& host_;
  AsyncQueueOptions opt_;
  std::unique_ptr<GroupCommit> commit_;
  uv_timer_t* timer_ = nullptr;  // freed in its close callback
  int64_t timer_at_ = 0;
  bool pumping_ = false, pump_again_ = false, closed_ = false;
  std::set<int64_t> in_flight_;
  std::map<std::string, size_t> per_function_;
  std::map<std::string, int64_t> paused_until_;  // throttled functions
  uint64_t completed_ = 0;
};

}  // namespace geysir::control::triggers
