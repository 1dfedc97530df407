// Frame channels over Unix stream sockets on libuv. See frame_channel.h.
//
// Ownership: a PipeConnection is shared_ptr-owned by whoever uses it (the FrameServer keeps the
// accepted ones until they close; FrameClient keeps its current one). The uv_pipe_t lives in a
// separate heap block freed in its close callback, so the FrameConnection object may die
// before libuv is done with the handle; the handle's data pointer is cleared at that point.
#include "proto/frame_channel.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/ignore_sigpipe.h"
#include "base/log.h"
#include "base/uv_handle.h"

namespace geysir::proto {
namespace {

constexpr uint64_t kInitialBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 2000;
constexpr size_t kReadChunk = 64 * 1024;

struct OwnedWrite {
  uv_write_t req;
  std::string bytes;
};


void FreePipe(uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); }

class PipeConnection final : public FrameConnection {
 public:
  // Takes an initialised (connected or accepted) pipe.
  explicit PipeConnection(uv_pipe_t* pipe) : pipe_(pipe) {
    IgnoreSigpipeOnce();
    pipe_->data = this;
  }

  ~PipeConnection() override {
    on_frame_ = nullptr;
    on_close_ = nullptr;
    closed_hook_ = nullptr;
    CloseHandle();
  }

  void Start(FrameHandler on_frame, CloseHandler on_close) override {
    on_frame_ = std::move(on_frame);
    on_close_ = std::move(on_close);
    if (pipe_ == nullptr || started_) return;
    started_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(pipe_), OnAlloc, OnRead);
  }

  void Send(const Frame& frame) override {
    if (pipe_ == nullptr) return;
    std::string bytes = EncodeFrame(frame);
    auto* stream = reinterpret_cast<uv_stream_t*>(pipe_);
    uv_buf_t buf = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    int written = 0;
    if (stream->write_queue_size == 0) {
      written = uv_try_write(stream, &buf, 1);
      if (written == UV_EAGAIN) written = 0;
      if (written < 0) {
        Fail(Status::Unavailable(std::string("frame write: ") + uv_strerror(written)));
        return;
      }
      if (static_cast<size_t>(written) == bytes.size()) return;
    }
    auto* w = new OwnedWrite;
    w->bytes = std::move(bytes);
    uv_buf_t rest = uv_buf_init(w->bytes.data() + written, static_cast<unsigned>(w->bytes.size() - written));
    int rc = uv_write(&w->req, stream, &rest, 1, [](uv_write_t* req, int status) {
      auto* ow = reinterpret_cast<OwnedWrite*>(req);
      auto* handle = req->handle;
      delete ow;
      if (status < 0 && status != UV_ECANCELED && handle->data != nullptr) {
        static_cast<PipeConnection*>(handle->data)->Fail(
            Status::Unavailable(std::string("frame write: ") + uv_strerror(status)));
      }
    });
    if (rc != 0) {
      delete w;
      Fail(Status::Unavailable(std::string("frame write: ") + uv_strerror(rc)));
    }
  }

  void Close() override { Fail(Status::Unavailable("connection closed locally")); }

  bool open() const override { return pipe_ != nullptr; }

  // Called once when the connection closes, before on_close_ (the server forgets it here).
  std::function<void(PipeConnection*)> closed_hook_;

  // Closes the connection for `why` and tells the owner once.
  void Fail(const Status& why) {
    if (pipe_ == nullptr) return;
    auto keep = weak_from_this().lock();  // handlers may drop the last reference
    CloseHandle();
    if (closed_hook_) {
      auto hook = std::move(closed_hook_);
      closed_hook_ = nullptr;
      hook(this);
    }
    if (on_close_) {
      auto cb = std::move(on_close_);
      on_close_ = nullptr;
      on_frame_ = nullptr;
      cb(why);
    }
  }

