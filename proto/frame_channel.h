// Frame channels over Unix sockets on libuv: the transport for proto/frame.h.
//
// FrameServer listens on a socket path and hands each accepted connection to a callback as a
// FrameConnection. FrameClient keeps one connection to a path, reconnecting with back-off
// (100 ms doubling to 2 s) while the peer restarts; OnConnected fires after each (re)connect
// so the client can re-subscribe. A connection that receives a malformed frame is closed.
//
// Thread safety: loop thread only. Connections are shared_ptr-owned; the libuv handle is freed
// in its close callback, after which the FrameConnection is inert (Send() is a no-op).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "proto/frame.h"
#include "base/status.h"

namespace geysir::proto {

class FrameConnection : public std::enable_shared_from_this<FrameConnection> {
 public:
  using FrameHandler = std::function<void(Frame&& frame)>;
  using CloseHandler = std::function<void(const Status& why)>;

  virtual ~FrameConnection() = default;
  // Handlers may be set after creation; frames are not read until Start().
  virtual void Start(FrameHandler on_frame, CloseHandler on_close) = 0;
  virtual void Send(const Frame& frame) = 0;
  virtual void Close() = 0;
  virtual bool open() const = 0;
};

class FrameServer {
 public:
  using AcceptHandler = std::function<void(std::shared_ptr<FrameConnection>)>;
  FrameServer(uv_loop_t* loop, AcceptHandler on_accept);
  ~FrameServer();
  FrameServer(const FrameServer&) = delete;
  FrameServer& operator=(const FrameServer&) = delete;

  // Removes a stale socket file first; the socket is created mode 0660.
  Status Listen(const std::string& path);
  void Close();  // stops listening and closes every accepted connection

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class FrameClient {
 public:
  using ConnectedHandler = std::function<void()>;
  using DisconnectedHandler = std::function<void(const Status& why)>;
  FrameClient(uv_loop_t* loop, std::string path, FrameConnection::FrameHandler on_frame,
              ConnectedHandler on_connected, DisconnectedHandler on_disconnected);
  ~FrameClient();
  FrameClient(const FrameClient&) = delete;
  FrameClient& operator=(const FrameClient&) = delete;

  void Start();
  bool connected() const;
  // Returns Unavailable when not connected, or when the write failed at once and dropped the
  // connection (the frame is not queued either way; the reconnect is under way).
  Status Send(const Frame& frame);
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace geysir::proto
