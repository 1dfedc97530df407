// The internal frame decoder (proto/frame.h), as the scheduler and control meet it: bytes from
// a peer arrive in pieces of any size, and every decoded header is serialised again (logged,
// forwarded), which is where a hostile nesting depth would bite.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets/fuzz_input.h"
#include "proto/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  geysir::fuzz::FuzzInput in(data, size);
  // The first byte picks how the stream is cut: 0 feeds it whole, n feeds n bytes at a time.
  size_t piece = in.Byte();
  std::string_view stream = in.Rest();
  if (piece == 0) piece = stream.size() + 1;
  geysir::proto::FrameDecoder decoder;
  for (size_t at = 0; at < stream.size(); at += piece) {
    std::string_view chunk = stream.substr(at, piece);
    decoder.Feed(chunk.data(), chunk.size());
    for (;;) {
      auto next = decoder.Next();
      if (!next.ok()) return 0;  // the connection would be closed here
      if (!next->has_value()) break;
      const geysir::proto::Frame& frame = **next;
      (void)frame.type();
      (void)frame.header.dump();
      // A decoded frame encodes back to a frame the decoder accepts.
      geysir::proto::FrameDecoder again;
      std::string encoded = geysir::proto::EncodeFrame(frame);
      again.Feed(encoded.data(), encoded.size());
      auto round = again.Next();
      if (!round.ok() || !round->has_value()) __builtin_trap();
    }
  }
  return 0;
}
