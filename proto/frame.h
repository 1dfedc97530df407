// Frames: the internal wire format between Geysir's processes (see docs/wire-formats.md).
//
//   offset 0  u32 big-endian  header length H (1 .. kMaxFrameHeader)
//   offset 4  u32 big-endian  body length B   (0 .. kMaxFrameBody)
//   offset 8  H bytes         header: one UTF-8 JSON object, always with a "type" string
//   offset 8+H B bytes        body: opaque bytes (an event, a result payload, log text)
//
// The header carries metadata small enough to parse eagerly; the body carries payloads that may
// be large or binary and is never parsed by the framing layer.
//
// Thread safety: FrameDecoder is a value owned by one connection on one thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/status.h"

namespace geysir::proto {

inline constexpr uint32_t kMaxFrameHeader = 1u << 20;          // 1 MiB of JSON metadata
inline constexpr uint32_t kMaxFrameBody = 64u << 20;           // 64 MiB: a 50 MB zip as payload, plus slack

struct Frame {
  nlohmann::json header = nlohmann::json::object();
  std::string body;

  std::string type() const;  // header["type"] or "" when absent
};

// Serialises a frame. The header must be a JSON object.
std::string EncodeFrame(const Frame& frame);

// Incremental decoder: feed bytes as they arrive, then call Next() until it yields nothing.
// A malformed frame (bad lengths, header not a JSON object) is an error after which the
// connection must be closed: the decoder does not resynchronise.
class FrameDecoder {
 public:
  void Feed(const char* data, size_t len) { buffer_.append(data, len); }
  // A complete frame, std::nullopt when more bytes are needed, or an error.
  Result<std::optional<Frame>> Next();
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace geysir::proto
