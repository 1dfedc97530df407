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

// One test's loop and control socket path (in a temporary directory, removed at the end), and
// the timer a test keeps the loop waking with. The timer lives here, not in the test's inner
// block: uv_close only finishes in Drain's uv_run, after that block's stack is gone.
struct SinkTest {
  std::string dir;
  std::string path;
  uv_loop_t loop;
  uv_timer_t tick;

  SinkTest() {
    char tmpl[] = "/tmp/geysir-logsink-XXXXXX";
    dir = mkdtemp(tmpl);
    path = dir + "/control.sock";
    uv_loop_init(&loop);
  }
  ~SinkTest() {
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
  // Runs the loop until every closed handle is gone; true when the loop then closes cleanly.
  bool Drain() {
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0;
  }
};

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
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
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
    uv_timer_t& tick = t.tick;
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
  CHECK(t.Drain());
}

TEST_CASE("batches control did not acknowledge are sent again, in order, to the restarted control") {
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
  {
    ControlLogSink sink(&loop, path);
    uv_timer_t& tick = t.tick;
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
  CHECK(t.Drain());
}

TEST_CASE("an oversize batch is split under control's header limit, its outcome on the last part",
          "[log_sink]") {
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
  {
    // What one invocation printing 1 MiB of control characters gives: JSON escaping makes it
    // ~6 MiB of header, which control refused (and the scheduler resent forever).
    proto::LogBatch b = Batch("big");
    for (int i = 0; i < 16; ++i) b.events.push_back({3, std::string(64 * 1024, '\x01')});
    b.events.push_back({4, std::string(300 * 1024, '\x02')});  // one line over the per-line cap
    b.events.push_back({5, "END RequestId: big"});
    b.outcome = "ok";
    b.duration_ms = 1.5;

    std::vector<proto::Frame> got;
    std::vector<size_t> header_sizes;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        header_sizes.push_back(proto::EncodeFrame(f).size());
        c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{f.header.value("sender", ""),
                                                                     f.header.value("seq", uint64_t{0})}));
        got.push_back(std::move(f));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    sink.Emit(std::move(b));
    uv_timer_t& tick = t.tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sink.buffered() > 0 && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(sink.buffered() == 0);
    REQUIRE(got.size() > 1);
    size_t events = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(header_sizes[i] < proto::kMaxFrameHeader / 2);
      auto batch = got[i].header.get<proto::LogBatch>();
      CHECK(batch.request_id == "big");
      CHECK(batch.outcome == (i + 1 == got.size() ? "ok" : ""));
      events += batch.events.size();
      for (const auto& e : batch.events) {
        if (e.message.size() > 100000 && e.message[0] == '\x02') {
          CHECK(e.message.find("[geysir: line of 307200 bytes truncated]") != std::string::npos);
        }
      }
    }
    CHECK(events == 20);
    CHECK(got.back().header.get<proto::LogBatch>().events.back().message == "END RequestId: big");
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    sink.Close();
    for (auto& c : conns) c->Close();
    control.Close();
  }
  CHECK(t.Drain());
}

TEST_CASE("a batch that control keeps refusing is dropped and counted, not resent forever", "[log_sink]") {
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
  {
    // A control that closes the connection on "poison" and acknowledges everything else.
    int poison_seen = 0;
    std::vector<std::string> stored;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        const std::string rid = f.header.value("request_id", "");
        if (rid == "poison") {
          ++poison_seen;
          c->Close();
          return;
        }
        stored.push_back(rid);
        c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{f.header.value("sender", ""),
                                                                     f.header.value("seq", uint64_t{0})}));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    sink.Emit(Batch("poison"));
    sink.Emit(Batch("after"));
    uv_timer_t& tick = t.tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((sink.buffered() > 0 || stored.empty()) && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK(sink.buffered() == 0);
    CHECK(sink.rejected() == 1);
    CHECK(poison_seen == ControlLogSink::kMaxLossesPerBatch);
    CHECK(stored == std::vector<std::string>{"after"});
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    sink.Close();
    for (auto& c : conns) c->Close();
    control.Close();
  }
  CHECK(t.Drain());
}

TEST_CASE("a durable batch's callback runs only once control acknowledged it", "[log_sink]") {
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
  {
    bool ack_now = false;
    int received = 0;
    std::string sender;
    uint64_t last_seq = 0;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&](proto::Frame&& f) {
        ++received;
        sender = f.header.value("sender", "");
        last_seq = f.header.value("seq", uint64_t{0});
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    int durable = 0;
    proto::LogBatch b = Batch("async");
    for (int i = 0; i < 8; ++i) b.events.push_back({3, std::string(64 * 1024, 'y')});  // three parts
    sink.EmitDurable(std::move(b), [&] { ++durable; });
    uv_timer_t& tick = t.tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (received < 3 && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(received == 3);
    for (int i = 0; i < 20; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(durable == 0);  // received, not yet stored
    conns.back()->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{sender, last_seq}));
    ack_now = true;
    while (durable == 0 && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    CHECK(durable == 1);
    CHECK(ack_now);
    // An empty batch has nothing to wait for.
    sink.EmitDurable(proto::LogBatch{}, [&] { ++durable; });
    CHECK(durable == 2);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    sink.Close();
    for (auto& c : conns) c->Close();
    control.Close();
  }
  CHECK(t.Drain());
}
