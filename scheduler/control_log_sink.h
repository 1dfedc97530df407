// ControlLogSink: ships the scheduler's LogBatches to control as "logs" frames over one
// FrameClient to control.sock. While control is down (restarting) batches wait in a bounded
// buffer; when it overflows the oldest are dropped and counted, and the count is logged when
// the connection comes back. Delivery is best-effort: logs must never slow invocations down.
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
  size_t buffered() const { return buffer_.size(); }

 private:
  void Flush();

  std::unique_ptr<proto::FrameClient> client_;
  struct Pending {
    proto::Frame frame;
    size_t bytes;
  };
  std::deque<Pending> buffer_;
  size_t buffered_bytes_ = 0;
  size_t max_buffered_bytes_;
  uint64_t dropped_ = 0;
  uint64_t dropped_reported_ = 0;
};

}  // namespace geysir::scheduler
