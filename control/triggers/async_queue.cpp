// AsyncQueue and GroupCommit: see async_queue.h.
#include "control/triggers/async_queue.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "control/db.h"
#include "control/lambda_api.h"
#include "control/services/protocol.h"
#include "control/store.h"
#include "proto/log.h"

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
};

constexpr const char* kColumns =
    "id, request_id, function, qualifier, payload, client_context, source, enqueued_ms, attempts, "
    "next_attempt_ms, state, last_error, last_response, failed_ms";

AsyncEvent ReadEvent(Statement& s) {
  AsyncEvent e;
  e.id = s.Int(0);
  e.request_id = s.Text(1);
  e.function = s.Text(2);
  e.qualifier = s.Text(3);
  e.payload = s.Text(4);
  e.client_context_b64 = s.Text(5);
  e.source = s.Text(6);
  e.enqueued_ms = s.Int(7);
  e.attempts = static_cast<int>(s.Int(8));
  e.next_attempt_ms = s.Int(9);
  e.state = s.Text(10);
  e.last_error = s.Text(11);
  e.last_response = s.Text(12);
  e.failed_ms = s.Int(13);
  return e;
}

// Lambda's retry waits: one minute before the second attempt, two before the third.
int64_t RetryDelayMs(int failed_attempts) { return failed_attempts <= 1 ? 60'000 : 120'000; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// GroupCommit

GroupCommit::GroupCommit(uv_loop_t* loop, Db& db) : loop_(loop), db_(db) {
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  check_->data = this;
  idle_ = new uv_idle_t;
  uv_idle_init(loop_, idle_);
  idle_->data = this;
}

GroupCommit::~GroupCommit() { Close(); }

void GroupCommit::Submit(Work work, Done done) {
  pending_.push_back({std::move(work), std::move(done)});
  if (!armed_ && check_) {
    armed_ = true;
    uv_check_start(check_, OnCheck);
    uv_idle_start(idle_, [](uv_idle_t*) {});
  }
}

void GroupCommit::OnCheck(uv_check_t* h) { static_cast<GroupCommit*>(h->data)->Flush(); }

void GroupCommit::Flush() {
  if (armed_) {
    armed_ = false;
    uv_check_stop(check_);
    uv_idle_stop(idle_);
  }
  if (pending_.empty()) return;
  std::vector<Item> items = std::move(pending_);
  pending_.clear();
  std::vector<Status> results(items.size());
  try {
    Transaction txn(db_);
    for (size_t i = 0; i < items.size(); ++i) {
      db_.Exec("SAVEPOINT item");
      try {
        items[i].work(db_);
        db_.Exec("RELEASE item");
      } catch (const ApiException& e) {
        db_.Exec("ROLLBACK TO item; RELEASE item");
        results[i] = Status::Invalid(e.error().message);
      } catch (const DbError& e) {
        db_.Exec("ROLLBACK TO item; RELEASE item");
        results[i] = Status::Internal(e.what());
      }
    }
    txn.Commit();
  } catch (const std::exception& e) {
    // The commit itself failed (disk full, I/O error): nothing of this batch is durable.
    log::Error("group_commit_failed", {{"items", items.size()}, {"what", e.what()}});
    for (Status& st : results) {
      if (st.ok()) st = Status::Internal(std::string("the database commit failed: ") + e.what());
    }
  }
  ++batches_;
  items_ += items.size();
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].done) items[i].done(results[i]);
  }
}

