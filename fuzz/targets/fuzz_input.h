// FuzzInput: carves typed values out of a fuzzer's byte string, front to back, so one input
// can drive a structured call (an HTTP request's method, headers and body; an option set).
// Reading past the end yields empty or zero values, never an error: every input is valid.
//
// Thread safety: a value owned by one fuzz iteration.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace geysir::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : bytes_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return bytes_.empty(); }

  uint8_t Byte() {
    if (bytes_.empty()) return 0;
    auto b = static_cast<uint8_t>(bytes_.front());
    bytes_.remove_prefix(1);
    return b;
  }

  // Up to the next '\n' (not included), or the rest: seeds stay readable as text lines.
  std::string_view Line() {
    size_t nl = bytes_.find('\n');
    std::string_view line = bytes_.substr(0, nl);
    bytes_.remove_prefix(nl == std::string_view::npos ? bytes_.size() : nl + 1);
    return line;
  }

  std::string_view Rest() {
    std::string_view rest = bytes_;
    bytes_ = {};
    return rest;
  }

 private:
  std::string_view bytes_;
};

}  // namespace geysir::fuzz
