// ControlLogSink: ships the scheduler's LogBatches to control as "logs" frames over one
// FrameClient to control.sock, at least once. Every batch carries this process's sender id and
// a sequence number; it stays in a bounded buffer until control acknowledges it ("logs_ack",
// sent after the commit), and everything unacknowledged is sent again, in order, when the
// connection comes back — so a control restarted by SIGKILL loses no line, and control stores a
// resent batch once (proto::LogBatch). When the buffer overflows (control down for long) the
// oldest batches are dropped and counted, and the count is logged: logs must never slow
// invocations down or grow the scheduler without bound.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "proto/frame_channel.h"
#include "scheduler/scheduler.h"

namespace geysir::scheduler {

class ControlLogSink final : public LogSink {
 public:
  ControlLogSink(uv_loop_t* loop, std::string control_socket, size_t max_buffered_bytes = 8u << 20);
  ~ControlLogSink() override;
  void Start();
  void Close();
  void Emit(proto::LogBatch batch) override;

  uint64_t dropped() const { return dropped_; }
  // Batches not yet acknowledged by control (sent or not).
  size_t buffered() const { return unacked_.size(); }

 private:
  void SendPending();
  void OnFrame(proto::Frame&& frame);

  std::unique_ptr<proto::FrameClient> client_;
  const std::string sender_;  // random per process: control keys its "stored up to" mark by it
  uint64_t next_seq_ = 1;
  struct Pending {
    uint64_t seq;
    proto::Frame frame;
    size_t bytes;
  };
  std::deque<Pending> unacked_;  // in seq order
  size_t sent_ = 0;              // how many at the front of unacked_ went out on this connection
  size_t buffered_bytes_ = 0;
  size_t max_buffered_bytes_;
  uint64_t dropped_ = 0;
  uint64_t dropped_reported_ = 0;
};

}  // namespace geysir::scheduler
