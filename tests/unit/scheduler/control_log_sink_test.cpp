// ControlLogSink: batches wait (bounded, oldest dropped) while control is down, and are
// delivered in order once it is up.
#include "scheduler/control_log_sink.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

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
