// InvokeClient: how gateway and control ask the scheduler to run a function.
//
// One FrameClient to scheduler.sock, multiplexed: each Invoke gets a fresh correlation id and
// its callback runs exactly once — with the scheduler's result, or with outcome kUnavailable
// (body {"message": "scheduler unavailable: <why>"}) if the connection is down, drops before the
// result arrives, or carries a result this side cannot read.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "proto/messages.h"

namespace geysir::proto {

class InvokeClient {
 public:
  using Callback = std::function<void(InvokeResult result, std::string payload)>;
  InvokeClient(uv_loop_t* loop, std::string scheduler_socket_path);
  ~InvokeClient();
  InvokeClient(const InvokeClient&) = delete;
  InvokeClient& operator=(const InvokeClient&) = delete;

  void Start();
  // request.id is assigned by the client; event is the JSON event bytes.
  void Invoke(InvokeRequest request, std::string event, Callback done);
  // Tells the scheduler a function (or one revision of it) is gone ("retire"); nothing comes
  // back. Dropped when not connected: the scheduler's idle timeout is the fallback.
  void Retire(const RetireFunction& what);
  bool connected() const;
  size_t pending() const;
  void Close();  // fails every pending invocation with kUnavailable

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace geysir::proto