 private:
  void CloseHandle() {
    if (pipe_ == nullptr) return;
    pipe_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(pipe_), FreePipe);
    pipe_ = nullptr;
  }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* out) {
    // Loop thread only; the decoder copies what it is fed, so one scratch buffer serves all.
    static thread_local std::vector<char> scratch(kReadChunk);
    (void)h;
    *out = uv_buf_init(scratch.data(), static_cast<unsigned>(scratch.size()));
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<PipeConnection*>(s->data);
    if (self == nullptr || nread == 0) return;
    auto keep = self->weak_from_this().lock();
    if (nread < 0) {
      self->Fail(nread == UV_EOF ? Status::Unavailable("peer closed the connection")
                                 : Status::Unavailable(std::string("frame read: ") + uv_strerror(static_cast<int>(nread))));
      return;
    }
    self->decoder_.Feed(buf->base, static_cast<size_t>(nread));
    // Bounded: each iteration consumes one whole frame from what was just fed.
    while (self->pipe_ != nullptr) {
      auto next = self->decoder_.Next();
      if (!next.ok()) {
        log::Warn("frame_malformed", {{"error", next.status().message()}});
        self->Fail(next.status());
        return;
      }
      if (!next->has_value()) break;
      if (self->on_frame_) {
        auto handler = self->on_frame_;  // the handler may replace itself
        handler(std::move(**next));
      }
    }
  }

  uv_pipe_t* pipe_;
  bool started_ = false;
  FrameDecoder decoder_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
};

}  // namespace

// --- FrameServer ---------------------------------------------------------------------------

struct FrameServer::Impl {
  uv_loop_t* loop;
  AcceptHandler on_accept;
  uv_pipe_t* listener = nullptr;
  std::vector<std::shared_ptr<PipeConnection>> conns;

  static void OnConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<Impl*>(server->data);
    if (self == nullptr || status < 0) return;
    auto* pipe = new uv_pipe_t;
    uv_pipe_init(self->loop, pipe, 0);
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(pipe)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(pipe), FreePipe);
      return;
    }
    auto conn = std::make_shared<PipeConnection>(pipe);
    conn->closed_hook_ = [self](PipeConnection* c) {
      auto& v = self->conns;
      v.erase(std::remove_if(v.begin(), v.end(), [c](const auto& p) { return p.get() == c; }), v.end());
    };
    self->conns.push_back(conn);
    if (self->on_accept) self->on_accept(conn);
  }
};

FrameServer::FrameServer(uv_loop_t* loop, AcceptHandler on_accept) : impl_(std::make_unique<Impl>()) {
  impl_->loop = loop;
  impl_->on_accept = std::move(on_accept);
}

FrameServer::~FrameServer() { Close(); }

Status FrameServer::Listen(const std::string& path) {
  if (impl_->listener != nullptr) return Status::Invalid("FrameServer already listening");
  // A socket file left by a crashed predecessor would make bind fail with EADDRINUSE.
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::Invalid(path + " exists and is not a socket");
    if (unlink(path.c_str()) != 0) return Status::Sys(errno, "unlink stale socket " + path);
  }
  auto* pipe = new uv_pipe_t;
  uv_pipe_init(impl_->loop, pipe, 0);
  pipe->data = impl_.get();
  int rc = uv_pipe_bind(pipe, path.c_str());
  if (rc == 0) {
    // Before listen(): nobody can connect yet, so the default mode is never usable.
    if (chmod(path.c_str(), 0660) != 0) rc = -errno;
  }
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(pipe), 128, Impl::OnConnection);
  if (rc != 0) {
    pipe->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(pipe), FreePipe);
    return Status::Sys(-rc, "listen on " + path, Code::kUnavailable);
  }
  impl_->listener = pipe;
  return Status::Ok();
}

void FrameServer::Close() {
  if (impl_->listener != nullptr) {
    impl_->listener->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(impl_->listener), FreePipe);
    impl_->listener = nullptr;
  }
  auto conns = std::move(impl_->conns);
  impl_->conns.clear();
  for (auto& c : conns) {
    c->closed_hook_ = nullptr;
    c->Close();
  }
}

// --- FrameClient ---------------------------------------------------------------------------

struct FrameClient::Impl {
  uv_loop_t* loop;
  std::string path;
  FrameConnection::FrameHandler on_frame;
  ConnectedHandler on_connected;
  DisconnectedHandler on_disconnected;

