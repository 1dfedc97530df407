// Pool logic with fakes: admission, queueing, throttling, deadlines, idle eviction with an
// injected clock, revision supersede, template crashes, init errors, logs.
#include "scheduler/scheduler.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/unit/scheduler/fakes.h"

using namespace geysir;
using namespace geysir::scheduler;
using namespace geysir::scheduler::testing;
using proto::InvokeOutcome;

namespace {

struct Answer {
  proto::InvokeResult result;
  std::string payload;
};

struct Harness {
  explicit Harness(SchedulerOptions o = Options()) : sched(o, &clock, &launcher, &logs) {}
  static SchedulerOptions Options() {
    SchedulerOptions o;
    o.prefork = 2;
    o.function_concurrency = 4;
    o.queue_depth = 2;
    o.idle_timeout_ms = 60000;
    return o;
  }
  proto::InvokeRequest Request(const std::string& rid, const std::string& fn = "hello", const std::string& rev = "r1") {
    proto::InvokeRequest r;
    r.id = ++next_id;
    r.request_id = rid;
    r.function.name = fn;
    r.function.revision_id = rev;
    r.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:" + fn;
    r.function.handler = "app.handler";
    r.function.timeout_s = 3;
    r.function.memory_mb = 128;
    return r;
  }
  void Submit(proto::InvokeRequest r, std::string event = "{}") {
    std::string rid = r.request_id;
    sched.Submit(std::move(r), std::move(event), [this, rid](proto::InvokeResult res, std::string payload) {
      REQUIRE(answers.count(rid) == 0);  // exactly once
      answers[rid] = Answer{std::move(res), std::move(payload)};
    });
  }
  void Submit(const std::string& rid, const std::string& fn = "hello", const std::string& rev = "r1") {
    Submit(Request(rid, fn, rev));
  }
  bool answered(const std::string& rid) const { return answers.count(rid) > 0; }

  FakeClock clock;
  FakeLauncher launcher;
  VectorLogSink logs;
  Scheduler sched;
  std::map<std::string, Answer> answers;
  uint64_t next_id = 0;
};

std::vector<std::string> Messages(const proto::LogBatch& b) {
  std::vector<std::string> m;
  for (auto& e : b.events) m.push_back(e.message);
  return m;
}

}  // namespace

TEST_CASE("cold start, then warm invocations on pre-forked children") {
  Harness h;
  h.Submit("a");
  REQUIRE(h.launcher.templates.size() == 1);
  auto tpl = h.launcher.last();
  CHECK(tpl->request.uid == 200000);
  CHECK_FALSE(h.answered("a"));

  h.launcher.Ready(85.2, "init line\n");
  CHECK(tpl->pending_forks == 3);  // 1 waiting + 2 pre-forked
  REQUIRE(h.launcher.DeliverForks() == 3);
  auto child = h.launcher.Running("a");
  REQUIRE(child);
  CHECK(child->event == "{}");
  CHECK(child->invoke.deadline_ms == h.clock.WallMs() + 3000);
  CHECK(child->invoke.function_arn == "arn:aws:lambda:us-east-1:000000000000:function:hello");

  h.clock.AdvanceNs(1230000);  // 1.23 ms
  h.launcher.Respond("a", "\"hi\"", false, "hello from a\n");
  REQUIRE(h.answered("a"));
  auto& a = h.answers["a"];
  CHECK(a.result.outcome == InvokeOutcome::kOk);
  CHECK(a.payload == "\"hi\"");
  CHECK(a.result.init_duration_ms == Approx(85.2));
  CHECK(a.result.duration_ms == Approx(1.23));
  CHECK(a.result.billed_duration_ms == 2);
  CHECK(a.result.memory_size_mb == 128);
  CHECK(a.result.max_memory_used_mb == 12);
  CHECK(a.result.worker_pid == child->pid);
  CHECK(a.result.id == 1);

  // Logs go out once the child is cleaned up: init log first, then START..REPORT.
  REQUIRE(h.logs.batches.size() == 1);
  CHECK(h.logs.batches[0].request_id.empty());
  CHECK(Messages(h.logs.batches[0]) == std::vector<std::string>{"init line"});
  child->late_log = "late line\n";
  REQUIRE(h.launcher.FinishAll() == 1);
  CHECK(child->destroyed);
  REQUIRE(h.logs.batches.size() == 2);
  auto m = Messages(h.logs.batches[1]);
  REQUIRE(m.size() == 5);
  CHECK(m[0] == "START RequestId: a Version: $LATEST");
  CHECK(m[1] == "hello from a");
  CHECK(m[2] == "late line");
  CHECK(m[3] == "END RequestId: a");
  CHECK(m[4] ==
        "REPORT RequestId: a\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 12 MB\t"
        "Init Duration: 85.20 ms\t");
  CHECK(h.logs.batches[1].log_stream.find("/[$LATEST]" + tpl->request.template_id) != std::string::npos);

  // Warm: a ready child is used at once, no init duration, and one fork replaces it.
  CHECK(h.sched.stats().ready_children == 2);
  h.Submit("b");
  REQUIRE(h.launcher.Running("b"));
  CHECK(h.launcher.Running("b")->pid != child->pid);
  CHECK(tpl->pending_forks == 1);
  h.launcher.Respond("b", "2");
  CHECK_FALSE(h.answers["b"].result.init_duration_ms.has_value());
  CHECK(h.sched.stats().templates_started == 1);
}

