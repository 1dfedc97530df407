#include "proto/frame.h"

#include <catch2/catch.hpp>
#include <string>

using geysir::proto::EncodeFrame;
using geysir::proto::Frame;
using geysir::proto::FrameDecoder;

TEST_CASE("frames round-trip when fed one byte at a time", "[frame]") {
  Frame a;
  a.header = {{"type", "invoke"}, {"id", 1}};
  a.body = std::string("\0binary\xff", 8);
  Frame b;
  b.header = {{"type", "result"}};
  std::string wire = EncodeFrame(a) + EncodeFrame(b);

  FrameDecoder decoder;
  std::vector<Frame> got;
  for (char c : wire) {
    decoder.Feed(&c, 1);
    while (true) {
      auto next = decoder.Next();
      REQUIRE(next.ok());
      if (!next->has_value()) break;
      got.push_back(std::move(**next));
    }
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0].type() == "invoke");
  CHECK(got[0].header["id"] == 1);
  CHECK(got[0].body == a.body);
  CHECK(got[1].type() == "result");
  CHECK(got[1].body.empty());
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("a frame with an oversized body length is refused", "[frame]") {
  const char wire[] = {0, 0, 0, 2, 0x7f, 0, 0, 0, '{', '}'};
  FrameDecoder decoder;
  decoder.Feed(wire, sizeof wire);
  auto next = decoder.Next();
  REQUIRE_FALSE(next.ok());
  CHECK(next.status().message().find("body length") != std::string::npos);
}

TEST_CASE("a frame whose header is not a JSON object is refused", "[frame]") {
  std::string header = "[1,2]";
  std::string wire = std::string("\0\0\0\x05\0\0\0\0", 8) + header;
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  auto next = decoder.Next();
  REQUIRE_FALSE(next.ok());
}

TEST_CASE("a zero-length header is refused", "[frame]") {
  std::string wire(8, '\0');
  FrameDecoder decoder;
  decoder.Feed(wire.data(), wire.size());
  REQUIRE_FALSE(decoder.Next().ok());
}

TEST_CASE("frame: a header nested deeper than the JSON bound is a malformed frame", "[frame]") {
  std::string header = "{\"type\":\"result\",\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  std::string wire;
  for (uint32_t v : {static_cast<uint32_t>(header.size()), 0u}) {
    for (int shift = 24; shift >= 0; shift -= 8) wire.push_back(static_cast<char>((v >> shift) & 0xff));
  }
  wire += header;
  FrameDecoder d;
  d.Feed(wire.data(), wire.size());
  auto next = d.Next();
  CHECK_FALSE(next.ok());
}
