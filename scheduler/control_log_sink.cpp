#include "scheduler/control_log_sink.h"

#include <openssl/rand.h>
#include <unistd.h>

#include "proto/log.h"

namespace geysir::scheduler {

namespace {

size_t SizeOf(const proto::LogBatch& b) {
  size_t n = 128 + b.function_name.size() + b.log_stream.size() + b.request_id.size();
  for (const auto& e : b.events) n += 32 + e.message.size();
  return n;
}

// 128 random bits, hex: unique per scheduler process without any coordination.
std::string NewSenderId() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    // Never expected; a pid + time id still differs between restarts.
    return "pid" + std::to_string(::getpid()) + "-" + std::to_string(uv_hrtime());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char c : raw) {
    id += kHex[c >> 4];
    id += kHex[c & 15];
  }
  return id;
}

}  // namespace

ControlLogSink::ControlLogSink(uv_loop_t* loop, std::string control_socket, size_t max_buffered_bytes)
    : sender_(NewSenderId()), max_buffered_bytes_(max_buffered_bytes) {
  client_ = std::make_unique<proto::FrameClient>(
      loop, std::move(control_socket), [this](proto::Frame&& f) { OnFrame(std::move(f)); },
      [this] {
        if (dropped_ > dropped_reported_) {
          log::Warn("log_batches_dropped", {{"count", dropped_ - dropped_reported_},
                                            {"why", "control was unreachable and the buffer was full"}});
          dropped_reported_ = dropped_;
        }
        SendPending();
      },
      // Whatever went out on the lost connection and was not acknowledged goes again.
      [this](const Status&) { sent_ = 0; });
}

ControlLogSink::~ControlLogSink() { Close(); }

void ControlLogSink::Start() { client_->Start(); }

void ControlLogSink::Close() {
  if (client_) client_->Close();
}

void ControlLogSink::Emit(proto::LogBatch batch) {
  if (batch.events.empty() && batch.outcome.empty()) return;
  batch.sender = sender_;
  batch.seq = next_seq_++;
  const size_t size = SizeOf(batch);
  unacked_.push_back(Pending{batch.seq, proto::MakeFrame(proto::kMsgLogs, batch), size});
  buffered_bytes_ += size;
  while (buffered_bytes_ > max_buffered_bytes_ && unacked_.size() > 1) {
    // Oldest first: recent logs are the ones someone is looking at.
    buffered_bytes_ -= unacked_.front().bytes;
    unacked_.pop_front();
    if (sent_ > 0) --sent_;
    ++dropped_;
  }
  SendPending();
}

void ControlLogSink::SendPending() {
  while (sent_ < unacked_.size() && client_->connected()) {
    // A write can fail at once and drop the connection inside Send (its handler then resets
    // sent_, and Send says so): count the frame as sent only when Send succeeded.
    if (!client_->Send(unacked_[sent_].frame).ok()) break;
    ++sent_;
  }
}

void ControlLogSink::OnFrame(proto::Frame&& frame) {
  if (frame.type() != proto::kMsgLogsAck) return;
  proto::LogsAck ack;
  try {
    ack = frame.header.get<proto::LogsAck>();
  } catch (const std::exception& e) {
    log::Warn("bad_logs_ack", {{"what", e.what()}});
    return;
  }
  if (ack.sender != sender_) return;
  // Acks are cumulative; only what was sent on this connection can be acknowledged by it.
  while (sent_ > 0 && !unacked_.empty() && unacked_.front().seq <= ack.seq) {
    buffered_bytes_ -= unacked_.front().bytes;
    unacked_.pop_front();
    --sent_;
  }
}

}  // namespace geysir::scheduler