TEST_CASE("two concurrent invocations run on different children") {
  Harness h;
  h.Submit("a");
  h.Submit("b");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto ca = h.launcher.Running("a");
  auto cb = h.launcher.Running("b");
  REQUIRE(ca);
  REQUIRE(cb);
  CHECK(ca->pid != cb->pid);
  h.launcher.Respond("b", "1");
  h.launcher.Respond("a", "1");
  CHECK(h.answers["a"].result.worker_pid != h.answers["b"].result.worker_pid);
  // Only the first to run reports the cold start.
  CHECK(h.answers["a"].result.init_duration_ms.has_value());
  CHECK_FALSE(h.answers["b"].result.init_duration_ms.has_value());
}

TEST_CASE("concurrency limit, bounded queue, throttling") {
  Harness h;  // limit 4, queue 2
  h.Submit("w");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  for (int i = 1; i < 4; ++i) h.Submit("r" + std::to_string(i));
  h.launcher.DeliverForks();
  h.Submit("q1");
  h.Submit("q2");
  h.Submit("t1");
  REQUIRE(h.answered("t1"));
  CHECK(h.answers["t1"].result.outcome == InvokeOutcome::kThrottled);
  CHECK(nlohmann::json::parse(h.answers["t1"].payload) == nlohmann::json{{"message", "Rate exceeded"}});
  CHECK(h.sched.stats().throttled == 1);
  CHECK_FALSE(h.launcher.Running("q1"));
  // A slot frees: the oldest queued request runs, FIFO.
  h.launcher.Respond("r2", "1");
  h.launcher.DeliverForks();
  CHECK(h.launcher.Running("q1"));
  CHECK_FALSE(h.launcher.Running("q2"));
  h.launcher.Respond("w", "1");
  h.launcher.DeliverForks();
  CHECK(h.launcher.Running("q2"));
}

