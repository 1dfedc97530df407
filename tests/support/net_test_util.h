// Helpers shared by the network tests of several modules: a loop that runs for a bounded time while a client
// thread talks to it over real loopback sockets, and a blocking raw HTTP client.
//
// Thread behaviour: the loop and everything on it run on the test's thread; the client function
// runs on one helper thread and must only use its own sockets (and Post() to reach the loop).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace geysir::testing {

// Runs `loop` until Stop() is called (from any thread) or `timeout_ms` passes.
class LoopRunner {
 public:
  explicit LoopRunner(uv_loop_t* loop) : loop_(loop) {
    uv_async_init(loop_, &async_, OnAsync);
    async_.data = this;
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
  }
  ~LoopRunner() { Dispose(); }

  // Runs the loop on this thread while `client` runs on a helper thread; returns when the
  // client finished and Stop() was called by it (or at the timeout). True if not timed out.
  bool Run(std::function<void()> client, uint64_t timeout_ms = 5000) {
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

  // Runs tasks posted from other threads on the loop thread.
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    uv_async_send(&async_);
  }
  void Stop() {
    stop_ = true;
    uv_async_send(&async_);
  }

  void Dispose() {
    if (disposed_) return;
    disposed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  }

  bool stop_requested() const { return stop_; }

 private:
  static void OnAsync(uv_async_t* a) {
    auto* self = static_cast<LoopRunner*>(a->data);
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      tasks.swap(self->tasks_);
    }
    for (auto& t : tasks) t();
    if (self->stop_) {
      self->stop_ = false;
      uv_timer_stop(&self->timer_);
      uv_stop(self->loop_);
    }
  }
  static void OnTimeout(uv_timer_t* t) {
    auto* self = static_cast<LoopRunner*>(t->data);
    self->timed_out_ = true;
    uv_stop(self->loop_);
  }

  uv_loop_t* loop_;
  uv_async_t async_;
  uv_timer_t timer_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  std::atomic<bool> stop_{false};
  bool timed_out_ = false;
  bool disposed_ = false;
};

// Runs the loop until no handles are left (bounded), then closes it; returns uv_loop_close's code.
inline int DrainAndCloseLoop(uv_loop_t* loop) {
  for (int i = 0; i < 1000 && uv_loop_alive(loop); ++i) uv_run(loop, UV_RUN_NOWAIT);
  return uv_loop_close(loop);
}

// Runs `loop` until `done()` holds or `timeout_ms` passes; true if done() held. A ticking timer
// makes sure the predicate is re-checked even when nothing else happens.
inline bool RunUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms = 5000) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

// A fresh directory under /tmp for socket files; removed (with its files) on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/geysir-net-XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A blocking TCP client with a receive timeout.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeout_ms = 3000) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }
  // Closes with a reset (SO_LINGER 0), as a client that vanishes does.
  void Abort() {
    struct linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd_);
    fd_ = -1;
  }

  // Reads until EOF, error or timeout; returns everything received (including earlier leftovers).
  std::string ReadAll() {
    std::string out = std::move(pending_);
    pending_.clear();
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = (n == 0);
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // Reads exactly one response (headers + Content-Length body, no body for HEAD when told).
  // Returns "" on timeout/EOF before a full response.
  std::string ReadResponse(bool head_request = false) {
    for (int guard = 0; guard < 10000; ++guard) {
      size_t end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t body_len = 0;
        std::string lower;
        lower.reserve(end);
        for (size_t i = 0; i < end; ++i) lower.push_back(static_cast<char>(tolower(pending_[i])));
        size_t cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos && !head_request) body_len = std::stoul(pending_.substr(cl + 17));
        if (lower.rfind("http/1.1 1", 0) == 0) body_len = 0;  // interim response
        if (pending_.size() >= end + 4 + body_len) {
          std::string resp = pending_.substr(0, end + 4 + body_len);
          pending_.erase(0, end + 4 + body_len);
          return resp;
        }
      }
      char buf[16384];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = (n == 0);
        return "";
      }
      pending_.append(buf, static_cast<size_t>(n));
    }
    return "";
  }

  // True if the peer closed the connection (reads EOF within the timeout).
  bool WaitClosed() {
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
    return false;
  }

  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string pending_;
};

inline std::string BodyOf(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

inline int StatusOf(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

}  // namespace geysir::testing
