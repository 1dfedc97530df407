#include "tests/support/loop.h"

#include <chrono>
#include <thread>
#include <utility>

namespace geysir::testing {

bool RunUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  // The timer lives on this stack: one more turn runs its close before the frame goes.
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

int DrainAndCloseLoop(uv_loop_t* loop) {
  for (int i = 0; i < 1000 && uv_loop_alive(loop); ++i) uv_run(loop, UV_RUN_NOWAIT);
  return uv_loop_close(loop);
}

LoopRunner::LoopRunner(uv_loop_t* loop) : loop_(loop) {
  uv_async_init(loop_, &async_, OnAsync);
  async_.data = this;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

bool LoopRunner::Run(std::function<void()> client, uint64_t timeout_ms) {
  timed_out_ = false;
  uv_timer_start(&timer_, OnTimeout, timeout_ms, 0);
  std::thread t([&] {
    client();
    Stop();
  });
  uv_run(loop_, UV_RUN_DEFAULT);
  t.join();
  return !timed_out_;
}

void LoopRunner::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  uv_async_send(&async_);
}

void LoopRunner::Stop() {
  stop_ = true;
  uv_async_send(&async_);
}

void LoopRunner::Dispose() {
  if (disposed_) return;
  disposed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void LoopRunner::OnAsync(uv_async_t* async) {
  auto* self = static_cast<LoopRunner*>(async->data);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    tasks.swap(self->tasks_);
  }
  for (auto& task : tasks) task();
  if (self->stop_) {
    self->stop_ = false;
    uv_timer_stop(&self->timer_);
    uv_stop(self->loop_);
  }
}

void LoopRunner::OnTimeout(uv_timer_t* timer) {
  auto* self = static_cast<LoopRunner*>(timer->data);
  self->timed_out_ = true;
  uv_stop(self->loop_);
}

}  // namespace geysir::testing