TEST_CASE("reserved concurrency is a hard cap (throttled at once); zero throttles everything") {
  Harness h;
  auto r = h.Request("a");
  r.function.reserved_concurrency = 1;
  h.Submit(r);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto r2 = h.Request("b");
  r2.function.reserved_concurrency = 1;
  h.Submit(r2);
  // As on Lambda: above the reservation an invocation is refused, not queued.
  REQUIRE(h.answered("b"));
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kThrottled);
  h.launcher.Respond("a", "1");
  h.launcher.DeliverForks();
  auto r3 = h.Request("c");
  r3.function.reserved_concurrency = 1;
  h.Submit(r3);
  CHECK(h.launcher.Running("c"));
  // The limit follows the newest request (PutFunctionConcurrency changes no revision): with the
  // reservation removed, a second concurrent one runs on the same template.
  h.Submit("d");
  h.launcher.DeliverForks();
  CHECK(h.launcher.Running("d"));
  CHECK(h.launcher.templates.size() == 1);

  auto z = h.Request("z", "disabled");
  z.function.reserved_concurrency = 0;
  h.Submit(z);
  REQUIRE(h.answered("z"));
  CHECK(h.answers["z"].result.outcome == InvokeOutcome::kThrottled);
}

TEST_CASE("published versions keep pools of their own: no supersede across versions") {
  Harness h;
  h.Submit("a", "hello", "r-latest");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto latest = h.launcher.last();
  h.launcher.Respond("a", "1");
  auto v1 = h.Request("b", "hello", "r-v1");
  v1.function.version = "1";
  h.Submit(v1);
  h.clock.Advance(0);
  CHECK(h.launcher.templates.size() == 2);
  CHECK_FALSE(latest->destroyed);  // $LATEST's template stays warm
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("b", "1");
  CHECK(h.answers["b"].result.executed_version == "1");
  h.Submit("c", "hello", "r-latest");
  CHECK(h.launcher.Running("c"));  // a ready child of the first template
  CHECK(h.launcher.templates.size() == 2);
  // The invocation batches say how each one ended (CloudWatch metrics are counted from them).
  h.launcher.FinishAll();
  bool saw_ok = false;
  for (const auto& b : h.logs.batches) {
    if (b.request_id == "a") saw_ok = b.outcome == "ok" && b.duration_ms >= 0;
    if (b.request_id.empty()) CHECK(b.outcome.empty());
  }
  CHECK(saw_ok);
}

TEST_CASE("a queued request times out at its deadline") {
  SchedulerOptions o = Harness::Options();
  o.function_concurrency = 1;
  Harness h(o);
  auto ra = h.Request("a");
  ra.function.timeout_s = 30;
  h.Submit(ra);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.Submit("b");
  h.clock.Advance(2999);
  CHECK_FALSE(h.answered("b"));
  h.clock.Advance(1);
  REQUIRE(h.answered("b"));
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kTimeout);
  auto body = nlohmann::json::parse(h.answers["b"].payload);
  CHECK(body["errorType"] == "Sandbox.Timedout");
  CHECK_FALSE(h.answered("a"));
  h.launcher.Respond("a", "1");
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("a running invocation is killed at its timeout") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready(10);
  h.launcher.DeliverForks();
  auto c = h.launcher.Running("a");
  REQUIRE(c);
  c->log = "working...\n";
  h.clock.Advance(3000);
  REQUIRE(h.answered("a"));
  CHECK(c->killed);
  auto& a = h.answers["a"];
  CHECK(a.result.outcome == InvokeOutcome::kTimeout);
  CHECK(a.result.error_type == "Sandbox.Timedout");
  auto body = nlohmann::json::parse(a.payload);
  CHECK(body["errorType"] == "Sandbox.Timedout");
  const std::string msg = body["errorMessage"];
  CHECK(msg.find(" a Task timed out after 3.00 seconds") != std::string::npos);
  CHECK(msg.rfind("2026-", 0) == 0);
  CHECK(a.result.duration_ms == Approx(3000));
  h.launcher.FinishAll();
  auto m = Messages(h.logs.batches.back());
  REQUIRE(m.size() == 5);
  CHECK(m[1] == "working...");
  CHECK(m[2] == "END RequestId: a");
  CHECK(m[3].rfind("REPORT RequestId: a\tDuration: 3000.00 ms\tBilled Duration: 3000 ms", 0) == 0);
  CHECK(m[4] == msg);
  // The slot is free again.
  h.Submit("b");
  CHECK(h.launcher.Running("b"));
}

