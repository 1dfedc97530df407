#include "scheduler/control_log_sink.h"

#include "proto/log.h"

namespace geysir::scheduler {

namespace {

size_t SizeOf(const proto::LogBatch& b) {
  size_t n = 128 + b.function_name.size() + b.log_stream.size() + b.request_id.size();
  for (const auto& e : b.events) n += 32 + e.message.size();
  return n;
}

}  // namespace

ControlLogSink::ControlLogSink(uv_loop_t* loop, std::string control_socket, size_t max_buffered_bytes)
    : max_buffered_bytes_(max_buffered_bytes) {
  client_ = std::make_unique<proto::FrameClient>(
      loop, std::move(control_socket), [](proto::Frame&&) {}, [this] { Flush(); }, [](const Status&) {});
}

ControlLogSink::~ControlLogSink() { Close(); }

void ControlLogSink::Start() { client_->Start(); }

void ControlLogSink::Close() {
  if (client_) client_->Close();
}

void ControlLogSink::Emit(proto::LogBatch batch) {
  if (batch.events.empty()) return;
  const size_t size = SizeOf(batch);
  proto::Frame frame = proto::MakeFrame(proto::kMsgLogs, batch);
  if (buffer_.empty() && client_->connected() && client_->Send(frame).ok()) return;
  buffer_.push_back(Pending{std::move(frame), size});
  buffered_bytes_ += size;
  while (buffered_bytes_ > max_buffered_bytes_ && buffer_.size() > 1) {
    // Oldest first: recent logs are the ones someone is looking at.
    buffered_bytes_ -= buffer_.front().bytes;
    buffer_.pop_front();
    ++dropped_;
  }
}

void ControlLogSink::Flush() {
  while (!buffer_.empty() && client_->connected()) {
    if (!client_->Send(buffer_.front().frame).ok()) break;
    buffered_bytes_ -= buffer_.front().bytes;
    buffer_.pop_front();
  }
  if (dropped_ > dropped_reported_) {
    log::Warn("log_batches_dropped", {{"count", dropped_ - dropped_reported_},
                                      {"why", "control was unreachable and the buffer was full"}});
    dropped_reported_ = dropped_;
  }
}

}  // namespace geysir::scheduler
