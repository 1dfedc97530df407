// The scheduler with real processes: SchedulerServer in this process on its own loop, real
// geysir-worker templates under cgroups, an InvokeClient over scheduler.sock, and a fake control
// (a FrameServer on control.sock) collecting log batches. Needs root and cgroups: skips
// otherwise, and fails under CI (tests/support/skip.h).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "proto/frame_channel.h"
#include "proto/invoke_client.h"
#include "scheduler/server.h"
#include "tests/support/loop.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

using namespace geysir;
using namespace geysir::scheduler;
using proto::InvokeOutcome;

namespace {

const char* kApp = R"PY(
import os, time, json

counter = 0

def hello(event, context):
    global counter
    counter += 1
    print("hello", event.get("who", "world"))
    return {"pid": os.getpid(), "uid": os.getuid(), "counter": counter,
            "rid": context.aws_request_id, "left": context.get_remaining_time_in_millis()}

def slow(event, context):
    time.sleep(event.get("s", 0.3))
    return {"pid": os.getpid()}

def hog(event, context):
    chunks = []
    for _ in range(4096):
        chunks.append(bytearray(1024 * 1024))
    return len(chunks)

def forkbomb(event, context):
    n = 0
    for _ in range(5000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    return {"forked": n}

def boom(event, context):
    raise ValueError("boom")

def exit3(event, context):
    os._exit(3)

def hello_or_exit(event, context):
    if event.get("exit"):
        os._exit(event["exit"])
    return hello(event, context)
)PY";

bool Usable(std::string* why) {
  if (geteuid() != 0) {
    *why = "needs root (cgroups, setuid)";
    return false;
  }
  std::string worker = std::string(GEYSIR_BINARY_DIR) + "/bin/geysir-worker";
  if (access(worker.c_str(), X_OK) != 0) {
    *why = "geysir-worker not built at " + worker;
    return false;
  }
  if (access("/usr/bin/python3.11", X_OK) != 0) {
    *why = "no /usr/bin/python3.11";
    return false;
  }
  auto driver = worker::CgroupDriver::Detect("geysir-schedtest");
  if (!driver.ok()) {
    *why = "no usable cgroups: " + driver.status().ToString();
    return false;
  }
  return true;
}

struct Reply {
  proto::InvokeResult result;
  std::string payload;
  nlohmann::json json() const { return nlohmann::json::parse(payload, nullptr, false); }
};

class Platform {
 public:
  explicit Platform(uint32_t pids_max = 64) {
    dir_.Write("code/app.py", kApp);
    dir_.Write("bad/app.py", "import no_such_module_here\n");

    uv_loop_init(&loop_);
    control_ = std::make_unique<proto::FrameServer>(&loop_, [this](std::shared_ptr<proto::FrameConnection> c) {
      conns_.push_back(c);
      c->Start(
          [this, c = c.get()](proto::Frame&& f) {
            if (f.type() != proto::kMsgLogs) return;
            auto batches = f.header.get<proto::LogBatches>().batches;
            for (auto& b : batches) logs.push_back(std::move(b));
            // Acknowledged as control does after its commit: the sink sends its next frame then.
            if (!logs.empty() && logs.back().seq != 0) {
              c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{logs.back().sender, logs.back().seq}));
            }
          },
          [](const Status&) {});
    });
    REQUIRE(control_->Listen(dir_ / "control.sock").ok());

