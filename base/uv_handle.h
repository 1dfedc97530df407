// UvHandle<T>: the owner of one heap-allocated libuv handle (uv_timer_t, uv_signal_t,
// uv_idle_t, uv_async_t, uv_pipe_t, uv_tcp_t, ...).
//
// libuv may still touch a handle after uv_close() returns, until the loop runs its close
// callback; so a handle's memory cannot die with its owner. UvHandle never deletes directly:
// Close() (and the destructor) clear `data`, call uv_close, and the close callback frees the
// memory. The owner can therefore go away at any time, and a callback that was already queued
// sees `data == nullptr` and must return without touching its former owner (every callback of
// ours checks it).
//
//   UvHandle<uv_timer_t> timer;
//   if (int rc = timer.Init(loop, uv_timer_init); rc != 0) return ...;
//   timer->data = this;
//   uv_timer_start(timer.get(), OnTimer, 100, 0);
//
// A handle whose close must be observed (a listener whose shutdown waits for it) keeps its own
// close callback instead; this type is for the common case.
//
// Thread safety: like the handle: only the loop's thread may use it.
#pragma once

#include <uv.h>

#include <utility>

namespace geysir {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      Close();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { Close(); }

  // Allocates the handle and runs `init(loop, handle, args...)` (uv_timer_init, uv_pipe_init
  // with its ipc flag, ...). On failure nothing is kept; the libuv error code is returned.
  // A handle held before is closed first.
  template <typename InitFn, typename... Args>
  int Init(uv_loop_t* loop, InitFn init, Args... args) {
    Close();
    T* handle = new T{};
    int rc = init(loop, handle, args...);
    if (rc != 0) {
      delete handle;  // never initialised, so libuv does not know it
      return rc;
    }
    handle_ = handle;
    return 0;
  }

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(handle_); }

  // Starts closing; the memory is freed by the close callback. Safe to call when empty.
  void Close() {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    handle_ = nullptr;
  }

 private:
  T* handle_ = nullptr;
};

}  // namespace geysir
