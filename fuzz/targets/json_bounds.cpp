// The bounded parse every daemon uses for untrusted JSON (base/json_bounds.h). Its promise is
// the invariant checked here: a value it accepts nests no deeper than the bound it was given,
// so the recursive walks that follow (dump, ==, copies) stay within a small stack.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "fuzz/targets/fuzz_input.h"
#include "base/json_bounds.h"

namespace {

size_t Depth(const nlohmann::json& v) {
  size_t deepest = 0;
  if (v.is_structured()) {
    for (const auto& child : v) deepest = std::max(deepest, Depth(child));
    return deepest + 1;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  geysir::fuzz::FuzzInput in(data, size);
  // The first byte picks the bound: 0..63 levels, so the fuzzer reaches it with small inputs.
  geysir::JsonLimits limits;
  limits.max_depth = in.Byte() % 64;
  auto parsed = geysir::ParseUntrustedJson(in.Rest(), limits);
  if (!parsed.ok()) return 0;
  if (Depth(*parsed) > limits.max_depth) __builtin_trap();
  (void)parsed->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto n = geysir::JsonInteger<int32_t>(*parsed)) (void)*n;
  return 0;
}
