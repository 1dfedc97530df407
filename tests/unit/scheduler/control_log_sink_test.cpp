// ControlLogSink: batches wait (bounded, oldest dropped) while control is down, and are
// delivered in order once it is up; one frame is in flight at a time, and what is emitted
// meanwhile leaves as one frame (group commit).
#include "scheduler/control_log_sink.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>

#include "tests/support/loop.h"
#include "tests/support/temp_dir.h"

using namespace geysir;
using namespace geysir::scheduler;
using geysir::testing::RunUntil;

namespace {

// One test's loop and control socket path (in a temporary directory, removed at the end).
struct SinkTest {
  geysir::testing::TempDir dir{"geysir-logsink"};
  std::string path = dir / "control.sock";
  uv_loop_t loop;

  SinkTest() { uv_loop_init(&loop); }
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

// The batches of a "logs" frame, in order (either form of the header).
std::vector<proto::LogBatch> Batches(const proto::Frame& f) { return f.header.get<proto::LogBatches>().batches; }

// What control answers to a frame: the highest seq it carried, of its sender.
proto::Frame AckOf(const proto::Frame& f) {
  auto batches = Batches(f);
  return proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{batches.back().sender, batches.back().seq});
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
      c->Start([&, c = c.get()](proto::Frame&& f) {
        for (const auto& b : Batches(f)) got.push_back(b.request_id);
        c->Send(AckOf(f));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    const uint64_t wait_ms = 5000;
    RunUntil(&loop, [&] { return got.size() >= 6 - dropped; }, wait_ms);
    REQUIRE(got.size() == 6 - dropped);
    // The newest survived, in order.
    CHECK(got.back() == "r5");
    // Connected: the next one goes straight out.
    sink.Emit(Batch("r6"));
    RunUntil(&loop, [&] { return got.size() >= 7 - dropped; }, wait_ms);
    CHECK(got.back() == "r6");
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
    const uint64_t wait_ms = 10000;
    auto run_until = [&](const std::function<bool()>& done) { return RunUntil(&loop, done, wait_ms); };

    // First control: receives four batches (in one frame: they were emitted before the sink
    // connected), acknowledges the first two, then dies.
    std::vector<uint64_t> first;
    std::string sender;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    auto control1 = std::make_unique<proto::FrameServer>(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        for (const auto& b : Batches(f)) {
          first.push_back(b.seq);
          sender = b.sender;
        }
        if (first.size() >= 2) c->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{sender, 2}));
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
        for (const auto& b : Batches(f)) second.push_back(b.seq);
        c->Send(AckOf(f));
      }, [](const Status&) {});
    });
    REQUIRE(control2.Listen(path).ok());
    run_until([&] { return second.size() >= 3 && sink.buffered() == 0; });
    INFO("second=" << second.size() << " buffered=" << sink.buffered());
    REQUIRE(sink.buffered() == 0);
    CHECK(second == std::vector<uint64_t>{3, 4, 5});
    CHECK(sink.dropped() == 0);

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
        c->Send(AckOf(f));
        got.push_back(std::move(f));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    sink.Emit(std::move(b));
    const uint64_t wait_ms = 10000;
    RunUntil(&loop, [&] { return sink.buffered() == 0; }, wait_ms);
    REQUIRE(sink.buffered() == 0);
    std::vector<proto::LogBatch> parts;
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(header_sizes[i] < proto::kMaxFrameHeader / 2);
      for (auto& part : Batches(got[i])) parts.push_back(std::move(part));
    }
    REQUIRE(parts.size() > 1);
    size_t events = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const proto::LogBatch& batch = parts[i];
      CHECK(batch.request_id == "big");
      CHECK(batch.outcome == (i + 1 == parts.size() ? "ok" : ""));
      events += batch.events.size();
      for (const auto& e : batch.events) {
        if (e.message.size() > 100000 && e.message[0] == '\x02') {
          CHECK(e.message.find("[geysir: line of 307200 bytes truncated]") != std::string::npos);
        }
      }
    }
    CHECK(events == 20);
    CHECK(parts.back().events.back().message == "END RequestId: big");
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
        for (const auto& b : Batches(f)) {
          if (b.request_id == "poison") {
            ++poison_seen;
            c->Close();
            return;
          }
        }
        for (const auto& b : Batches(f)) stored.push_back(b.request_id);
        c->Send(AckOf(f));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    sink.Emit(Batch("poison"));
    sink.Emit(Batch("after"));
    const uint64_t wait_ms = 30000;
    RunUntil(&loop, [&] { return sink.buffered() == 0 && !stored.empty(); }, wait_ms);
    CHECK(sink.buffered() == 0);
    CHECK(sink.rejected() == 1);
    CHECK(poison_seen == ControlLogSink::kMaxLossesPerBatch);
    CHECK(stored == std::vector<std::string>{"after"});
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
    // Control acknowledges every frame but the one carrying the batch's last part, until told.
    bool ack_now = false;
    int received = 0;
    std::string sender;
    uint64_t last_seq = 0;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&, c = c.get()](proto::Frame&& f) {
        auto batches = Batches(f);
        received += static_cast<int>(batches.size());
        sender = batches.back().sender;
        last_seq = batches.back().seq;
        if (received < 3) c->Send(AckOf(f));
      }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    int durable = 0;
    proto::LogBatch b = Batch("async");
    for (int i = 0; i < 8; ++i) b.events.push_back({3, std::string(64 * 1024, 'y')});  // three parts
    sink.EmitDurable(std::move(b), [&] { ++durable; });
    const uint64_t wait_ms = 10000;
    RunUntil(&loop, [&] { return received >= 3; }, wait_ms);
    REQUIRE(received == 3);
    for (int i = 0; i < 20; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(durable == 0);  // received, not yet stored
    conns.back()->Send(proto::MakeFrame(proto::kMsgLogsAck, proto::LogsAck{sender, last_seq}));
    ack_now = true;
    RunUntil(&loop, [&] { return durable != 0; }, wait_ms);
    CHECK(durable == 1);
    CHECK(ack_now);
    // An empty batch has nothing to wait for.
    sink.EmitDurable(proto::LogBatch{}, [&] { ++durable; });
    CHECK(durable == 2);
    sink.Close();
    for (auto& c : conns) c->Close();
    control.Close();
  }
  CHECK(t.Drain());
}

