// Restore mode in the pool logic, with fakes: a child that answered is restored off the critical
// path and serves the next invocation (no fork, no Finish); one whose restore fails is discarded
// (Finish) and replaced by a fork; the answer and its complete log batch never wait for either.
#include <catch2/catch.hpp>

#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/fakes.h"

using namespace geysir;
using namespace geysir::scheduler;
using namespace geysir::scheduler::testing;

namespace {

struct Harness {
  Harness() : sched(Options(), &clock, &launcher, &logs) { launcher.restorable_children = true; }
  static SchedulerOptions Options() {
    SchedulerOptions o;
    o.prefork = 1;
    o.function_concurrency = 4;
    o.idle_timeout_ms = 60000;
    return o;
  }
  void Submit(const std::string& rid) {
    proto::InvokeRequest r;
    r.id = ++next_id;
    r.request_id = rid;
    r.function.name = "hello";
    r.function.revision_id = "r1";
    r.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:hello";
    r.function.handler = "app.handler";
    r.function.timeout_s = 3;
    r.function.memory_mb = 128;
    sched.Submit(std::move(r), "{}", [this, rid](proto::InvokeResult res, std::string) { answers[rid] = res; });
  }
  // "a" on a cold pool: the template ready, its forks delivered, "a" running on a child.
  std::shared_ptr<ChildState> RunFirst() {
    Submit("a");
    launcher.Ready();
    launcher.DeliverForks();
    auto child = launcher.Running("a");
    REQUIRE(child);
    return child;
  }
  FakeClock clock;
  FakeLauncher launcher;
  VectorLogSink logs;
  Scheduler sched;
  std::map<std::string, proto::InvokeResult> answers;
  uint64_t next_id = 0;
};

}  // namespace

TEST_CASE("restore mode: the restored child serves the next invocation, with no fork and no Finish") {
  Harness h;
  auto child = h.RunFirst();
  const size_t forks_before = h.launcher.children.size();
  h.launcher.Respond("a", "1", false, "line a\n");
  // Answered, with its whole log batch, before the restore even finished.
  REQUIRE(h.answers.count("a") == 1);
  REQUIRE_FALSE(h.logs.batches.empty());
  CHECK(h.logs.batches.back().events.at(1).message == "line a");
  REQUIRE(child->on_restore);
  CHECK(h.sched.stats().restoring == 1);
  CHECK_FALSE(child->on_finish);
  auto done = std::move(child->on_restore);
  done(RestoreOutcome{Status::Ok(), 12, 0, 0, 30000});
  CHECK(h.sched.stats().restoring == 0);
  CHECK(h.sched.stats().restored == 1);
  CHECK_FALSE(child->destroyed);

  for (const char* rid : {"b", "c"}) {
    h.Submit(rid);
    auto again = h.launcher.Running(rid);
    REQUIRE(again);
    CHECK(again->pid == child->pid);
    h.launcher.Respond(rid, "2");
    REQUIRE(h.answers.count(rid) == 1);
    auto next = std::move(child->on_restore);
    REQUIRE(next);
    next(RestoreOutcome{Status::Ok()});
  }
  CHECK(h.launcher.DeliverForks() == 0);
  CHECK(h.launcher.children.size() == forks_before);
  CHECK(h.launcher.FinishAll() == 0);
}

TEST_CASE("restore mode: a child whose restore fails is discarded and replaced by a fork") {
  Harness h;
  auto child = h.RunFirst();
  h.launcher.Respond("a", "1");
  REQUIRE(h.answers.count("a") == 1);
  REQUIRE(child->on_restore);
  const int pending_before = h.launcher.last()->pending_forks;
  auto done = std::move(child->on_restore);
  child->alive = false;  // a failed restore leaves the child killed
  done(RestoreOutcome{Status::Invalid("the worker has child processes")});
  CHECK(h.sched.stats().restore_discards == 1);
  CHECK(h.sched.stats().restored == 0);
  CHECK(h.launcher.FinishAll() == 1);
  CHECK(child->destroyed);
  // The pool keeps its pre-forked child: a new fork replaces the discarded one.
  CHECK(h.launcher.last()->pending_forks + static_cast<int>(h.sched.stats().ready_children) > pending_before);
  h.launcher.DeliverForks();
  h.Submit("b");
  auto fresh = h.launcher.Running("b");
  REQUIRE(fresh);
  CHECK(fresh->pid != child->pid);
}
