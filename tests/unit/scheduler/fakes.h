// Fakes for the scheduler's seams: a hand-driven Clock, a Launcher whose templates and children
// do exactly what the test tells them, and a LogSink that keeps what it gets.
//
// Thread safety: single-threaded tests only.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/clock.h"
#include "scheduler/sandbox.h"
#include "scheduler/scheduler.h"

namespace geysir::scheduler::testing {

class FakeClock final : public Clock {
 public:
  int64_t MonoNs() const override { return mono_ns_; }
  int64_t WallMs() const override { return 1795000000000 + mono_ns_ / 1000000; }
  TimerId Schedule(int64_t delay_ms, std::function<void()> fn) override {
    TimerId id = next_++;
    timers_[id] = {MonoMs() + std::max<int64_t>(delay_ms, 0), std::move(fn)};
    return id;
  }
  void Cancel(TimerId id) override { timers_.erase(id); }
  // Moves time forward, firing due timers in deadline order (0: just the ones due now).
  void Advance(int64_t ms) {
    const int64_t until = MonoMs() + ms;
    for (int guard = 0; guard < 100000; ++guard) {
      auto best = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.due <= until && (best == timers_.end() || it->second.due < best->second.due)) best = it;
      }
      if (best == timers_.end()) break;
      if (best->second.due > MonoMs()) mono_ns_ = best->second.due * 1000000;
      auto fn = std::move(best->second.fn);
      timers_.erase(best);
      fn();
    }
    mono_ns_ = until * 1000000;
  }
  void AdvanceNs(int64_t ns) { mono_ns_ += ns; }
  size_t pending() const { return timers_.size(); }

 private:
  struct T {
    int64_t due;
    std::function<void()> fn;
  };
  int64_t mono_ns_ = 1000000000;
  TimerId next_ = 1;
  std::map<TimerId, T> timers_;
};

struct ChildState {
  pid_t pid = 0;
  bool alive = true;
  bool destroyed = false;
  bool killed = false;
  bool invoked = false;
  bool reported = false;
  ChildInvoke invoke;
  std::string event;
  std::function<void(ChildReport)> on_report;
  std::function<void(std::string)> on_finish;
  std::string log;       // returned by DrainLog
  std::string late_log;  // returned through Finish
  uint64_t peak = 12 * 1024 * 1024;
  int reuses = 0;  // Reuse() calls that put it back to waiting for work
  // Restore mode: a child that can be restored after it answers; Restore() keeps `on_restore`
  // for the test to complete.
  bool restorable = false;
  std::function<void(RestoreOutcome)> on_restore;
};

class FakeChild final : public Child {
 public:
  explicit FakeChild(std::shared_ptr<ChildState> s) : s_(std::move(s)) {}
  ~FakeChild() override {
    s_->destroyed = true;
    s_->on_report = nullptr;
    s_->on_finish = nullptr;
    s_->on_restore = nullptr;
  }
  pid_t pid() const override { return s_->pid; }
  bool alive() const override { return s_->alive; }
  void Invoke(const ChildInvoke& invoke, std::string_view event, std::function<void(ChildReport)> cb) override {
    s_->invoked = true;
    s_->invoke = invoke;
    s_->event = std::string(event);
    s_->on_report = std::move(cb);
  }
  void Kill() override {
    s_->killed = true;
    s_->alive = false;
    s_->on_report = nullptr;
  }
  std::string DrainLog() override { return std::exchange(s_->log, ""); }
  uint64_t PeakMemoryBytes() const override { return s_->peak; }
  void Finish(std::function<void(std::string)> done) override { s_->on_finish = std::move(done); }
  bool Restorable() const override { return s_->restorable && s_->alive && !s_->killed; }
  void Restore(std::function<void(RestoreOutcome)> done) override {
    s_->invoked = false;
    s_->reported = false;
    s_->on_restore = std::move(done);
  }
  bool Reuse() override {
    if (!s_->alive || s_->killed) return false;
    s_->invoked = false;
    s_->reported = false;
    ++s_->reuses;
    return true;
  }

 private:
  std::shared_ptr<ChildState> s_;
};

struct TemplateState {
  TemplateRequest request;
  TemplateEvents events;
  pid_t pid = 0;
  bool destroyed = false;
  bool ready = false;
  int pending_forks = 0;
};

class FakeTemplate final : public Template {
 public:
  explicit FakeTemplate(std::shared_ptr<TemplateState> s) : s_(std::move(s)) {}
  ~FakeTemplate() override {
    s_->destroyed = true;
    s_->events = {};
  }
  pid_t pid() const override { return s_->pid; }
  void Fork() override { ++s_->pending_forks; }