  std::shared_ptr<PipeConnection> conn;
  struct Connect {
    uv_connect_t req;
    uv_pipe_t* pipe;
    Impl* owner;
  };
  Connect* connecting = nullptr;
  UvHandle<uv_timer_t> timer;
  uint64_t backoff_ms = kInitialBackoffMs;
  bool started = false;
  bool closed = false;
  bool logged_failure = false;

  void StartConnect() {
    if (closed || conn || connecting != nullptr) return;
    auto* c = new Connect;
    c->pipe = new uv_pipe_t;
    c->owner = this;
    uv_pipe_init(loop, c->pipe, 0);
    connecting = c;
    uv_pipe_connect(&c->req, c->pipe, path.c_str(), OnConnect);
  }

  static void OnConnect(uv_connect_t* req, int status) {
    auto* c = reinterpret_cast<Connect*>(req);
    Impl* self = c->owner;
    uv_pipe_t* pipe = c->pipe;
    delete c;
    if (self == nullptr) {  // the client closed meanwhile; the pipe is already closing
      return;
    }
    self->connecting = nullptr;
    if (status < 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(pipe), FreePipe);
      if (!self->logged_failure) {
        self->logged_failure = true;
        log::Info("frame_connect_retry", {{"path", self->path}, {"error", uv_strerror(status)}});
      }
      self->ScheduleRetry();
      return;
    }
    self->logged_failure = false;
    self->backoff_ms = kInitialBackoffMs;
    auto conn = std::make_shared<PipeConnection>(pipe);
    self->conn = conn;
    conn->Start(
        [self](Frame&& f) {
          if (self->on_frame) self->on_frame(std::move(f));
        },
        [self](const Status& why) { self->OnLost(why); });
    if (self->on_connected) self->on_connected();
  }

  void OnLost(const Status& why) {
    conn.reset();
    if (closed) return;
    log::Info("frame_disconnected", {{"path", path}, {"why", why.message()}});
    if (on_disconnected) on_disconnected(why);
    if (!closed) ScheduleRetry();
  }

  void ScheduleRetry() {
    if (closed) return;
    if (!timer) {
      if (int rc = timer.Init(loop, uv_timer_init); rc != 0) {
        log::Error("frame_retry_timer_failed", {{"path", path}, {"error", uv_strerror(rc)}});
        return;
      }
      timer->data = this;
    }
    uint64_t delay = backoff_ms;
    backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    uv_timer_start(timer.get(), OnRetry, delay, 0);
  }

  static void OnRetry(uv_timer_t* t) {
    auto* self = static_cast<Impl*>(t->data);
    if (self != nullptr) self->StartConnect();
  }

  void Close() {
    if (closed) return;
    closed = true;
    timer.Close();
    if (connecting != nullptr) {
      // libuv reports the pending connect as cancelled before the close callback runs.
      connecting->owner = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(connecting->pipe), FreePipe);
      connecting = nullptr;
    }
    if (conn) {
      auto c = std::move(conn);
      c->Close();
    }
  }
};

FrameClient::FrameClient(uv_loop_t* loop, std::string path, FrameConnection::FrameHandler on_frame,
                         ConnectedHandler on_connected, DisconnectedHandler on_disconnected)
    : impl_(std::make_unique<Impl>()) {
  impl_->loop = loop;
  impl_->path = std::move(path);
  impl_->on_frame = std::move(on_frame);
  impl_->on_connected = std::move(on_connected);
  impl_->on_disconnected = std::move(on_disconnected);
}

FrameClient::~FrameClient() { Close(); }

void FrameClient::Start() {
  if (impl_->started || impl_->closed) return;
  impl_->started = true;
  impl_->StartConnect();
}

bool FrameClient::connected() const { return impl_->conn != nullptr && impl_->conn->open(); }

Status FrameClient::Send(const Frame& frame) {
  if (!connected()) return Status::Unavailable("not connected to " + impl_->path);
  impl_->conn->Send(frame);
  // A write that fails at once drops the connection inside Send (the disconnected handler has
  // already run): the frame was not delivered, and a caller that counts frames must know.
  if (!connected()) return Status::Unavailable("the connection to " + impl_->path + " dropped while sending");
  return Status::Ok();
}

void FrameClient::Close() { impl_->Close(); }

}  // namespace geysir::proto
