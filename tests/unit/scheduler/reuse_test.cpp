// Reuse mode (GEYSIR_EXECUTION_MODE=reuse) with fakes: warm workers kept between invocations,
// forks only on demand, replacement after a timeout or a crash, per-worker idle stop, retire,
// the bound on idle processes, and the log batch of each invocation.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "scheduler/scheduler.h"
#include "tests/unit/scheduler/fakes.h"

using namespace geysir;
using namespace geysir::scheduler;
using namespace geysir::scheduler::testing;
using proto::InvokeOutcome;

namespace {

// Holds the `durable` callbacks, to show when an answer waits for them.
class HoldingSink final : public LogSink {
 public:
  void Emit(proto::LogBatch batch) override { batches.push_back(std::move(batch)); }
  void EmitDurable(proto::LogBatch batch, std::function<void()> durable) override {
    batches.push_back(std::move(batch));
    held.push_back(std::move(durable));
  }
  std::vector<proto::LogBatch> batches;
  std::vector<std::function<void()>> held;
};

struct Reuse {
  explicit Reuse(SchedulerOptions o = Options()) : sched(o, &clock, &launcher, &logs) {}
  static SchedulerOptions Options() {
    SchedulerOptions o;
    o.prefork = 2;
    o.function_concurrency = 4;
    o.queue_depth = 2;
    o.idle_timeout_ms = 60000;
    o.worker_idle_timeout_ms = 5000;
    return o;
  }
  void Submit(const std::string& rid, proto::ExecutionMode mode = proto::ExecutionMode::kReuse,
              proto::InvokeSource source = proto::InvokeSource::kApi, const std::string& rev = "r1") {
    proto::InvokeRequest r;
    r.id = ++next_id;
    r.request_id = rid;
    r.source = source;
    r.function.name = "hello";
    r.function.revision_id = rev;
    r.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:hello";
    r.function.handler = "app.handler";
    r.function.timeout_s = 3;
    r.function.memory_mb = 128;
    r.function.execution_mode = mode;
    sched.Submit(std::move(r), "{}", [this, rid](proto::InvokeResult res, std::string payload) {
      REQUIRE(answers.count(rid) == 0);  // exactly once
      answers[rid] = {std::move(res), std::move(payload)};
    });
  }
  bool answered(const std::string& rid) const { return answers.count(rid) > 0; }
  // Invocations "a" and "b" submitted to a cold pool, each running on a worker of its own.
  std::pair<std::shared_ptr<ChildState>, std::shared_ptr<ChildState>> RunTwo() {
    Submit("a");
    Submit("b");
    launcher.Ready();
    REQUIRE(launcher.DeliverForks() == 2);
    auto a = launcher.Running("a");
    auto b = launcher.Running("b");
    REQUIRE(a);
    REQUIRE(b);
    return {a, b};
  }
  std::vector<std::string> Messages(size_t i) const {
    std::vector<std::string> m;
    for (auto& e : logs.batches.at(i).events) m.push_back(e.message);
    return m;
  }

  FakeClock clock;
  FakeLauncher launcher;
  HoldingSink logs;
  Scheduler sched;
  std::map<std::string, std::pair<proto::InvokeResult, std::string>> answers;
  uint64_t next_id = 0;
};

}  // namespace