TEST_CASE("a child that dies: out of memory vs exit error") {
  Harness h;
  h.Submit("oom");
  h.Submit("exit");
  h.Submit("sig");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Die("oom", -1, 9, true);
  h.launcher.Die("exit", 1, 0, false);
  h.launcher.Die("sig", -1, 11, false);
  auto oom = nlohmann::json::parse(h.answers["oom"].payload);
  CHECK(h.answers["oom"].result.outcome == InvokeOutcome::kUnhandled);
  CHECK(h.answers["oom"].result.error_type == "Runtime.OutOfMemory");
  CHECK(oom["errorType"] == "Runtime.OutOfMemory");
  CHECK(oom["errorMessage"] == "RequestId: oom Error: Runtime exited with error: signal: killed");
  auto ex = nlohmann::json::parse(h.answers["exit"].payload);
  CHECK(ex["errorType"] == "Runtime.ExitError");
  CHECK(ex["errorMessage"] == "RequestId: exit Error: Runtime exited with error: exit status 1");
  auto sg = nlohmann::json::parse(h.answers["sig"].payload);
  CHECK(sg["errorMessage"] == "RequestId: sig Error: Runtime exited with error: signal: segmentation fault");
}

TEST_CASE("handler errors pass the error object through") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  const std::string err = R"({"errorMessage":"boom","errorType":"ValueError","stackTrace":[]})";
  h.launcher.Respond("a", err, true);
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kUnhandled);
  CHECK(h.answers["a"].result.error_type == "ValueError");
  CHECK(h.answers["a"].payload == err);
}

TEST_CASE("an init error fails the waiting invocations and the next request re-runs init") {
  Harness h;
  h.Submit("a");
  h.Submit("b");
  const std::string err = R"({"errorMessage":"Unable to import module 'app': No module named 'nope'","errorType":"Runtime.ImportModuleError","stackTrace":[]})";
  h.launcher.InitError(err, 12.5);
  REQUIRE(h.answered("a"));
  REQUIRE(h.answered("b"));
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kUnhandled);
  CHECK(h.answers["a"].result.error_type == "Runtime.ImportModuleError");
  CHECK(h.answers["a"].payload == err);
  CHECK(h.answers["a"].result.init_duration_ms == Approx(12.5));
  CHECK(h.launcher.live_templates() == 0);
  h.Submit("c");
  CHECK(h.launcher.templates.size() == 2);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("c", "1");
  CHECK(h.answers["c"].result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("idle pools are stopped and rebuilt on the next request") {
  Harness h;  // idle timeout 60 s
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("a", "1");
  h.launcher.FinishAll();
  h.launcher.DeliverForks();
  CHECK(h.sched.stats().ready_children == 2);
  h.clock.Advance(30000);
  h.Submit("b");  // used again: the idle clock restarts
  h.launcher.Respond("b", "1");
  h.launcher.FinishAll();
  h.launcher.DeliverForks();
  h.clock.Advance(59000);
  CHECK(h.launcher.live_templates() == 1);
  h.clock.Advance(1000);
  CHECK(h.launcher.live_templates() == 0);
  CHECK(h.launcher.live_children() == 0);
  CHECK(h.sched.stats().pools == 0);
  h.Submit("c");
  CHECK(h.launcher.templates.size() == 2);
  h.launcher.Ready(50);
  h.launcher.DeliverForks();
  h.launcher.Respond("c", "1");
  CHECK(h.answers["c"].result.init_duration_ms == Approx(50));
  // The uid of a function never changes.
  CHECK(h.launcher.templates[0]->request.uid == h.launcher.templates[1]->request.uid);
}

TEST_CASE("a newer revision supersedes the pool, which drains and is reaped") {
  Harness h;
  h.Submit("a", "hello", "r1");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto t1 = h.launcher.last();
  REQUIRE(h.launcher.Running("a"));
  h.Submit("b", "hello", "r2");
  h.clock.Advance(0);
  CHECK(h.launcher.templates.size() == 2);
  CHECK_FALSE(t1->destroyed);  // still serving "a"
  h.launcher.Ready();
  h.launcher.DeliverForks();
  REQUIRE(h.launcher.Running("b"));
  h.launcher.Respond("a", "1");
  h.clock.Advance(0);
  CHECK(t1->destroyed);
  CHECK(h.sched.stats().pools == 1);
  // Same function, same uid, across revisions; other functions differ.
  CHECK(h.launcher.templates[1]->request.uid == t1->request.uid);
  h.Submit("x", "other", "r1");
  CHECK(h.launcher.last()->request.uid == t1->request.uid + 1);
}

TEST_CASE("a template crash during start-up is retried once, then fails") {
  Harness h;
  h.Submit("a");
  h.launcher.Crash();
  CHECK_FALSE(h.answered("a"));
  REQUIRE(h.launcher.templates.size() == 2);
  h.launcher.Crash();
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kInternal);
  CHECK(h.answers["a"].payload.find("sandbox failed") != std::string::npos);
  // The next request rebuilds the pool.
  h.Submit("b");
  CHECK(h.launcher.templates.size() == 3);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("b", "1");
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("a crash of a ready template keeps running invocations and rebuilds for the next") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Crash();
  CHECK(h.sched.stats().ready_children == 0);
  h.launcher.Respond("a", "1");
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kOk);
  h.Submit("b");
  CHECK(h.launcher.templates.size() == 2);
}

