// base/strings.h and base/random.h: case folding, hex, and the random identifiers.
#include "base/strings.h"

#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "base/random.h"

using namespace geysir;

TEST_CASE("strings: ASCII case folding leaves every other byte alone", "[strings]") {
  CHECK(EqualsIgnoreCase("Content-Type", "content-TYPE"));
  CHECK_FALSE(EqualsIgnoreCase("Content-Type", "Content-Typ"));
  CHECK_FALSE(EqualsIgnoreCase("a", "b"));
  CHECK(EqualsIgnoreCase("", ""));
  // 0xC4 and 0xE4 are upper and lower 'A-umlaut' in Latin-1: not ASCII, so not folded.
  CHECK_FALSE(EqualsIgnoreCase("\xC4", "\xE4"));
  CHECK(AsciiLower("X-Amz-Date: \xC4Z") == "x-amz-date: \xC4z");
}

TEST_CASE("strings: hex encoding and digits", "[strings]") {
  CHECK(HexEncode(std::string("\x00\x01\xab\xff", 4)) == "0001abff");
  CHECK(HexEncode("") == "");
  std::string upper;
  AppendHexByte(upper, 0x2f, /*upper=*/true);
  CHECK(upper == "2F");
  CHECK(HexDigitValue('0') == 0);
  CHECK(HexDigitValue('a') == 10);
  CHECK(HexDigitValue('F') == 15);
  CHECK(HexDigitValue('g') == -1);
  CHECK(HexDigitValue('/') == -1);
}

TEST_CASE("random: UUIDs are version 4 and differ", "[random]") {
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewUuid();
    REQUIRE(std::regex_match(id, v4));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
  // Caller-drawn bits get the version and variant forced in the right places.
  CHECK(FormatUuidV4(~uint64_t{0}, ~uint64_t{0}) == "ffffffff-ffff-4fff-bfff-ffffffffffff");
  CHECK(FormatUuidV4(0, 0) == "00000000-0000-4000-8000-000000000000");
}

TEST_CASE("random: hex and alphabet strings have the asked length and alphabet", "[random]") {
  CHECK(RandomHex(16).size() == 32);
  CHECK(RandomHex(0).empty());
  CHECK(RandomHex(16) != RandomHex(16));
  // Every letter of a 3-letter alphabet appears about a third of the time (10,000 +- 1,000 is
  // more than 20 standard deviations), and nothing outside the alphabet does.
  std::string s = RandomString(30000, "abc");
  REQUIRE(s.size() == 30000);
  std::map<char, int> counts;
  for (char c : s) ++counts[c];
  REQUIRE(counts.size() == 3);
  for (const auto& [c, n] : counts) {
    CHECK((c == 'a' || c == 'b' || c == 'c'));
    CHECK(n > 9000);
    CHECK(n < 11000);
  }
}