TEST_CASE("reuse mode: one worker serves invocation after invocation without a fork; logs complete at once") {
  Reuse h;
  h.Submit("a");
  h.launcher.Ready(85.2, "init line\n");
  auto tpl = h.launcher.last();
  CHECK(tpl->pending_forks == 1);  // the waiting invocation only: nothing pre-forked
  REQUIRE(h.launcher.DeliverForks() == 1);
  auto w = h.launcher.Running("a");
  REQUIRE(w);
  h.clock.AdvanceNs(1230000);
  h.launcher.Respond("a", "1", false, "line a\n");
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].first.init_duration_ms == Approx(85.2));
  CHECK(h.answers["a"].first.worker_pid == w->pid);
  // No Finish, no wait for EOF: the batch went out with the answer.
  CHECK(h.launcher.FinishAll() == 0);
  CHECK_FALSE(w->destroyed);
  CHECK(w->reuses == 1);
  REQUIRE(h.logs.batches.size() == 2);  // init log, then a's
  auto m = h.Messages(1);
  REQUIRE(m.size() == 4);
  CHECK(m[0] == "START RequestId: a Version: $LATEST");
  CHECK(m[1] == "line a");
  CHECK(m[2] == "END RequestId: a");
  CHECK(m[3].find("Init Duration: 85.20 ms") != std::string::npos);
  CHECK(h.sched.stats().idle_workers == 1);
  CHECK(h.sched.stats().ready_children == 0);

  // The next invocations run on the same worker, with no fork and no Init Duration.
  for (const char* rid : {"b", "c"}) {
    h.Submit(rid);
    auto again = h.launcher.Running(rid);
    REQUIRE(again);
    CHECK(again->pid == w->pid);
    CHECK(tpl->pending_forks == 0);
    h.launcher.Respond(rid, "2", false, std::string("line ") + rid + "\n");
    REQUIRE(h.answered(rid));
    CHECK_FALSE(h.answers[rid].first.init_duration_ms.has_value());
    auto mm = h.Messages(h.logs.batches.size() - 1);
    REQUIRE(mm.size() == 4);
    CHECK(mm[0] == std::string("START RequestId: ") + rid + " Version: $LATEST");
    CHECK(mm[1] == std::string("line ") + rid);
    CHECK(mm[3].find("Init Duration") == std::string::npos);
  }
  CHECK(h.launcher.children.size() == 1);
  CHECK(h.sched.stats().ran_on_warm_worker == 2);
  // A handler error leaves the worker warm too (Lambda keeps the environment).
  h.Submit("err");
  h.launcher.Respond("err", R"({"errorMessage":"boom","errorType":"ValueError","stackTrace":[]})", true);
  CHECK(h.answers["err"].first.outcome == InvokeOutcome::kUnhandled);
  CHECK(w->reuses == 4);
  CHECK_FALSE(w->destroyed);
}

TEST_CASE("reuse mode: concurrent invocations scale workers up to demand; the most recent idle one serves next") {
  Reuse h;
  auto [wa, wb] = h.RunTwo();
  CHECK(wa->pid != wb->pid);
  h.launcher.Respond("a", "1");
  h.launcher.Respond("b", "2");
  CHECK(h.sched.stats().idle_workers == 2);
  h.Submit("c");
  REQUIRE(h.launcher.Running("c"));
  CHECK(h.launcher.Running("c")->pid == wb->pid);
  // A worker that answers while an invocation waits for a fork takes it at once.
  h.Submit("d");
  h.Submit("e");  // a is idle-warm: d takes it; e waits for a fork
  REQUIRE(h.launcher.Running("d"));
  CHECK_FALSE(h.launcher.Running("e"));
  h.launcher.Respond("c", "3");
  REQUIRE(h.launcher.Running("e"));
  CHECK(h.launcher.Running("e")->pid == wb->pid);
  // The fork asked for meanwhile arrives with no one waiting: it joins the idle set, behind the
  // workers that have served (their state is the warm one).
  REQUIRE(h.launcher.DeliverForks() == 1);
  CHECK(h.sched.stats().idle_workers == 1);
  h.launcher.Respond("d", "4");
  h.Submit("f");
  REQUIRE(h.launcher.Running("f"));
  CHECK(h.launcher.Running("f")->pid == wa->pid);
}

TEST_CASE("reuse mode: a timed-out or crashed worker is replaced; the next invocation gets a fresh one") {
  Reuse h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto w1 = h.launcher.Running("a");
  REQUIRE(w1);
  h.clock.Advance(3000);
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].first.outcome == InvokeOutcome::kTimeout);
  CHECK(w1->killed);
  h.launcher.FinishAll();
  CHECK(w1->destroyed);
  CHECK(w1->reuses == 0);

  h.Submit("b");
  CHECK(h.launcher.last()->pending_forks == 1);
  h.launcher.DeliverForks();
  auto w2 = h.launcher.Running("b");
  REQUIRE(w2);
  CHECK(w2->pid != w1->pid);
  h.launcher.Die("b", -1, 9, true);
  CHECK(h.answers["b"].first.error_type == "Runtime.OutOfMemory");
  h.launcher.FinishAll();
  CHECK(w2->destroyed);
  CHECK(h.sched.stats().idle_workers == 0);

  h.Submit("c");
  h.launcher.DeliverForks();
  auto w3 = h.launcher.Running("c");
  REQUIRE(w3);
  CHECK(w3->pid != w2->pid);
  h.launcher.Die("c", 3, 0, false);
  CHECK(h.answers["c"].first.error_type == "Runtime.ExitError");
  // Init Duration only on the invocation that started the template.
  CHECK(h.answers["a"].first.init_duration_ms.has_value());
  CHECK_FALSE(h.answers["b"].first.init_duration_ms.has_value());
  CHECK_FALSE(h.answers["c"].first.init_duration_ms.has_value());
}

