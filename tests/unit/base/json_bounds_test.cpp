// Bounded JSON: the depth and size of untrusted bytes are checked before nlohmann builds a value,
// without recursion; integers are read range-checked.
#include "base/json_bounds.h"

#include <catch2/catch.hpp>
#include <string>

using namespace geysir;

namespace {

std::string Nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

}  // namespace

TEST_CASE("json_bounds: values up to the depth bound parse, one level more does not", "[json_bounds]") {
  auto ok = ParseUntrustedJson(Nested(kMaxJsonDepth));
  REQUIRE(ok.ok());
  CHECK(ok->is_array());
  auto deep = ParseUntrustedJson(Nested(kMaxJsonDepth + 1));
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.status().code() == Code::kResourceExhausted);
  CHECK(ParseUntrustedJsonOrDiscarded(Nested(kMaxJsonDepth + 1)).is_discarded());
}

TEST_CASE("json_bounds: a value 10^6 levels deep is refused without recursion", "[json_bounds]") {
  // Objects and arrays alike; before the bound, dump() of such a value overflowed the stack.
  std::string objects;
  for (int i = 0; i < 1000000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(1000000, '}');
  CHECK(ParseUntrustedJson(objects).status().code() == Code::kResourceExhausted);
  CHECK(ParseUntrustedJson(Nested(1000000)).status().code() == Code::kResourceExhausted);
  // Unclosed: the scan stops at the bound, never parsed.
  CHECK(ParseUntrustedJson(std::string(1000000, '[')).status().code() == Code::kResourceExhausted);
}

TEST_CASE("json_bounds: brackets inside strings do not count", "[json_bounds]") {
  std::string s = "{\"k\":\"" + std::string(10000, '[') + "\\\"" + std::string(10000, '{') + "\"}";
  auto r = ParseUntrustedJson(s);
  REQUIRE(r.ok());
  CHECK((*r)["k"].get<std::string>().size() == 20001);
  // An escaped backslash ends the escape: the quote after it closes the string.
  auto r2 = ParseUntrustedJson("[\"\\\\\", [[1]]]");
  REQUIRE(r2.ok());
  CHECK((*r2)[1][0][0] == 1);
}

TEST_CASE("json_bounds: size bound and malformed input", "[json_bounds]") {
  JsonLimits small;
  small.max_bytes = 10;
  CHECK(ParseUntrustedJson("[1,2,3,4,5,6]", small).status().code() == Code::kResourceExhausted);
  CHECK(ParseUntrustedJson("[1,2]", small).ok());
  CHECK(ParseUntrustedJson("[1,").status().code() == Code::kInvalidArgument);
  CHECK(ParseUntrustedJson("]]]]").status().code() == Code::kInvalidArgument);
  CHECK(ParseUntrustedJson("").status().code() == Code::kInvalidArgument);
}

TEST_CASE("json_bounds: integers are read range-checked", "[json_bounds]") {
  using nlohmann::json;
  CHECK(JsonInteger<int>(json(42)) == 42);
  CHECK(JsonInteger<int>(json(200.0)) == 200);
  CHECK_FALSE(JsonInteger<int>(json(200.5)));
  CHECK_FALSE(JsonInteger<int>(json(1e300)));
  CHECK_FALSE(JsonInteger<int>(json(-1e300)));
  CHECK_FALSE(JsonInteger<int64_t>(json(9.3e18)));
  CHECK(JsonInteger<uint64_t>(json(1.8e19)) == uint64_t{18000000000000000000u});
  CHECK_FALSE(JsonInteger<uint64_t>(json(1.9e19)));
  CHECK_FALSE(JsonInteger<int>(json(std::numeric_limits<double>::quiet_NaN())));
  CHECK_FALSE(JsonInteger<int>(json(int64_t{1} << 40)));
  CHECK_FALSE(JsonInteger<uint32_t>(json(-1)));
  CHECK_FALSE(JsonInteger<int>(json(uint64_t{1} << 63)));
  CHECK_FALSE(JsonInteger<int>(json("7")));
  json m = {{"pid", 1e300}, {"child", 3}};
  CHECK(JsonIntegerField<pid_t>(m, "pid", 0) == 0);
  CHECK(JsonIntegerField<uint64_t>(m, "child", 0) == 3);
  CHECK(JsonIntegerField<int>(m, "absent", -1) == -1);
}
