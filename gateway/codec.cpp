#include "gateway/codec.h"

#include <array>
#include <cstdint>

namespace geysir::gateway {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Length of the valid UTF-8 sequence starting at in[i], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view in, size_t i) {
  const auto b0 = static_cast<unsigned char>(in[i]);
  if (b0 < 0x80) return 1;
  size_t len;
  uint32_t min;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > in.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(in[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

constexpr std::array<int8_t, 256> MakeB64Table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kB64Table = MakeB64Table();

}  // namespace

void AppendJsonString(std::string& out, std::string_view in) {
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  size_t i = 0;
  auto flush = [&](size_t end) {
    if (end > run) out.append(in.data() + run, end - run);
  };
  while (i < in.size()) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(in, i);
      if (len > 0) {
        i += len;
        continue;
      }
      flush(i);
      out.append("\\ufffd");
      run = ++i;
      continue;
    }
    flush(i);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
    run = ++i;
  }
  flush(i);
  out.push_back('"');
}

bool IsValidUtf8(std::string_view in) {
  size_t i = 0;
  while (i < in.size()) {
    if (static_cast<unsigned char>(in[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = Utf8SequenceLength(in, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void AppendBase64(std::string& out, std::string_view in) {
  const size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* p = out.data() + start;
  size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t{s[i]} << 16) | (uint32_t{s[i + 1]} << 8) | s[i + 2];
    *p++ = kB64[(v >> 18) & 63];
    *p++ = kB64[(v >> 12) & 63];
    *p++ = kB64[(v >> 6) & 63];
    *p++ = kB64[v & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t{s[i]} << 16;
    if (rest == 2) v |= uint32_t{s[i + 1]} << 8;
    *p++ = kB64[(v >> 18) & 63];
    *p++ = kB64[(v >> 12) & 63];
    *p++ = rest == 2 ? kB64[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
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

std::string ToLowerAscii(std::string_view in) {
  std::string out(in);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IsTextualContentType(std::string_view content_type) {
  // Media type only: drop parameters ("; charset=utf-8") and surrounding blanks.
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  if (t.size() > 5 && EqualsIgnoreCase(t.substr(0, 5), "text/")) return true;
  return EqualsIgnoreCase(t, "application/json") || EqualsIgnoreCase(t, "application/xml") ||
         EqualsIgnoreCase(t, "application/javascript");
}

}  // namespace geysir::gateway
