#include "proto/frame.h"

#include "base/json_bounds.h"

namespace geysir::proto {
namespace {

void PutU32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

uint32_t GetU32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

}  // namespace

std::string Frame::type() const {
  auto it = header.find("type");
  if (it == header.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string EncodeFrame(const Frame& frame) {
  std::string header = frame.header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(8 + header.size() + frame.body.size());
  PutU32(out, static_cast<uint32_t>(header.size()));
  PutU32(out, static_cast<uint32_t>(frame.body.size()));
  out += header;
  out += frame.body;
  return out;
}

Result<std::optional<Frame>> FrameDecoder::Next() {
  const size_t avail = buffer_.size() - consumed_;
  if (avail < 8) return std::optional<Frame>();
  const char* p = buffer_.data() + consumed_;
  uint32_t header_len = GetU32(p);
  uint32_t body_len = GetU32(p + 4);
  if (header_len == 0 || header_len > kMaxFrameHeader) {
    return Status::Invalid("frame header length " + std::to_string(header_len) + " out of range");
  }
  if (body_len > kMaxFrameBody) {
    return Status::Invalid("frame body length " + std::to_string(body_len) + " exceeds limit");
  }
  if (avail < 8ull + header_len + body_len) return std::optional<Frame>();
  Frame frame;
  // Headers come from peers that relay untrusted bytes (a child's result header, a log batch):
  // bounded, so no header is deeper than anything that later dumps it can handle.
  frame.header = ParseUntrustedJsonOrDiscarded(std::string_view(p + 8, header_len));
  if (!frame.header.is_object()) return Status::Invalid("frame header is not a bounded JSON object");
  frame.body.assign(p + 8 + header_len, body_len);
  consumed_ += 8ull + header_len + body_len;
  // Compact once the consumed prefix dominates, keeping appends amortised O(1).
  if (consumed_ > (1u << 16) && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  } else if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return std::optional<Frame>(std::move(frame));
}

}  // namespace geysir::proto
