#include "base/base64.h"

#include <array>
#include <cstdint>

namespace geysir {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeB64Table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kB64Table = MakeB64Table();

void Encode(std::string& out, std::string_view in, const char* alphabet, bool pad) {
  const size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* p = out.data() + start;
  size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t{s[i]} << 16) | (uint32_t{s[i + 1]} << 8) | s[i + 2];
    *p++ = alphabet[(v >> 18) & 63];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = alphabet[(v >> 6) & 63];
    *p++ = alphabet[v & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t{s[i]} << 16;
    if (rest == 2) v |= uint32_t{s[i + 1]} << 8;
    *p++ = alphabet[(v >> 18) & 63];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
  if (!pad) {
    while (out.size() > start && out.back() == '=') out.pop_back();
  }
}

}  // namespace

void AppendBase64(std::string& out, std::string_view in) { Encode(out, in, kB64, /*pad=*/true); }

std::string Base64Encode(std::string_view in) {
  std::string out;
  Encode(out, in, kB64, /*pad=*/true);
  return out;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  Encode(out, in, kB64Url, /*pad=*/false);
  return out;
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  size_t len = in.size();
  // Up to two '=' of padding, only at the end.
  size_t pad = 0;
  while (len > 0 && in[len - 1] == '=' && pad < 2) --len, ++pad;
  if (pad > 0 && in.size() % 4 != 0) return std::nullopt;
  if (len % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(len / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; ++i) {
    int8_t v = kB64Table[static_cast<unsigned char>(in[i])];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace geysir