TEST_CASE("a launch failure answers kInternal") {
  Harness h;
  h.launcher.fail_start = true;
  h.Submit("a");
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kInternal);
  h.launcher.fail_start = false;
  h.Submit("b");
  CHECK(h.launcher.templates.size() == 1);
}

TEST_CASE("a fork failure fails one waiter instead of hanging it") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.FailForks();
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kInternal);
}

TEST_CASE("a child found dead at hand-over is replaced transparently") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("a", "1");
  for (auto& c : h.launcher.children) {
    if (!c->invoked) c->alive = false;  // both pre-forked children died while idle
  }
  h.Submit("b");
  CHECK_FALSE(h.launcher.Running("b"));
  h.launcher.DeliverForks();
  REQUIRE(h.launcher.Running("b"));
  // never_started: the invoke could not even be written; another child takes it.
  auto c = h.launcher.Running("b");
  c->reported = true;
  ChildReport r;
  r.never_started = true;
  auto cb = std::move(c->on_report);
  cb(r);
  CHECK_FALSE(h.answered("b"));
  h.launcher.DeliverForks();
  h.launcher.Respond("b", "1");
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("log tail holds START..REPORT when asked") {
  Harness h;
  auto r = h.Request("a");
  r.want_log_tail = true;
  h.Submit(r);
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.launcher.Respond("a", "1", false, std::string(5000, 'x') + "\nlast\n");
  const std::string& tail = h.answers["a"].result.log_tail;
  CHECK(tail.size() <= 4096);
  CHECK(tail.find("last\nEND RequestId: a\nREPORT RequestId: a\t") != std::string::npos);
  h.Submit("b");
  h.launcher.Respond("b", "1");
  CHECK(h.answers["b"].result.log_tail.empty());
}

TEST_CASE("pre-forking follows recent concurrency") {
  SchedulerOptions o = Harness::Options();
  o.function_concurrency = 16;
  o.queue_depth = 16;
  Harness h(o);
  for (int i = 0; i < 8; ++i) h.Submit("a" + std::to_string(i));
  h.launcher.Ready();
  h.launcher.DeliverForks();
  for (int i = 0; i < 8; ++i) h.launcher.Respond("a" + std::to_string(i), "1");
  h.launcher.DeliverForks();
  CHECK(h.sched.stats().ready_children == 8);
  // A burst of 8 now finds 8 ready children: no fork on the critical path.
  for (int i = 0; i < 8; ++i) {
    h.Submit("b" + std::to_string(i));
    CHECK(h.launcher.Running("b" + std::to_string(i)));
  }
}

