#include "gateway/codec.h"

#include <catch2/catch.hpp>
#include <vector>
#include <nlohmann/json.hpp>

using namespace geysir;
using namespace geysir::gateway;

TEST_CASE("JSON strings are escaped and invalid UTF-8 repaired", "[codec]") {
  std::string out;
  AppendJsonString(out, std::string("a\"b\\c\n\t\x01 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 20));
  auto parsed = nlohmann::json::parse(out);
  CHECK(parsed.get<std::string>() == std::string("a\"b\\c\n\t\x01 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 20));

  out.clear();
  AppendJsonString(out, std::string("x\xff" "y\xc3", 4));  // stray byte, truncated sequence
  CHECK(out == "\"x\\ufffdy\\ufffd\"");
  out.clear();
  AppendJsonString(out, "\xed\xa0\x80");  // a UTF-16 surrogate encoded in UTF-8 is not UTF-8
  CHECK(out == "\"\\ufffd\\ufffd\\ufffd\"");
  CHECK(IsValidUtf8("h\xc3\xa9llo"));
  CHECK_FALSE(IsValidUtf8("\xc0\xaf"));  // overlong '/'
}

TEST_CASE("base64 round-trips and rejects garbage", "[codec]") {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
    std::string enc;
    AppendBase64(enc, s);
    auto dec = DecodeBase64(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == s);
  }
  std::string enc;
  AppendBase64(enc, "foobar");
  CHECK(enc == "Zm9vYmFy");
  CHECK(DecodeBase64("Zm9vYg").value() == "foob");  // padding optional
  CHECK_FALSE(DecodeBase64("Zm9v!mFy").has_value());
  CHECK_FALSE(DecodeBase64("Z").has_value());
  CHECK_FALSE(DecodeBase64("Zm9=vYg=").has_value());
}

TEST_CASE("textual content types follow AWS's split", "[codec]") {
  CHECK(IsTextualContentType("text/plain"));
  CHECK(IsTextualContentType("Text/HTML; charset=utf-8"));
  CHECK(IsTextualContentType("application/json"));
  CHECK(IsTextualContentType(" application/json ; charset=UTF-8"));
  CHECK(IsTextualContentType("application/xml"));
  CHECK(IsTextualContentType("application/javascript"));
  CHECK_FALSE(IsTextualContentType("application/x-www-form-urlencoded"));
  CHECK_FALSE(IsTextualContentType("application/octet-stream"));
  CHECK_FALSE(IsTextualContentType("image/png"));
  CHECK_FALSE(IsTextualContentType(""));
  CHECK_FALSE(IsTextualContentType("text/"));
}

TEST_CASE("percent decoding", "[codec]") {
  CHECK(PercentDecode("a%20b+c", true) == "a b c");
  CHECK(PercentDecode("a%20b+c", false) == "a b+c");
  CHECK(PercentDecode("100%", true) == "100%");
  CHECK(PercentDecode("%zz%4", true) == "%zz%4");
  CHECK(PercentDecode("%E2%82%AC", true) == "\xe2\x82\xac");
}
