#include "gateway/codec.h"

#include <array>
#include <cstdint>

#include "base/strings.h"

namespace geysir::gateway {
namespace {

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
      default:
        out.append("\\u00");
        AppendHexByte(out, c);
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
