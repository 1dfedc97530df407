#include "scheduler/clock.h"

#include <sys/time.h>

#include <vector>

namespace geysir::scheduler {

UvClock* UvClock::Create(uv_loop_t* loop) { return new UvClock(loop); }

UvClock::UvClock(uv_loop_t* loop) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

int64_t UvClock::MonoNs() const { return static_cast<int64_t>(uv_hrtime()); }

int64_t UvClock::WallMs() const {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

Clock::TimerId UvClock::Schedule(int64_t delay_ms, std::function<void()> fn) {
  if (closing_) return 0;
  if (delay_ms < 0) delay_ms = 0;
  TimerId id = next_id_++;
  auto pos = by_deadline_.emplace(MonoMs() + delay_ms, id);
  timers_.emplace(id, Entry{pos, std::move(fn)});
  Arm();
  return id;
}

void UvClock::Cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  by_deadline_.erase(it->second.pos);
  timers_.erase(it);
  // The uv timer stays armed for a possibly earlier deadline; Fire() re-arms lazily, which is
  // cheaper than restarting the handle on every cancel (most deadlines are cancelled).
}

void UvClock::Arm() {
  if (closing_) return;
  if (by_deadline_.empty()) {
    if (armed_for_ms_ >= 0) uv_timer_stop(&timer_);
    armed_for_ms_ = -1;
    return;
  }
  int64_t first = by_deadline_.begin()->first;
  if (armed_for_ms_ >= 0 && armed_for_ms_ <= first) return;  // already armed early enough
  int64_t delay = first - MonoMs();
  if (delay < 0) delay = 0;
  uv_timer_start(&timer_, OnTimer, static_cast<uint64_t>(delay), 0);
  armed_for_ms_ = first;
}

void UvClock::Fire() {
  armed_for_ms_ = -1;
  // Collect first, then run: a callback may schedule or cancel other timers.
  std::vector<TimerId> due;
  const int64_t now = MonoMs();
  for (auto it = by_deadline_.begin(); it != by_deadline_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  for (TimerId id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier callback
    std::function<void()> fn = std::move(it->second.fn);
    by_deadline_.erase(it->second.pos);
    timers_.erase(it);
    fn();
    if (closing_) return;
  }
  Arm();
}

void UvClock::OnTimer(uv_timer_t* t) { static_cast<UvClock*>(t->data)->Fire(); }

void UvClock::Close() {
  if (closing_) return;
  closing_ = true;
  timers_.clear();
  by_deadline_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClose);
}

void UvClock::OnClose(uv_handle_t* h) { delete static_cast<UvClock*>(h->data); }

}  // namespace geysir::scheduler
