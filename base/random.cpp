#include "base/random.h"

#include <openssl/rand.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "base/strings.h"

namespace geysir {

void RandomBytes(void* out, size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    int chunk = size > INT_MAX ? INT_MAX : static_cast<int>(size);
    if (RAND_bytes(p, chunk) != 1) {
      // Not an input error: see random.h. Abort loudly rather than return a guessable id.
      std::fputs("geysir: RAND_bytes failed: OpenSSL's random generator is not seeded\n", stderr);
      std::abort();
    }
    p += chunk;
    size -= static_cast<size_t>(chunk);
  }
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RandomBytes(raw.data(), raw.size());
  return HexEncode(raw);
}

std::string FormatUuidV4(uint64_t hi, uint64_t lo) {
  hi = (hi & ~uint64_t{0xF000}) | 0x4000;                      // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // RFC 4122 variant
  unsigned char b[16];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    AppendHexByte(out, b[i]);
  }
  return out;
}

std::string NewUuid() {
  uint64_t bits[2];
  RandomBytes(bits, sizeof bits);
  return FormatUuidV4(bits[0], bits[1]);
}

std::string RandomString(size_t n, std::string_view alphabet) {
  if (alphabet.empty() || alphabet.size() > 256) {
    std::fputs("geysir: RandomString needs an alphabet of 1 to 256 characters\n", stderr);
    std::abort();
  }
  // Bytes at or above `limit` are drawn again, so every character is equally likely.
  const size_t k = alphabet.size();
  const unsigned limit = 256 - (256 % k);
  std::string out;
  out.reserve(n);
  unsigned char buf[64];
  while (out.size() < n) {
    RandomBytes(buf, sizeof buf);
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out.push_back(alphabet[b % k]);
      if (out.size() == n) break;
    }
  }
  return out;
}

}  // namespace geysir