TEST_CASE("shutdown refuses new work, finishes accepted work, stops templates") {
  Harness h;
  h.Submit("a");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  bool drained = false;
  h.sched.Shutdown([&] { drained = true; });
  h.Submit("late");
  REQUIRE(h.answered("late"));
  CHECK(h.answers["late"].result.outcome == InvokeOutcome::kInternal);
  h.clock.Advance(0);
  CHECK_FALSE(drained);
  CHECK(h.launcher.live_templates() == 1);
  h.launcher.Respond("a", "1");
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kOk);
  h.launcher.FinishAll();
  h.clock.Advance(0);
  CHECK(drained);
  CHECK(h.launcher.live_templates() == 0);
  CHECK(h.launcher.live_children() == 0);
}

TEST_CASE("an init that never finishes is bounded") {
  Harness h;
  auto r = h.Request("a");
  r.function.timeout_s = 30;
  h.Submit(r);
  h.clock.Advance(10000);
  CHECK(h.launcher.templates[0]->destroyed);
  // Retried once on a fresh template, which hangs too.
  h.clock.Advance(10000);
  REQUIRE(h.answered("a"));
  CHECK(h.answers["a"].result.outcome == InvokeOutcome::kInternal);
}

TEST_CASE("a template is recycled after N children or T ms; the old one finishes its running invocations") {
  SchedulerOptions o = Harness::Options();
  o.prefork = 1;
  o.template_max_children = 3;
  o.template_max_age_ms = 0;
  Harness h(o);
  h.Submit("a");
  h.launcher.Ready();
  REQUIRE(h.launcher.DeliverForks() == 2);  // one for "a", one ahead
  auto first = h.launcher.last();
  h.Submit("b");                            // the child ahead; its replacement is fork no. 3+
  REQUIRE(h.launcher.Running("b"));
  CHECK(first->pending_forks >= 1);
  h.launcher.Respond("a", "1");
  // Three forks reached: a new template starts at once; the old one still runs "b".
  REQUIRE(h.launcher.templates.size() == 2);
  auto second = h.launcher.last();
  CHECK(second != first);
  CHECK_FALSE(first->destroyed);
  CHECK(h.sched.stats().ready_children == 0);  // the old template's idle children are dropped
  // A fork the old template completes late is not handed out.
  h.launcher.DeliverForks();
  CHECK(h.sched.stats().ready_children == 0);
  h.launcher.Respond("b", "2");
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kOk);
  CHECK(first->destroyed);  // nothing of it runs any more
  CHECK_FALSE(second->destroyed);
  // The next invocation runs on the new template, with its init reported.
  h.Submit("c");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  REQUIRE(h.launcher.Running("c"));
  h.launcher.Respond("c", "3");
  CHECK(h.answers["c"].result.init_duration_ms.has_value());
  // (With a bound of 3 the new template's own pre-forks soon make it due again.)
  CHECK(h.sched.stats().templates_started >= 2);

  SECTION("and by age") {
    SchedulerOptions a = Harness::Options();
    a.template_max_children = 0;
    a.template_max_age_ms = 60000;
    a.idle_timeout_ms = 3600000;
    Harness g(a);
    g.Submit("x");
    g.launcher.Ready();
    g.launcher.DeliverForks();
    g.launcher.Respond("x", "1");
    CHECK(g.launcher.templates.size() == 1);
    g.clock.Advance(61000);
    g.Submit("y");  // runs on a ready child of the old template, which is then replaced
    REQUIRE(g.launcher.Running("y"));
    CHECK(g.launcher.templates.size() == 2);
    g.launcher.Respond("y", "2");
    CHECK(g.launcher.templates[0]->destroyed);
  }
}

