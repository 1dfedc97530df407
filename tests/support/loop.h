// Running a libuv loop in a test for a bounded time: until a condition holds (RunUntil), while a
// client thread talks to it (LoopRunner), or until its last handle closed (DrainAndCloseLoop).
// Bounded so that a bug fails the test instead of hanging it.
//
// Thread behaviour: the loop and everything on it run on the test's thread. LoopRunner's client
// function runs on one helper thread and must only use its own sockets (and Post() or Stop() to
// reach the loop); Post and Stop are safe from any thread.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace geysir::testing {

// Runs `loop` until `done()` holds or `timeout_ms` passes; true if done() held. A ticking timer
// makes sure the predicate is re-checked even when nothing else happens on the loop.
bool RunUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms = 5000);

// Runs the loop until no handles are left (bounded), then closes it; returns uv_loop_close's code.
int DrainAndCloseLoop(uv_loop_t* loop);

// Runs `loop` until Stop() is called (from any thread) or a timeout passes. Its two handles are
// closed by Dispose() (or the destructor); the loop must run once more to finish closing them.
class LoopRunner {
 public:
  explicit LoopRunner(uv_loop_t* loop);
  ~LoopRunner() { Dispose(); }
  LoopRunner(const LoopRunner&) = delete;
  LoopRunner& operator=(const LoopRunner&) = delete;

  // Runs the loop on this thread while `client` runs on a helper thread; returns when the
  // client finished and Stop() was called by it (or at the timeout). True if not timed out.
  bool Run(std::function<void()> client, uint64_t timeout_ms = 5000);

  // Runs `task` on the loop thread.
  void Post(std::function<void()> task);
  void Stop();
  void Dispose();

  bool stop_requested() const { return stop_; }

 private:
  static void OnAsync(uv_async_t* async);
  static void OnTimeout(uv_timer_t* timer);

  uv_loop_t* loop_;
  uv_async_t async_;
  uv_timer_t timer_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  std::atomic<bool> stop_{false};
  bool timed_out_ = false;
  bool disposed_ = false;
};

}  // namespace geysir::testing
