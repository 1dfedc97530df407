// InvokeClient against a fake scheduler (a FrameServer in the test) on a real Unix socket.
#include "proto/invoke_client.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "proto/frame_channel.h"
#include "proto/invoke_refs.h"
#include "proto/messages.h"
#include "tests/support/loop.h"
#include "tests/support/temp_dir.h"

using geysir::proto::Frame;
using geysir::proto::FrameConnection;
using geysir::proto::FrameServer;
using geysir::proto::InvokeRefTable;
using geysir::proto::InvokeClient;
using geysir::proto::InvokeOutcome;
using geysir::proto::InvokeRequest;
using geysir::proto::InvokeResult;
using geysir::testing::RunUntil;
using geysir::testing::TempDir;

namespace {

// Collects invoke frames; the test decides when and how to answer.
struct FakeScheduler {
  explicit FakeScheduler(uv_loop_t* loop)
      : server(loop, [this](std::shared_ptr<FrameConnection> c) {
          conn = c;
          c->Start([this](Frame&& f) { invokes.push_back(std::move(f)); }, [](const geysir::Status&) {});
        }) {}

  void Answer(const Frame& invoke, std::string body, InvokeOutcome outcome = InvokeOutcome::kOk) {
    InvokeResult r;
    r.id = invoke.header.at("id").get<uint64_t>();
    r.request_id = invoke.header.value("request_id", "");
    r.outcome = outcome;
    r.worker_pid = 4242;
    conn->Send(geysir::proto::MakeFrame(geysir::proto::kMsgResult, r, std::move(body)));
  }

  FrameServer server;
  std::shared_ptr<FrameConnection> conn;
  std::vector<Frame> invokes;
};

struct Outcome {
  bool called = false;
  int calls = 0;
  InvokeResult result;
  std::string payload;
};

InvokeClient::Callback Record(Outcome& o) {
  return [&o](InvokeResult r, std::string payload) {
    o.called = true;
    ++o.calls;
    o.result = std::move(r);
    o.payload = std::move(payload);
  };
}

InvokeRequest Request(const std::string& request_id) {
  InvokeRequest r;
  r.request_id = request_id;
  r.function.name = "hello";
  r.function.handler = "app.handler";
  r.source = geysir::proto::InvokeSource::kFunctionUrl;
  return r;
}

void CloseLoop(uv_loop_t* loop) {
  for (int i = 0; i < 100 && uv_loop_alive(loop); ++i) uv_run(loop, UV_RUN_NOWAIT);
  CHECK(uv_loop_close(loop) == 0);
}

}  // namespace