void GroupCommit::Close() {
  Flush();
  if (check_) {
    uv_close(reinterpret_cast<uv_handle_t*>(check_), [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
    check_ = nullptr;
  }
  if (idle_) {
    uv_close(reinterpret_cast<uv_handle_t*>(idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    idle_ = nullptr;
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
  commit_ = std::make_unique<GroupCommit>(host_.loop(), host_.store().db());
  timer_ = new uv_timer_t;
  uv_timer_init(host_.loop(), timer_);
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
  log::Info("async_queue_started", {{"queued", queued}, {"failed", failed}, {"time_scale", opt_.time_scale}});
  Kick();
  return Status::Ok();
}

void AsyncQueue::Shutdown() {
  if (closed_) return;
  closed_ = true;
  if (commit_) commit_->Close();
  if (timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

int64_t AsyncQueue::Scaled(int64_t ms) const {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(ms) / opt_.time_scale)));
}

int64_t AsyncQueue::InsertInTransaction(Db& db, AsyncEvent e) {
  if (e.request_id.empty()) e.request_id = NewUuid();
  const int64_t now = host_.NowMs();
  if (e.enqueued_ms == 0) e.enqueued_ms = now;
  if (e.next_attempt_ms == 0) e.next_attempt_ms = now;
  db.Prepare(
        "INSERT INTO async_events (request_id, function, qualifier, payload, client_context, source, enqueued_ms, "
        "attempts, next_attempt_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')")
      .BindAll(e.request_id, e.function, e.qualifier, e.payload, e.client_context_b64, e.source, e.enqueued_ms,
               e.attempts, e.next_attempt_ms)
      .Run();
  return db.LastInsertRowId();
}

void AsyncQueue::Enqueue(AsyncEvent event, std::function<void(Status)> done) {
  if (closed_ || !commit_) {
    done(Status::Unavailable("control is shutting down"));
    return;
  }
  commit_->Submit([this, event = std::move(event)](Db& db) { InsertInTransaction(db, event); },
                  [this, done = std::move(done)](Status st) {
                    done(st);
                    if (st.ok()) Kick();
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
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(timer_)) && timer_at_ <= at_ms) return;
  timer_at_ = at_ms;
  uv_timer_start(
      timer_, [](uv_timer_t* t) { static_cast<AsyncQueue*>(t->data)->Pump(); },
      static_cast<uint64_t>(std::max<int64_t>(0, at_ms - now)), 0);
}

void AsyncQueue::Pump() {
  if (closed_) return;
  const int64_t now = host_.NowMs();
  Db& db = host_.store().db();
  if (in_flight_.size() < opt_.max_in_flight) {
    std::vector<std::string> excluded;
    for (auto it = paused_until_.begin(); it != paused_until_.end();) {
      if (it->second <= now) {
        it = paused_until_.erase(it);
      } else {
        excluded.push_back(it->first);
        ++it;
      }
    }
    for (const auto& [fn, n] : per_function_) {
      if (n >= opt_.per_function_in_flight && !paused_until_.count(fn)) excluded.push_back(fn);
    }
    std::string sql = std::string("SELECT ") + kColumns +
                      " FROM async_events WHERE state = 'queued' AND next_attempt_ms <= ?";
    if (!in_flight_.empty()) {
      sql += " AND id NOT IN (";
      bool first = true;
      for (int64_t id : in_flight_) {
        sql += (first ? "" : ",") + std::to_string(id);
        first = false;
      }
      sql += ")";
    }
    if (!excluded.empty()) {
      sql += " AND function NOT IN (";
      for (size_t i = 0; i < excluded.size(); ++i) sql += i ? ",?" : "?";
      sql += ")";
    }
    sql += " ORDER BY next_attempt_ms, id LIMIT " + std::to_string(opt_.max_in_flight - in_flight_.size());
    std::vector<AsyncEvent> due;
    try {
      Statement s = db.Prepare(sql);
      s.Bind(1, now);
      for (size_t i = 0; i < excluded.size(); ++i) s.Bind(static_cast<int>(i + 2), excluded[i]);
      while (s.Step()) due.push_back(ReadEvent(s));
    } catch (const DbError& e) {
      log::Error("async_pump_failed", {{"what", e.what()}});
      ArmTimer(now + 1000);
      return;
    }
    for (AsyncEvent& e : due) {
      if (in_flight_.size() >= opt_.max_in_flight) break;
      size_t& n = per_function_[e.function];
      if (n >= opt_.per_function_in_flight) continue;
      ++n;
      in_flight_.insert(e.id);
      Attempt(std::move(e));
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
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer_)) || timer_at_ > next) ArmTimer(next);
  }
}

void AsyncQueue::Attempt(AsyncEvent e) {
  const int64_t now = host_.NowMs();
  std::optional<EventInvokeConfig> cfg = GetConfig(e.function, e.qualifier);
  const int max_age_s = cfg && cfg->max_event_age_s ? *cfg->max_event_age_s : 21600;
  if (now - e.enqueued_ms > Scaled(static_cast<int64_t>(max_age_s) * 1000)) {
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
  in_flight_.erase(id);
  if (auto it = per_function_.find(fn); it != per_function_.end() && --it->second == 0) per_function_.erase(it);
  AsyncEvent again;
  {
    Statement s = host_.store().db().Prepare(std::string("SELECT ") + kColumns + " FROM async_events WHERE id = ?");
    s.Bind(1, id);
    if (!s.Step()) return;
    again = ReadEvent(s);
  }
  if (st.code() == Code::kNotFound) {
    Fail(std::move(again), "ResourceNotFoundException: " + st.message(), "", "RetriesExhausted");
  } else {
    // The scheduler is not connected (restarting): wait, without spending an attempt.
    paused_until_[fn] = host_.NowMs() + Scaled(1000);
    ArmTimer(paused_until_[fn]);
  }
}

void AsyncQueue::OnResult(AsyncEvent e, proto::InvokeResult r, std::string body) {
  if (closed_) return;  // still queued on disk; the next start runs it again
  in_flight_.erase(e.id);
  if (auto it = per_function_.find(e.function); it != per_function_.end() && --it->second == 0) {
    per_function_.erase(it);
  }
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
      log::Warn("async_event_deferred", {{"function", e.function}, {"request_id", e.request_id}, {"detail", body.substr(0, 300)}});
      paused_until_[e.function] = host_.NowMs() + Scaled(1000);
      break;
    case proto::InvokeOutcome::kUnhandled:
    case proto::InvokeOutcome::kTimeout: {
      std::string error = r.outcome == proto::InvokeOutcome::kTimeout ? "Timeout" : "Unhandled";
      json j = json::parse(body, nullptr, false);
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
                  [id, function](Status st) {
                    if (!st.ok()) log::Error("async_finish_failed", {{"id", id}, {"function", function}, {"error", st.ToString()}});
                  });
}

void AsyncQueue::Retry(AsyncEvent e, const std::string& error, const std::string& response, bool counts) {
  if (counts) ++e.attempts;
  std::optional<EventInvokeConfig> cfg = GetConfig(e.function, e.qualifier);
  const int max_retry = cfg && cfg->max_retry_attempts ? *cfg->max_retry_attempts : 2;
  if (e.attempts > max_retry) {
    Fail(std::move(e), error, response, "RetriesExhausted");
    return;
  }
  e.next_attempt_ms = host_.NowMs() + Scaled(RetryDelayMs(e.attempts));
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
      [this, next](Status st) {
        if (!st.ok()) log::Error("async_retry_write_failed", {{"error", st.ToString()}});
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
    json request_payload = json::parse(e.payload, nullptr, false);
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
      json resp = json::parse(response, nullptr, false);
      body["responseContext"] = {{"statusCode", 200}, {"executedVersion", "$LATEST"}, {"functionError", "Unhandled"}};
      body["responsePayload"] = resp.is_discarded() ? json(response) : resp;
    }
    try {
      FunctionRef ref = ParseFunctionRef(destination);
      record.function = ref.name;
      record.qualifier = ref.qualifier == "$LATEST" ? "" : ref.qualifier;
      record.payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
      record.source = "destination";
    } catch (const ApiException&) {
      destination.clear();
    }
  }
  commit_->Submit(
      [this, e, error, response, destination, record, now](Db& db) {
        if (!destination.empty()) {
          db.Prepare("DELETE FROM async_events WHERE id = ?").Bind(1, e.id).Run();
          InsertInTransaction(db, record);
        } else {
          db.Prepare("UPDATE async_events SET state = 'failed', attempts = ?, last_error = ?, last_response = ?, "
                     "failed_ms = ? WHERE id = ?")
              .BindAll(e.attempts, error, response, now, e.id)
              .Run();
        }
      },
      [this, destination](Status st) {
        if (!st.ok()) log::Error("async_fail_write_failed", {{"error", st.ToString()}});
        if (!destination.empty()) Kick();
      });
}

// ---------------------------------------------------------------------------------------------
// Configs and operator views (synchronous: rare, and each is its own durable write)

std::optional<EventInvokeConfig> AsyncQueue::GetConfig(const std::string& function, const std::string& qualifier) {
  Statement s = host_.store().db().Prepare(
      "SELECT function, qualifier, max_retry_attempts, max_event_age_s, on_success, on_failure, last_modified_ms "
      "FROM async_invoke_configs WHERE function = ? AND qualifier = ?");
  s.BindAll(function, qualifier);
  if (!s.Step()) return std::nullopt;
  EventInvokeConfig c;
  c.function = s.Text(0);
  c.qualifier = s.Text(1);
  if (auto v = s.OptInt(2)) c.max_retry_attempts = static_cast<int>(*v);
  if (auto v = s.OptInt(3)) c.max_event_age_s = static_cast<int>(*v);
  c.on_success = s.Text(4);
  c.on_failure = s.Text(5);
  c.last_modified_ms = s.Int(6);
  return c;
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
  std::optional<int64_t> retry, age;
  if (c.max_retry_attempts) retry = *c.max_retry_attempts;
  if (c.max_event_age_s) age = *c.max_event_age_s;
  db.Prepare(
        "INSERT INTO async_invoke_configs (function, qualifier, max_retry_attempts, max_event_age_s, on_success, "
        "on_failure, last_modified_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (function, qualifier) DO UPDATE SET "
        "max_retry_attempts = excluded.max_retry_attempts, max_event_age_s = excluded.max_event_age_s, "
        "on_success = excluded.on_success, on_failure = excluded.on_failure, last_modified_ms = excluded.last_modified_ms")
      .BindAll(c.function, c.qualifier, retry, age, c.on_success, c.on_failure, c.last_modified_ms)
      .Run();
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
  std::string sql = std::string("SELECT ") + kColumns + " FROM async_events WHERE state = ?";
  if (!function.empty()) sql += " AND function = ?";
  sql += " ORDER BY id LIMIT ?";
  Statement s = host_.store().db().Prepare(sql);
  int i = 0;
  s.Bind(++i, state);
  if (!function.empty()) s.Bind(++i, function);
  s.Bind(++i, limit);
  std::vector<AsyncEvent> out;
  while (s.Step()) out.push_back(ReadEvent(s));
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
    Kick();
  }
  return n;
}

}  // namespace geysir::control::triggers
