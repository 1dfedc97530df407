// ControlLogSink: batches wait (bounded, oldest dropped) while control is down, and are
// delivered in order once it is up.
#include "scheduler/control_log_sink.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>

using namespace geysir;
using namespace geysir::scheduler;

namespace {

proto::LogBatch Batch(const std::string& rid) {
  proto::LogBatch b;
  b.function_name = "hello";
  b.version = "$LATEST";
  b.request_id = rid;
  b.events.push_back({1, "START RequestId: " + rid + " Version: $LATEST"});
  b.events.push_back({2, std::string(300, 'x')});
  return b;
}

}  // namespace

TEST_CASE("log batches are buffered while control is down and flushed when it comes up") {
  char tmpl[] = "/tmp/geysir-logsink-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/control.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    ControlLogSink sink(&loop, path, /*max_buffered_bytes=*/1500);
    sink.Start();
    for (int i = 0; i < 6; ++i) sink.Emit(Batch("r" + std::to_string(i)));
    CHECK(sink.dropped() > 0);
    CHECK(sink.buffered() + sink.dropped() == 6);
    const uint64_t dropped = sink.dropped();

    std::vector<std::string> got;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&](proto::Frame&& f) { got.push_back(f.header.value("request_id", "")); }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    while (got.size() < 6 - dropped && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(got.size() == 6 - dropped);
    // The newest survived, in order.
    CHECK(got.back() == "r5");
    // Connected: the next one goes straight out.
    sink.Emit(Batch("r6"));
    while (got.size() < 7 - dropped && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    CHECK(got.back() == "r6");
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    sink.Close();
    control.Close();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("batches control did not acknowledge are sent again, in order, to the restarted control") {
  char tmpl[] = "/tmp/geysir-logsink-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/control.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    ControlLogSink sink(&loop, path);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto run_until = [&](const std::function<bool()>& done) {
      while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
      return done();
    };

    // First control: receives four batches, acknowledges the first two, then dies.
    std::vector<uint64_t> first;
    std::string sender;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    auto control1 = std::make_unique<proto::FrameServer>(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        first.push_back(f.header.value("seq", uint64_t{0}));
        sender = f.header.value("sender", "");
        if (first.size() == 2) c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{sender, 2}));
      }, [](const Status&) {});
    });
    REQUIRE(control1->Listen(path).ok());
    sink.Start();
    for (int i = 1; i <= 4; ++i) sink.Emit(Batch("r" + std::to_string(i)));
    REQUIRE(run_until([&] { return first.size() == 4 && sink.buffered() == 2; }));
    CHECK(first == std::vector<uint64_t>{1, 2, 3, 4});
    CHECK_FALSE(sender.empty());
    for (auto& c : conns) c->Close();
    conns.clear();
    control1->Close();
    control1.reset();
    unlink(path.c_str());

    // A batch emitted while control is down joins the queue behind the unacknowledged ones.
    sink.Emit(Batch("r5"));

    // The restarted control gets 3, 4, 5 — not 1 and 2 — and acknowledges them all.
    std::vector<uint64_t> second;
    proto::FrameServer control2(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        const uint64_t seq = f.header.value("seq", uint64_t{0});
        second.push_back(seq);
        c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{sender, seq}));
      }, [](const Status&) {});
    });
    REQUIRE(control2.Listen(path).ok());
    run_until([&] { return second.size() >= 3 && sink.buffered() == 0; });
    INFO("second=" << second.size() << " buffered=" << sink.buffered());
    REQUIRE(sink.buffered() == 0);
    CHECK(second == std::vector<uint64_t>{3, 4, 5});
    CHECK(sink.dropped() == 0);

    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    sink.Close();
    for (auto& c : conns) c->Close();
    control2.Close();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  unlink(path.c_str());
  rmdir(dir.c_str());
}
