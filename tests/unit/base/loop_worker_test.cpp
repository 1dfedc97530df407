// LoopWorker on a real libuv loop: jobs run off the loop thread, in order, and their
// continuations come back on the loop thread; an idle worker does not keep uv_run going; a
// throwing job or continuation is survived; destruction drops what has not run yet.
#include "base/loop_worker.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

struct Loop {
  uv_loop_t loop{};
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks
    CHECK(uv_loop_close(&loop) == 0);
  }
};

}  // namespace

TEST_CASE("LoopWorker runs jobs off the loop, in order, and continues on the loop", "[loop_worker]") {
  Loop l;
  auto started = geysir::LoopWorker::Start(&l.loop, "test_worker");
  REQUIRE(started.ok());
  auto worker = std::move(started).value();
  const auto loop_thread = std::this_thread::get_id();
  std::vector<int> ran_on_worker, continued;
  std::atomic<int> off_loop{0};
  for (int i = 0; i < 20; ++i) {
    worker->Submit([i, loop_thread, &ran_on_worker, &continued, &off_loop]() -> geysir::LoopWorker::Continuation {
      if (std::this_thread::get_id() != loop_thread) off_loop++;
      ran_on_worker.push_back(i);  // the worker thread only: jobs never run concurrently
      return [i, loop_thread, &continued] {
        CHECK(std::this_thread::get_id() == loop_thread);
        continued.push_back(i);
      };
    });
  }
  // The worker references the loop while continuations are outstanding: uv_run returns only
  // once all 20 have run, and then by itself (nothing else is active).
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(off_loop == 20);
  std::vector<int> expected;
  for (int i = 0; i < 20; ++i) expected.push_back(i);
  CHECK(ran_on_worker == expected);
  CHECK(continued == expected);
}

TEST_CASE("LoopWorker: an idle worker does not keep the loop running; jobs without continuation count", "[loop_worker]") {
  Loop l;
  auto worker = std::move(geysir::LoopWorker::Start(&l.loop, "test_worker")).value();
  auto t0 = std::chrono::steady_clock::now();
  uv_run(&l.loop, UV_RUN_DEFAULT);  // returns at once: nothing submitted
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  std::atomic<int> ran{0};
  worker->Submit([&ran]() -> geysir::LoopWorker::Continuation {
    ran++;
    return {};
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);  // returns once the empty continuation is accounted for
  CHECK(ran == 1);
}

TEST_CASE("LoopWorker survives a throwing job and a throwing continuation", "[loop_worker]") {
  Loop l;
  auto worker = std::move(geysir::LoopWorker::Start(&l.loop, "test_worker")).value();
  int after = 0;
  worker->Submit([]() -> geysir::LoopWorker::Continuation { throw std::runtime_error("job fails"); });
  worker->Submit([]() -> geysir::LoopWorker::Continuation {
    return [] { throw std::runtime_error("continuation fails"); };
  });
  worker->Submit([&after]() -> geysir::LoopWorker::Continuation {
    return [&after] { after = 1; };
  });
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(after == 1);
}

TEST_CASE("LoopWorker: destruction waits for the running job and drops the rest", "[loop_worker]") {
  Loop l;
  auto worker = std::move(geysir::LoopWorker::Start(&l.loop, "test_worker")).value();
  std::atomic<bool> first_started{false};
  std::atomic<bool> first_finished{false};
  std::atomic<int> later_jobs_run{0};
  int continuations = 0;
  worker->Submit([&]() -> geysir::LoopWorker::Continuation {
    first_started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    first_finished = true;
    return [&continuations] { continuations++; };
  });
  for (int i = 0; i < 5; ++i) {
    worker->Submit([&]() -> geysir::LoopWorker::Continuation {
      later_jobs_run++;
      return [&continuations] { continuations++; };
    });
  }
  for (int i = 0; i < 200 && !first_started; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(first_started);
  worker.reset();  // joins: the running job finishes; the five queued ones never start
  CHECK(first_finished);
  CHECK(later_jobs_run == 0);
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(continuations == 0);  // nothing runs on the loop once the worker is gone
}