TEST_CASE("InvokeClient multiplexes invocations and matches results by id", "[invoke_client]") {
  TempDir dir;
  const std::string path = dir.path() + "/scheduler.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler sched(&loop);
    REQUIRE(sched.server.Listen(path).ok());
    InvokeClient client(&loop, path);
    client.Start();
    REQUIRE(RunUntil(&loop, [&] { return client.connected(); }));

    Outcome a, b, c;
    client.Invoke(Request("req-a"), R"({"n":1})", Record(a));
    client.Invoke(Request("req-b"), R"({"n":2})", Record(b));
    client.Invoke(Request("req-c"), R"({"n":3})", Record(c));
    CHECK(client.pending() == 3);
    REQUIRE(RunUntil(&loop, [&] { return sched.invokes.size() == 3; }));
    std::set<uint64_t> ids;
    InvokeRefTable table;  // the scheduler's, for this connection
    for (const auto& f : sched.invokes) {
      CHECK(f.type() == "invoke");
      ids.insert(f.header.at("id").get<uint64_t>());
      auto req = table.Decode(f.header);
      REQUIRE(req.ok());
      CHECK(req->function.handler == "app.handler");
    }
    // The config went whole once; the next two name it.
    CHECK(sched.invokes[0].header.contains("function"));
    CHECK_FALSE(sched.invokes[1].header.contains("function"));
    CHECK(sched.invokes[2].header.at("function_ref") == sched.invokes[0].header.at("function_ref"));
    CHECK(ids.size() == 3);
    CHECK(sched.invokes[1].body == R"({"n":2})");
    // Answered out of order.
    sched.Answer(sched.invokes[2], "\"C\"");
    sched.Answer(sched.invokes[0], "\"A\"");
    sched.Answer(sched.invokes[1], R"({"errorMessage":"boom"})", InvokeOutcome::kUnhandled);
    REQUIRE(RunUntil(&loop, [&] { return a.called && b.called && c.called; }));
    CHECK(a.payload == "\"A\"");
    CHECK(a.result.request_id == "req-a");
    CHECK(a.result.outcome == InvokeOutcome::kOk);
    CHECK(a.result.worker_pid == 4242);
    CHECK(b.result.outcome == InvokeOutcome::kUnhandled);
    CHECK(b.payload == R"({"errorMessage":"boom"})");
    CHECK(c.payload == "\"C\"");
    CHECK(client.pending() == 0);
    client.Close();
    CHECK(a.calls == 1);
    CHECK(b.calls == 1);
    CHECK(c.calls == 1);
    sched.server.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("InvokeClient fails at once when the scheduler is not connected", "[invoke_client]") {
  TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    InvokeClient client(&loop, dir.path() + "/nobody.sock");
    client.Start();
    Outcome o;
    client.Invoke(Request("req-x"), "{}", Record(o));
    REQUIRE(o.called);  // synchronously
    CHECK(o.result.outcome == InvokeOutcome::kUnavailable);
    CHECK(o.result.request_id == "req-x");
    auto body = nlohmann::json::parse(o.payload);
    CHECK(body["message"].get<std::string>().rfind("scheduler unavailable: ", 0) == 0);
    CHECK(client.pending() == 0);
    client.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("InvokeClient fails pending invocations when the scheduler goes away", "[invoke_client]") {
  TempDir dir;
  const std::string path = dir.path() + "/scheduler.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto sched = std::make_unique<FakeScheduler>(&loop);
    REQUIRE(sched->server.Listen(path).ok());
    InvokeClient client(&loop, path);
    client.Start();
    REQUIRE(RunUntil(&loop, [&] { return client.connected(); }));
    Outcome a, b;
    client.Invoke(Request("req-a"), "{}", Record(a));
    client.Invoke(Request("req-b"), "{}", Record(b));
    REQUIRE(RunUntil(&loop, [&] { return sched->invokes.size() == 2; }));
    CHECK_FALSE(a.called);

    sched->server.Close();  // the scheduler crashes with both in flight
    sched.reset();
    REQUIRE(RunUntil(&loop, [&] { return a.called && b.called; }));
    for (Outcome* o : {&a, &b}) {
      CHECK(o->calls == 1);
      CHECK(o->result.outcome == InvokeOutcome::kUnavailable);
      CHECK(nlohmann::json::parse(o->payload)["message"].get<std::string>().rfind("scheduler unavailable: ", 0) == 0);
    }
    CHECK(a.result.request_id == "req-a");
    CHECK(client.pending() == 0);
    CHECK_FALSE(client.connected());

    // The scheduler comes back; the client reconnects and serves again.
    sched = std::make_unique<FakeScheduler>(&loop);
    REQUIRE(sched->server.Listen(path).ok());
    REQUIRE(RunUntil(&loop, [&] { return client.connected(); }, 4000));
    Outcome c;
    client.Invoke(Request("req-c"), "{}", Record(c));
    REQUIRE(RunUntil(&loop, [&] { return sched->invokes.size() == 1; }));
    sched->Answer(sched->invokes[0], "1");
    REQUIRE(RunUntil(&loop, [&] { return c.called; }));
    CHECK(c.result.outcome == InvokeOutcome::kOk);
    CHECK(c.payload == "1");

    // Close() fails whatever is still pending.
    Outcome d;
    client.Invoke(Request("req-d"), "{}", Record(d));
    client.Close();
    CHECK(d.calls == 1);
    CHECK(d.result.outcome == InvokeOutcome::kUnavailable);
    sched->server.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("InvokeClient ends an invocation whose result header is malformed", "[invoke_client]") {
  TempDir dir;
  const std::string path = dir.path() + "/scheduler.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler sched(&loop);
    REQUIRE(sched.server.Listen(path).ok());
    InvokeClient client(&loop, path);
    client.Start();
    REQUIRE(RunUntil(&loop, [&] { return client.connected(); }));
    Outcome a;
    client.Invoke(Request("req-a"), "{}", Record(a));
    REQUIRE(RunUntil(&loop, [&] { return sched.invokes.size() == 1; }));
    Frame bad;
    bad.header = {{"type", "result"}, {"id", sched.invokes[0].header["id"]}, {"duration_ms", "not a number"}};
    sched.conn->Send(bad);
    REQUIRE(RunUntil(&loop, [&] { return a.called; }));
    CHECK(a.result.outcome == InvokeOutcome::kUnavailable);
    CHECK(client.pending() == 0);
    client.Close();
    sched.server.Close();
  }
  CloseLoop(&loop);
}