TEST_CASE("retire (DeleteFunction, a replaced revision) stops idle pools at once, busy ones after their invocations") {
  Harness h;
  h.Submit("a", "hello", "r1");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto hello = h.launcher.last();
  REQUIRE(h.launcher.Running("a"));
  h.Submit("x", "other", "r1");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  auto other = h.launcher.last();
  h.launcher.Respond("x", "1");
  h.launcher.FinishAll();
  h.launcher.DeliverForks();
  REQUIRE(h.sched.stats().ready_children == 4);  // two pre-forked in each pool

  // "other" was deleted: idle, it stops now, not at the 60 s idle timeout.
  h.sched.Retire("other", "");
  h.clock.Advance(0);
  CHECK(other->destroyed);
  CHECK(h.sched.stats().pools == 1);
  // "hello" r1 was replaced: its idle children go now, its template once "a" is answered.
  h.sched.Retire("hello", "r1");
  h.clock.Advance(0);
  CHECK_FALSE(hello->destroyed);
  CHECK(h.sched.stats().ready_children == 0);
  h.launcher.Respond("a", "1");
  h.launcher.FinishAll();
  h.clock.Advance(0);
  CHECK(hello->destroyed);
  CHECK(h.sched.stats().pools == 0);
  CHECK(h.launcher.live_children() == 0);
  // Another revision, or an unknown function: nothing happens.
  h.sched.Retire("nobody", "");
  h.Submit("b", "hello", "r2");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  h.sched.Retire("hello", "r1");
  h.clock.Advance(0);
  CHECK_FALSE(h.launcher.last()->destroyed);
  h.launcher.Respond("b", "1");
  CHECK(h.answers["b"].result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("pools beyond max_pools evict the least recently used idle pool; all busy: throttled") {
  SchedulerOptions o = Harness::Options();
  o.max_pools = 2;
  Harness h(o);
  auto serve = [&](const std::string& rid, const std::string& fn) {
    h.Submit(rid, fn);
    if (!h.launcher.last()->ready) h.launcher.Ready();
    h.launcher.DeliverForks();
    h.launcher.Respond(rid, "1");
    h.launcher.FinishAll();
    h.launcher.DeliverForks();
  };
  serve("a", "f1");
  auto f1 = h.launcher.last();
  h.clock.Advance(10);
  serve("b", "f2");
  auto f2 = h.launcher.last();
  h.clock.Advance(10);
  serve("a2", "f1");  // f1 used last: f2 is now the least recently used
  h.clock.Advance(10);
  serve("c", "f3");
  CHECK(f2->destroyed);
  CHECK_FALSE(f1->destroyed);
  CHECK(h.sched.stats().pools == 2);
  CHECK(h.sched.stats().pools_evicted == 1);
  // Both pools busy: a third function cannot get one.
  h.Submit("busy1", "f1");
  h.Submit("busy3", "f3");
  h.launcher.DeliverForks();
  REQUIRE(h.launcher.Running("busy1"));
  h.Submit("d", "f4");
  REQUIRE(h.answered("d"));
  CHECK(h.answers["d"].result.outcome == InvokeOutcome::kThrottled);
  CHECK(h.sched.stats().pools == 2);
}

TEST_CASE("pre-forked children are capped in total across pools") {
  SchedulerOptions o = Harness::Options();
  o.prefork = 2;
  o.max_prefork_total = 3;
  Harness h(o);
  for (const char* fn : {"f1", "f2", "f3"}) {
    const std::string rid = std::string("r-") + fn;
    h.Submit(rid, fn);
    h.launcher.Ready();
    h.launcher.DeliverForks();
    h.launcher.Respond(rid, "1");
    h.launcher.FinishAll();
    h.launcher.DeliverForks();
  }
  CHECK(h.sched.stats().ready_children == 3);
  // A waiting invocation still gets its child beyond the cap.
  h.Submit("w", "f4");
  h.launcher.Ready();
  h.launcher.DeliverForks();
  REQUIRE(h.launcher.Running("w"));
}
