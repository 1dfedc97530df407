// ControlLogSink: ships the scheduler's LogBatches to control as "logs" frames over one
// FrameClient to control.sock, at least once. Every batch carries this process's sender id and
// a sequence number; it stays in a bounded buffer until control acknowledges it ("logs_ack",
// sent after the commit), and everything unacknowledged is sent again, in order, when the
// connection comes back — so a control restarted by SIGKILL loses no line, and control stores a
// resent batch once (proto::LogBatch).
//
// Group commit: at most one frame is in flight. A batch emitted while nothing is in flight goes
// out at once (one invocation's lines reach control within milliseconds); batches emitted while
// a frame awaits its acknowledgement wait and leave together, in seq order, as one frame
// (proto::LogBatches, up to kMaxFrameBatchBytes) when it comes. Control stores a frame in one
// transaction, so under load the cost of a commit is shared by every invocation that finished
// during the previous one. When the buffer overflows (control down for long) the
// oldest batches are dropped and counted, and the count is logged: logs must never slow
// invocations down or grow the scheduler without bound.
//
// No batch can poison the pipeline: the events ride in the frame header, which control refuses
// over proto::kMaxFrameHeader (closing the connection), so a batch whose encoded events exceed
// kMaxBatchHeaderBytes is split into several (the invocation's outcome rides on the last, so it
// is counted once) and a line too long for one is truncated with a marker. A batch that is
// still never acknowledged — the connection is lost kMaxLossesPerBatch times in a row while it
// is the oldest one sent — is dropped and counted as `log_batches_rejected`, never resent
// forever.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/frame_channel.h"
#include "scheduler/scheduler.h"

namespace geysir::scheduler {

class ControlLogSink final : public LogSink {
 public:
  // The encoded events of one batch: a quarter of control's frame header limit, leaving room for
  // the rest of the header.
  static constexpr size_t kMaxBatchHeaderBytes = 256u << 10;
  // One line's encoded bytes; longer lines are cut (at a UTF-8 boundary) and marked.
  static constexpr size_t kMaxEventBytes = 128u << 10;
  static constexpr int kMaxLossesPerBatch = 5;
  // The encoded events of the batches coalesced into one frame (a frame always carries at least
  // one batch): like kMaxBatchHeaderBytes, well inside control's frame header limit.
  static constexpr size_t kMaxFrameBatchBytes = 256u << 10;

  ControlLogSink(uv_loop_t* loop, std::string control_socket, size_t max_buffered_bytes = 8u << 20);
  ~ControlLogSink() override;
  void Start();
  void Close();
  void Emit(proto::LogBatch batch) override;
  // `durable` runs when control acknowledged the batch (all its parts), or when it was dropped
  // or rejected (counted); never if this sink is destroyed first.
  void EmitDurable(proto::LogBatch batch, std::function<void()> durable) override;

  uint64_t dropped() const { return dropped_; }
  uint64_t rejected() const { return rejected_; }
  // Batches not yet acknowledged by control (sent or not).
  size_t buffered() const { return unacked_.size(); }
  // Frames sent so far (tests: batches emitted during a round trip share one).
  uint64_t frames_sent() const { return frames_sent_; }

 private:
  void SendPending();
  void Push(proto::LogBatch batch, size_t encoded, std::function<void()> durable);
  // Removes the oldest batch (acknowledged, dropped or rejected) and returns its callback.
  std::function<void()> PopFront();
  void OnConnectionLost();
  void OnFrame(proto::Frame&& frame);

  std::unique_ptr<proto::FrameClient> client_;
  const std::string sender_;  // random per process: control keys its "stored up to" mark by it
  uint64_t next_seq_ = 1;
  struct Pending {
    proto::LogBatch batch;          // encoded when sent: a resend after a reconnect may group differently
    size_t bytes;                   // counted against max_buffered_bytes_
    size_t encoded;                 // upper bound of its events' encoded size
    std::function<void()> durable;  // on the last part of an emitted batch
  };
  std::deque<Pending> unacked_;  // in seq order
  // How many at the front of unacked_ went out on this connection: the frame in flight. Only
  // when it is acknowledged (or the connection is lost) does the next frame go.
  size_t sent_ = 0;
  uint64_t frames_sent_ = 0;
  size_t buffered_bytes_ = 0;
  size_t max_buffered_bytes_;
  uint64_t dropped_ = 0;
  uint64_t dropped_reported_ = 0;
  uint64_t rejected_ = 0;
  // The oldest sent batch at the last connection losses, and how many losses in a row it saw.
  uint64_t loss_seq_ = 0;
  int losses_ = 0;
};

}  // namespace geysir::scheduler