    ServerOptions o;
    o.socket_path = dir_ / "scheduler.sock";
    o.control_socket_path = dir_ / "control.sock";
    o.cgroup_base = "geysir-schedtest";
    o.scheduler.prefork = 2;
    o.scheduler.function_concurrency = 8;
    o.scheduler.queue_depth = 8;
    o.launcher.worker_binary = std::string(GEYSIR_BINARY_DIR) + "/bin/geysir-worker";
    o.launcher.runtime_dir = std::string(GEYSIR_BINARY_DIR) + "/share/geysir/runtime";
    o.launcher.pids_max = pids_max;
    server_ = std::make_unique<SchedulerServer>(&loop_, o);
    REQUIRE(server_->Start().ok());
    client_ = std::make_unique<proto::InvokeClient>(&loop_, o.socket_path);
    client_->Start();
    RunUntil([&] { return client_->connected(); }, 5000);
    REQUIRE(client_->connected());
  }

  ~Platform() {
    client_->Close();
    bool stopped = false;
    server_->Shutdown([&] { stopped = true; });
    RunUntil([&] { return stopped; }, 20000);
    server_.reset();
    for (auto& c : conns_) c->Close();
    control_->Close();
    client_.reset();
    control_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);
  }

  proto::FunctionConfig Function(const std::string& handler, const std::string& name = "hello",
                                 const std::string& code = "code") {
    proto::FunctionConfig f;
    f.name = name;
    f.arn = "arn:aws:lambda:us-east-1:000000000000:function:" + name;
    f.revision_id = "rev-1";
    f.handler = handler;
    f.code_dir = dir_ / code;
    f.memory_mb = 128;
    f.timeout_s = 3;
    f.log_group = "/aws/lambda/" + name;
    return f;
  }

  // Starts an invocation; the reply lands in *out.
  void Start(const proto::FunctionConfig& f, const std::string& event, std::optional<Reply>* out, bool tail = false) {
    proto::InvokeRequest r;
    r.request_id = "req-" + std::to_string(++seq_);
    r.function = f;
    r.want_log_tail = tail;
    client_->Invoke(r, event, [out](proto::InvokeResult res, std::string payload) {
      *out = Reply{std::move(res), std::move(payload)};
    });
  }

  Reply Invoke(const proto::FunctionConfig& f, const std::string& event = "{}", bool tail = false) {
    std::optional<Reply> out;
    Start(f, event, &out, tail);
    RunUntil([&] { return out.has_value(); }, 20000);
    REQUIRE(out.has_value());
    return *out;
  }

  // Runs the platform's loop until `pred` holds or `ms` pass (the caller checks which).
  void RunUntil(const std::function<bool()>& pred, uint64_t ms) { (void)geysir::testing::RunUntil(&loop_, pred, ms); }

  const proto::LogBatch* LogsOf(const std::string& request_id) {
    for (auto& b : logs) {
      if (b.request_id == request_id) return &b;
    }
    return nullptr;
  }

  Scheduler* scheduler() { return server_->scheduler(); }
  std::vector<proto::LogBatch> logs;

 private:
  geysir::testing::TempDir dir_{"geysir-sched"};
  uv_loop_t loop_;
  std::unique_ptr<proto::FrameServer> control_;
  std::vector<std::shared_ptr<proto::FrameConnection>> conns_;
  std::unique_ptr<SchedulerServer> server_;
  std::unique_ptr<proto::InvokeClient> client_;
  uint64_t seq_ = 0;
};

}  // namespace

TEST_CASE("real: hello, warm reuse of the template, fresh process each time, logs to control") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.hello");
  Reply a = p.Invoke(f, R"({"who":"geysir"})", /*tail=*/true);
  REQUIRE(a.result.outcome == InvokeOutcome::kOk);
  auto ja = a.json();
  CHECK(ja["counter"] == 1);
  CHECK(ja["uid"].get<int>() >= 200000);
  // worker_pid is the child's pid on the host; the function sees its pid in the template's
  // PID namespace (the sandbox), where the template is 1 and the children come after it.
  CHECK(a.result.worker_pid > 0);
  CHECK(ja["pid"].get<int>() > 1);
  CHECK(ja["pid"] != a.result.worker_pid);
  CHECK(ja["rid"] == a.result.request_id);
  CHECK(ja["left"].get<int>() > 2000);
  CHECK(a.result.init_duration_ms.has_value());
  CHECK(a.result.memory_size_mb == 128);
  CHECK(a.result.billed_duration_ms >= 1);
  CHECK(a.result.log_tail.find("START RequestId: " + a.result.request_id + " Version: $LATEST\nhello geysir\nEND RequestId: ") !=
        std::string::npos);
  CHECK(a.result.log_tail.find("REPORT RequestId: " + a.result.request_id + "\tDuration: ") != std::string::npos);
  CHECK(a.result.log_tail.find("Init Duration: ") != std::string::npos);

  Reply b = p.Invoke(f);
  REQUIRE(b.result.outcome == InvokeOutcome::kOk);
  // A fresh child per request: module globals start from the template's state every time.
  CHECK(b.json()["counter"] == 1);
  CHECK(b.result.worker_pid != a.result.worker_pid);
  CHECK_FALSE(b.result.init_duration_ms.has_value());
  CHECK(p.scheduler()->stats().templates_started == 1);

  // Each invocation's batch is emitted when its child's output is drained, which can finish
  // after a later invocation's: wait for both, not for the later one alone.
  p.RunUntil([&] { return p.LogsOf(a.result.request_id) != nullptr && p.LogsOf(b.result.request_id) != nullptr; },
             3000);
  const proto::LogBatch* logs = p.LogsOf(a.result.request_id);
  REQUIRE(logs);
  REQUIRE(logs->events.size() == 4);
  CHECK(logs->events[0].message == "START RequestId: " + a.result.request_id + " Version: $LATEST");
  CHECK(logs->events[1].message == "hello geysir");
  CHECK(logs->events[2].message == "END RequestId: " + a.result.request_id);
  CHECK(logs->events[3].message.rfind("REPORT RequestId: " + a.result.request_id + "\tDuration: ", 0) == 0);
  CHECK(logs->function_name == "hello");
  CHECK(logs->log_stream.find("/[$LATEST]") != std::string::npos);
}

TEST_CASE("real: two concurrent invocations run in two processes") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.slow");
  std::optional<Reply> a, b;
  p.Start(f, R"({"s":0.5})", &a);
  p.Start(f, R"({"s":0.5})", &b);
  p.RunUntil([&] { return a && b; }, 20000);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a->result.outcome == InvokeOutcome::kOk);
  REQUIRE(b->result.outcome == InvokeOutcome::kOk);
  CHECK(a->result.worker_pid != b->result.worker_pid);
  CHECK(a->json()["pid"] != b->json()["pid"]);
}

