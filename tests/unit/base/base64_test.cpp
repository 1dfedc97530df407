// base/base64.h: the standard and URL-safe encodings, and the strict decoder.
#include "base/base64.h"

#include <catch2/catch.hpp>
#include <string>

using namespace geysir;

TEST_CASE("base64: standard encoding pads, URL-safe encoding does not", "[base64]") {
  CHECK(Base64Encode("") == "");
  CHECK(Base64Encode("f") == "Zg==");
  CHECK(Base64Encode("fo") == "Zm8=");
  CHECK(Base64Encode("foo") == "Zm9v");
  CHECK(Base64Encode(std::string("\xfb\xff\xfe", 3)) == "+//+");
  CHECK(Base64UrlEncode("") == "");
  CHECK(Base64UrlEncode("f") == "Zg");
  CHECK(Base64UrlEncode("fo") == "Zm8");
  CHECK(Base64UrlEncode("foo") == "Zm9v");
  CHECK(Base64UrlEncode(std::string("\xfb\xff\xfe", 3)) == "-__-");
  std::string appended = "x";
  AppendBase64(appended, "fo");
  CHECK(appended == "xZm8=");
}

TEST_CASE("base64: decoding round-trips and refuses what is not base64", "[base64]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = DecodeBase64(Base64Encode(all.substr(0, n)));
    REQUIRE(back.has_value());
    CHECK(*back == all.substr(0, n));
  }
  CHECK(DecodeBase64("Zg") == std::optional<std::string>("f"));  // padding is optional
  CHECK_FALSE(DecodeBase64("Zg=").has_value());                  // but must complete a quantum
  CHECK_FALSE(DecodeBase64("Z").has_value());
  CHECK_FALSE(DecodeBase64("Zm 9v").has_value());
  CHECK_FALSE(DecodeBase64("Zm=v").has_value());
  CHECK_FALSE(DecodeBase64("-__-").has_value());  // the URL-safe alphabet is not accepted here
}
