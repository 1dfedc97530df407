// Clock: the scheduler's seam for time. Everything in the pool logic that depends on time —
// durations, deadlines, idle eviction — asks a Clock, so tests drive time by hand
// (tests/unit/scheduler/fakes.h: FakeClock) and the real process uses UvClock.
//
// A Clock also runs one-shot timers: Schedule() returns an id; Cancel() of an id that already
// fired or was cancelled is a no-op. Callbacks never run inside Schedule() itself.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

namespace geysir::scheduler {

class Clock {
 public:
  using TimerId = uint64_t;
  virtual ~Clock() = default;
  // Monotonic time in nanoseconds (durations).
  virtual int64_t MonoNs() const = 0;
  // Wall-clock time in Unix milliseconds (deadlines sent to the function, log timestamps).
  virtual int64_t WallMs() const = 0;
  virtual TimerId Schedule(int64_t delay_ms, std::function<void()> fn) = 0;
  virtual void Cancel(TimerId id) = 0;

  int64_t MonoMs() const { return MonoNs() / 1000000; }
};

// The real clock on a libuv loop. All timers share one uv_timer_t armed for the earliest
// deadline, so thousands of per-invocation deadlines cost a map insert each, not a handle.
// Close() must be called before the loop is closed; the handle is freed in its close callback.
class UvClock final : public Clock {
 public:
  static UvClock* Create(uv_loop_t* loop);  // owned by its handle: call Close() to free
  int64_t MonoNs() const override;
  int64_t WallMs() const override;
  TimerId Schedule(int64_t delay_ms, std::function<void()> fn) override;
  void Cancel(TimerId id) override;
  void Close();  // cancels every timer; frees itself once libuv has closed the handle
  size_t pending() const { return timers_.size(); }

 private:
  explicit UvClock(uv_loop_t* loop);
  ~UvClock() = default;
  void Arm();
  void Fire();
  static void OnTimer(uv_timer_t* t);
  static void OnClose(uv_handle_t* h);

  uv_timer_t timer_{};
  bool closing_ = false;
  TimerId next_id_ = 1;
  int64_t armed_for_ms_ = -1;
  std::multimap<int64_t, TimerId> by_deadline_;  // deadline (MonoMs) -> id
  struct Entry {
    std::multimap<int64_t, TimerId>::iterator pos;
    std::function<void()> fn;
  };
  std::unordered_map<TimerId, Entry> timers_;
};

}  // namespace geysir::scheduler
