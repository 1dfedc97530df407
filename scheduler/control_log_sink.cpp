#include "scheduler/control_log_sink.h"

#include <unistd.h>

#include "base/log.h"
#include "base/random.h"

namespace geysir::scheduler {

namespace {

size_t SizeOf(const proto::LogBatch& b) {
  size_t n = 128 + b.function_name.size() + b.log_stream.size() + b.request_id.size();
  for (const auto& e : b.events) n += 32 + e.message.size();
  return n;
}

// An upper bound of a message's size once JSON-escaped by EncodeFrame: a control character
// becomes a six-byte escape, a quote or backslash two bytes, a byte of invalid UTF-8 the three
// bytes of U+FFFD.
size_t EncodedSize(std::string_view s) {
  size_t n = 0;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    n += c < 0x20 ? 6 : (c == '"' || c == '\\') ? 2 : c >= 0x80 ? 3 : 1;
  }
  return n;
}

// Cuts `message` so that its encoded size, marker included, stays within `max_encoded`, at a
// UTF-8 character boundary.
void Truncate(std::string& message, size_t max_encoded) {
  const std::string marker = " [geysir: line of " + std::to_string(message.size()) + " bytes truncated]";
  const size_t budget = max_encoded > marker.size() ? max_encoded - marker.size() : 0;
  size_t keep = 0;
  size_t used = 0;
  while (keep < message.size()) {
    const size_t c = EncodedSize(std::string_view(message).substr(keep, 1));
    if (used + c > budget) break;
    used += c;
    ++keep;
  }
  while (keep > 0 && keep < message.size() && (static_cast<unsigned char>(message[keep]) & 0xC0) == 0x80) --keep;
  message.resize(keep);
  message += marker;
}

// 128 random bits, hex: unique per scheduler process without any coordination.
std::string NewSenderId() { return RandomHex(16); }

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
      [this](const Status&) { OnConnectionLost(); });
}

ControlLogSink::~ControlLogSink() { Close(); }

void ControlLogSink::Start() { client_->Start(); }

void ControlLogSink::Close() {
  if (client_) client_->Close();
}

void ControlLogSink::Emit(proto::LogBatch batch) { EmitDurable(std::move(batch), {}); }

void ControlLogSink::EmitDurable(proto::LogBatch batch, std::function<void()> durable) {
  if (batch.events.empty() && batch.outcome.empty()) {
    if (durable) durable();
    return;
  }
  // Split by encoded size, so no frame header comes near control's limit. Every part carries
  // the batch's names; only the last carries the outcome (counted once, with the last line).
  size_t used = 0;
  proto::LogBatch part;
  auto start_part = [&] {
    part = proto::LogBatch{};
    part.function_name = batch.function_name;
    part.version = batch.version;
    part.log_stream = batch.log_stream;
    part.request_id = batch.request_id;
    used = 0;
  };
  start_part();
  for (auto& e : batch.events) {
    size_t size = EncodedSize(e.message);
    if (size > kMaxEventBytes) {
      Truncate(e.message, kMaxEventBytes);
      size = EncodedSize(e.message);
    }
    size += 32;  // {"ts":…,"msg":""}
    if (!part.events.empty() && used + size > kMaxBatchHeaderBytes) {
      Push(std::move(part), used, {});
      start_part();
    }
    used += size;
    part.events.push_back(std::move(e));
  }
  part.outcome = std::move(batch.outcome);
  part.duration_ms = batch.duration_ms;
  Push(std::move(part), used, std::move(durable));
}

std::function<void()> ControlLogSink::PopFront() {
  buffered_bytes_ -= unacked_.front().bytes;
  std::function<void()> cb = std::move(unacked_.front().durable);
  unacked_.pop_front();
  return cb;
}

void ControlLogSink::Push(proto::LogBatch batch, size_t encoded, std::function<void()> durable) {
  batch.sender = sender_;
  batch.seq = next_seq_++;
  const size_t size = SizeOf(batch);
  // The names and the rest of the object count too: a frame of many small batches must stay
  // as far from control's header limit as one large one.
  encoded += 192 + EncodedSize(batch.function_name) + EncodedSize(batch.version) + EncodedSize(batch.log_stream) +
             EncodedSize(batch.request_id) + EncodedSize(batch.outcome) + sender_.size();
  unacked_.push_back(Pending{std::move(batch), size, encoded, std::move(durable)});
  buffered_bytes_ += size;
  // Callbacks run after the queue is consistent: they answer invocations, which may emit more.
  std::vector<std::function<void()>> given_up;
  while (buffered_bytes_ > max_buffered_bytes_ && unacked_.size() > 1) {
    // Oldest first: recent logs are the ones someone is looking at.
    given_up.push_back(PopFront());
    if (sent_ > 0) --sent_;
    ++dropped_;
  }
  SendPending();
  for (auto& cb : given_up) {
    if (cb) cb();
  }
}

void ControlLogSink::OnConnectionLost() {
  // Control closes the connection on a frame it cannot take. If the oldest batch sent is the
  // same at every loss, it may be the reason: after kMaxLossesPerBatch it is dropped rather than
  // resent forever (a control merely restarting that often loses at most that one batch).
  if (sent_ > 0 && !unacked_.empty()) {
    const uint64_t front = unacked_.front().batch.seq;
    losses_ = front == loss_seq_ ? losses_ + 1 : 1;
    loss_seq_ = front;
    if (losses_ >= kMaxLossesPerBatch) {
      std::function<void()> cb = PopFront();
      ++rejected_;
      losses_ = 0;
      log::Warn("log_batches_rejected", {{"count", 1}, {"total", rejected_}, {"seq", front},
                                         {"why", "control closed the connection every time this batch was sent"}});
      sent_ = 0;
      if (cb) cb();
      return;
    }
  }
  sent_ = 0;
}

void ControlLogSink::SendPending() {
  // One frame in flight at a time: what is emitted meanwhile waits for its acknowledgement and
  // then leaves as one frame, stored in one transaction.
  if (sent_ > 0 || unacked_.empty() || !client_->connected()) return;
  // The header of proto::LogBatches, written straight from the kept batches (no copy of them
  // first: they stay here until acknowledged).
  proto::Frame frame;
  nlohmann::json& batches = frame.header["batches"] = nlohmann::json::array();
  size_t n = 0;
  size_t encoded = 0;
  while (n < unacked_.size() && (n == 0 || encoded + unacked_[n].encoded <= kMaxFrameBatchBytes)) {
    encoded += unacked_[n].encoded;
    batches.push_back(unacked_[n].batch);
    ++n;
  }
  frame.header["type"] = proto::kMsgLogs;
  // A write can fail at once and drop the connection inside Send (its handler then resets
  // sent_, and Send says so): count the batches as sent only when Send succeeded.
  if (!client_->Send(frame).ok()) return;
  sent_ = n;
  ++frames_sent_;
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
  std::vector<std::function<void()>> stored;
  while (sent_ > 0 && !unacked_.empty() && unacked_.front().batch.seq <= ack.seq) {
    stored.push_back(PopFront());
    --sent_;
  }
  // The frame in flight is done: what waited for it goes now, before the callbacks (they answer
  // invocations, whose batches then join the next frame).
  SendPending();
  for (auto& cb : stored) {
    if (cb) cb();
  }
}

}  // namespace geysir::scheduler