TEST_CASE("reuse mode: idle workers stop one by one after their idle time; the pool after its own") {
  Reuse h;
  auto [wa, wb] = h.RunTwo();
  h.launcher.Respond("a", "1");
  h.clock.Advance(2000);
  h.launcher.Respond("b", "2");
  h.clock.Advance(3000);  // a's worker idle for 5 s, b's for 3 s
  CHECK(wa->destroyed);
  CHECK_FALSE(wb->destroyed);
  CHECK(h.sched.stats().idle_workers == 1);
  h.clock.Advance(2000);
  CHECK(wb->destroyed);
  CHECK(h.sched.stats().idle_workers == 0);
  CHECK(h.sched.stats().workers_idle_stopped == 2);
  CHECK_FALSE(h.launcher.last()->destroyed);  // the template waits for the pool's idle timeout
  h.clock.Advance(60000);
  CHECK(h.launcher.last()->destroyed);
  CHECK(h.sched.stats().pools == 0);
  CHECK(h.launcher.live_children() == 0);
}

TEST_CASE("reuse mode: retire stops idle workers at once and does not keep a running one") {
  Reuse h;
  auto [wa, wb] = h.RunTwo();
  h.launcher.Respond("a", "1");
  REQUIRE_FALSE(wa->destroyed);
  h.sched.Retire("hello", "");
  h.clock.Advance(0);
  CHECK(wa->destroyed);
  CHECK_FALSE(wb->destroyed);
  h.launcher.Respond("b", "2");
  CHECK(h.answers["b"].first.outcome == InvokeOutcome::kOk);
  CHECK(wb->destroyed);
  CHECK(wb->reuses == 0);
  h.clock.Advance(0);
  CHECK(h.launcher.last()->destroyed);
  CHECK(h.sched.stats().pools == 0);
}

TEST_CASE("reuse mode: a change of mode is a new revision; per-request pools never reuse") {
  Reuse h;
  h.Submit("a", proto::ExecutionMode::kPerRequest);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto c = h.launcher.Running("a");
  h.launcher.Respond("a", "1");
  CHECK(c->reuses == 0);
  h.launcher.FinishAll();
  CHECK(c->destroyed);
  auto per_request = h.launcher.last();
  h.Submit("b", proto::ExecutionMode::kReuse, proto::InvokeSource::kApi, "r2");
  h.clock.Advance(0);
  CHECK(per_request->destroyed);  // superseded
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("b", "1");
  CHECK(h.sched.stats().idle_workers == 1);
}

TEST_CASE("reuse mode: idle workers count against max_prefork_total") {
  SchedulerOptions o = Reuse::Options();
  o.max_prefork_total = 1;
  Reuse h(o);
  auto [wa, wb] = h.RunTwo();
  h.launcher.Respond("a", "1");
  h.launcher.Respond("b", "2");
  CHECK(h.sched.stats().idle_workers == 1);
  CHECK_FALSE(wa->destroyed);
  CHECK(wb->destroyed);
}

TEST_CASE("reuse mode: an async invocation is answered once its log batch is durable") {
  Reuse h;
  h.Submit("a", proto::ExecutionMode::kReuse, proto::InvokeSource::kAsync);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto w = h.launcher.Running("a");
  h.launcher.Respond("a", "1", false, "async line\n");
  CHECK_FALSE(h.answered("a"));
  REQUIRE(h.logs.held.size() == 1);
  CHECK(h.Messages(h.logs.batches.size() - 1).at(1) == "async line");
  CHECK(w->reuses == 1);  // the worker is free for the next invocation meanwhile
  h.logs.held[0]();
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].first.outcome == InvokeOutcome::kOk);
}

TEST_CASE("reuse mode: the template is not recycled by age; warm workers live on") {
  SchedulerOptions o = Reuse::Options();
  o.template_max_age_ms = 10000;
  o.idle_timeout_ms = 3600000;
  o.worker_idle_timeout_ms = 3600000;
  Reuse h(o);
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto w = h.launcher.Running("a");
  h.launcher.Respond("a", "1");
  h.clock.Advance(20000);
  h.Submit("b");
  REQUIRE(h.launcher.Running("b"));
  CHECK(h.launcher.Running("b")->pid == w->pid);
  h.launcher.Respond("b", "2");
  CHECK(h.sched.stats().templates_started == 1);
  CHECK_FALSE(h.launcher.last()->destroyed);
  CHECK_FALSE(w->destroyed);
}
