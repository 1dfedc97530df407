#include "base/strings.h"

namespace geysir {
namespace {

constexpr char kLowerHex[] = "0123456789abcdef";
constexpr char kUpperHex[] = "0123456789ABCDEF";

char FoldAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (FoldAscii(a[i]) != FoldAscii(b[i])) return false;
  }
  return true;
}

std::string AsciiLower(std::string_view in) {
  std::string out(in);
  for (char& c : out) c = FoldAscii(c);
  return out;
}

void AppendHexByte(std::string& out, unsigned char byte, bool upper) {
  const char* digits = upper ? kUpperHex : kLowerHex;
  out.push_back(digits[byte >> 4]);
  out.push_back(digits[byte & 15]);
}

std::string HexEncode(const unsigned char* bytes, size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) AppendHexByte(out, bytes[i]);
  return out;
}

std::string HexEncode(std::string_view bytes) {
  return HexEncode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace geysir