TEST_CASE("real: timeout, handler error, exit status") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.slow");
  f.timeout_s = 1;
  auto t0 = std::chrono::steady_clock::now();
  Reply t = p.Invoke(f, R"({"s":10})");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < std::chrono::seconds(4));
  REQUIRE(t.result.outcome == InvokeOutcome::kTimeout);
  CHECK(t.json()["errorType"] == "Sandbox.Timedout");
  CHECK(t.json()["errorMessage"].get<std::string>().find("Task timed out after 1.0") != std::string::npos);

  Reply e = p.Invoke(p.Function("app.boom", "boom"));
  REQUIRE(e.result.outcome == InvokeOutcome::kUnhandled);
  CHECK(e.result.error_type == "ValueError");
  CHECK(e.json()["errorMessage"] == "boom");

  Reply x = p.Invoke(p.Function("app.exit3", "exit3"));
  REQUIRE(x.result.outcome == InvokeOutcome::kUnhandled);
  CHECK(x.result.error_type == "Runtime.ExitError");
  CHECK(x.json()["errorMessage"].get<std::string>().find("Runtime exited with error: exit status 3") != std::string::npos);
}

TEST_CASE("real: a memory hog is killed at its limit") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.hog", "hog");
  f.timeout_s = 10;
  Reply r = p.Invoke(f);
  REQUIRE(r.result.outcome == InvokeOutcome::kUnhandled);
  CHECK(r.result.error_type == "Runtime.OutOfMemory");
  CHECK(r.json()["errorMessage"].get<std::string>().find("Runtime exited with error: signal: killed") != std::string::npos);
  // The function still serves.
  Reply ok = p.Invoke(p.Function("app.hello", "hog2"));
  CHECK(ok.result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("real: a fork bomb stops at the pids limit and the platform keeps serving") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p(/*pids_max=*/32);
  auto f = p.Function("app.forkbomb", "bomb");
  f.timeout_s = 10;
  Reply r = p.Invoke(f);
  REQUIRE(r.result.outcome == InvokeOutcome::kOk);
  CHECK(r.json()["forked"].get<int>() < 32);
  Reply ok = p.Invoke(p.Function("app.hello"));
  CHECK(ok.result.outcome == InvokeOutcome::kOk);
}

TEST_CASE("real: an init error is reported and init is retried by the next request") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.handler", "broken", "bad");
  Reply a = p.Invoke(f);
  REQUIRE(a.result.outcome == InvokeOutcome::kUnhandled);
  CHECK(a.result.error_type == "Runtime.ImportModuleError");
  CHECK(a.json()["errorType"] == "Runtime.ImportModuleError");
  CHECK(a.result.init_duration_ms.has_value());
  Reply b = p.Invoke(f);
  CHECK(b.result.error_type == "Runtime.ImportModuleError");
  CHECK(p.scheduler()->stats().templates_started == 2);
}

TEST_CASE("real: reuse mode serves invocations on one warm process, its log per invocation without an exit") {
  std::string why;
  if (!Usable(&why)) GEYSIR_SKIP(why);
  Platform p;
  auto f = p.Function("app.hello_or_exit", "reuser");
  f.execution_mode = proto::ExecutionMode::kReuse;
  Reply a = p.Invoke(f, R"({"who":"one"})", /*tail=*/true);
  REQUIRE(a.result.outcome == InvokeOutcome::kOk);
  CHECK(a.result.init_duration_ms.has_value());
  Reply b = p.Invoke(f, R"({"who":"two"})", /*tail=*/true);
  REQUIRE(b.result.outcome == InvokeOutcome::kOk);
  CHECK(b.json()["counter"] == 2);
  CHECK(b.result.worker_pid == a.result.worker_pid);
  CHECK_FALSE(b.result.init_duration_ms.has_value());
  CHECK(b.result.log_tail.find("START RequestId: " + b.result.request_id + " Version: $LATEST\nhello two\nEND RequestId: ") !=
        std::string::npos);
  CHECK(b.result.log_tail.find("hello one") == std::string::npos);
  // Both batches are out with their answers: no wait for the worker's exit (it does not exit).
  REQUIRE(p.LogsOf(a.result.request_id) != nullptr);
  REQUIRE(p.LogsOf(b.result.request_id) != nullptr);
  CHECK(p.scheduler()->stats().idle_workers == 1);
  CHECK(p.scheduler()->stats().ran_on_warm_worker == 1);

  // A crash replaces the worker: the next invocation runs in a fresh one.
  Reply x = p.Invoke(f, R"({"exit":3})");
  CHECK(x.result.error_type == "Runtime.ExitError");
  Reply c = p.Invoke(f);
  REQUIRE(c.result.outcome == InvokeOutcome::kOk);
  CHECK(c.json()["counter"] == 1);
  CHECK(c.result.worker_pid != a.result.worker_pid);
}