TEST_CASE("batches emitted while a frame awaits its acknowledgement leave together in one frame",
          "[log_sink]") {
  SinkTest t;
  uv_loop_t& loop = t.loop;
  const std::string& path = t.path;
  {
    // Control holds its acknowledgements until told, as a slow commit would.
    std::vector<proto::Frame> got;
    std::vector<std::shared_ptr<proto::FrameConnection>> conns;
    proto::FrameServer control(&loop, [&](std::shared_ptr<proto::FrameConnection> c) {
      conns.push_back(c);
      c->Start([&](proto::Frame&& f) { got.push_back(std::move(f)); }, [](const Status&) {});
    });
    REQUIRE(control.Listen(path).ok());
    ControlLogSink sink(&loop, path);
    sink.Start();
    const uint64_t wait_ms = 10000;
    auto run_until = [&](const std::function<bool()>& done) { return RunUntil(&loop, done, wait_ms); };
    // Nothing in flight: the first batch goes at once, alone.
    sink.Emit(Batch("r0"));
    REQUIRE(run_until([&] { return got.size() == 1; }));
    CHECK(Batches(got[0]).size() == 1);
    // Ten more while it is unacknowledged: none goes yet.
    for (int i = 1; i <= 10; ++i) sink.Emit(Batch("r" + std::to_string(i)));
    for (int i = 0; i < 20; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(got.size() == 1);
    CHECK(sink.frames_sent() == 1);
    // The acknowledgement releases them as one frame, in order.
    conns.back()->Send(AckOf(got[0]));
    REQUIRE(run_until([&] { return got.size() == 2; }));
    auto second = Batches(got[1]);
    REQUIRE(second.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(second[i].request_id == "r" + std::to_string(i + 1));
    CHECK(second.front().seq == 2);
    CHECK(second.back().seq == 11);
    conns.back()->Send(AckOf(got[1]));
    CHECK(run_until([&] { return sink.buffered() == 0; }));
    CHECK(sink.frames_sent() == 2);
    sink.Close();
    for (auto& c : conns) c->Close();
    control.Close();
  }
  CHECK(t.Drain());
}