 private:
  std::shared_ptr<TemplateState> s_;
};

class FakeLauncher final : public Launcher {
 public:
  Result<std::unique_ptr<Template>> Start(const TemplateRequest& request, TemplateEvents events) override {
    if (fail_start) return Status::Internal("launch refused by the test");
    auto s = std::make_shared<TemplateState>();
    s->request = request;
    s->events = std::move(events);
    s->pid = next_pid_++;
    templates.push_back(s);
    return std::unique_ptr<Template>(new FakeTemplate(s));
  }

  std::shared_ptr<TemplateState> last() { return templates.back(); }
  bool restorable_children = false;  // children delivered from now on are restorable
  size_t live_templates() const {
    size_t n = 0;
    for (auto& t : templates) n += !t->destroyed;
    return n;
  }
  // The last template reports "ready".
  void Ready(double init_ms = 85.2, std::string init_log = "") {
    auto t = last();
    t->ready = true;
    auto cb = t->events.on_ready;
    cb(init_ms, std::move(init_log));
  }
  void InitError(std::string error, double init_ms = 12.0) {
    auto cb = last()->events.on_init_error;
    cb(init_ms, std::move(error), "Traceback: boom\n");
  }
  void Crash(std::shared_ptr<TemplateState> t = nullptr) {
    if (!t) t = last();
    auto cb = t->events.on_exit;
    cb(Status::Unavailable("template killed by the test"));
  }
  // Completes every outstanding Fork() of every live template; returns how many.
  int DeliverForks() {
    int delivered = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      std::shared_ptr<TemplateState> t;
      for (auto& c : templates) {
        if (!c->destroyed && c->pending_forks > 0) t = c;
      }
      if (!t) break;
      --t->pending_forks;
      auto cs = std::make_shared<ChildState>();
      cs->pid = next_pid_++;
      cs->restorable = restorable_children;
      children.push_back(cs);
      ++delivered;
      auto cb = t->events.on_forked;
      cb(std::unique_ptr<Child>(new FakeChild(cs)));
    }
    return delivered;
  }
  int FailForks() {
    int n = 0;
    for (auto& t : templates) {
      while (!t->destroyed && t->pending_forks > 0) {
        --t->pending_forks;
        ++n;
        auto cb = t->events.on_forked;
        cb(Status::Internal("fork refused by the test"));
      }
    }
    return n;
  }
  // The child currently running `request_id`, or null.
  std::shared_ptr<ChildState> Running(const std::string& request_id) {
    for (auto& c : children) {
      if (c->invoked && !c->reported && !c->destroyed && c->on_report && c->invoke.request_id == request_id) return c;
    }
    return nullptr;
  }
  void Respond(const std::string& request_id, std::string body, bool error = false, std::string log = "") {
    auto c = Running(request_id);
    REQUIRE(c);
    c->reported = true;
    c->log += log;
    ChildReport r;
    r.kind = ChildReport::Kind::kResult;
    r.handler_error = error;
    r.body = std::move(body);
    auto cb = std::move(c->on_report);
    cb(std::move(r));
  }
  void Die(const std::string& request_id, int code, int sig, bool oom) {
    auto c = Running(request_id);
    REQUIRE(c);
    c->reported = true;
    c->alive = false;
    ChildReport r;
    r.kind = ChildReport::Kind::kDied;
    r.exit_code = code;
    r.exit_signal = sig;
    r.oom_killed = oom;
    auto cb = std::move(c->on_report);
    cb(std::move(r));
  }
  // Completes every pending Child::Finish.
  int FinishAll() {
    int n = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      std::shared_ptr<ChildState> c;
      for (auto& x : children) {
        if (x->on_finish) c = x;
      }
      if (!c) break;
      auto cb = std::move(c->on_finish);
      c->on_finish = nullptr;
      ++n;
      cb(std::exchange(c->late_log, ""));
    }
    return n;
  }
  size_t live_children() const {
    size_t n = 0;
    for (auto& c : children) n += !c->destroyed;
    return n;
  }

  bool fail_start = false;
  std::vector<std::shared_ptr<TemplateState>> templates;
  std::vector<std::shared_ptr<ChildState>> children;

 private:
  pid_t next_pid_ = 1000;
};

class VectorLogSink final : public LogSink {
 public:
  void Emit(proto::LogBatch batch) override { batches.push_back(std::move(batch)); }
  std::vector<proto::LogBatch> batches;
};

}  // namespace geysir::scheduler::testing
