// aws-chunked decoding and S3 checksums: see s3_chunked.h.
#include "control/services/s3/s3_chunked.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <array>
#include <cstdint>

#include "base/base64.h"
#include "net/sigv4.h"

namespace geysir::control::s3 {
namespace {

namespace sigv4 = net::sigv4;

constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool SameHex(std::string_view a, std::string_view b) {
  std::string la = Lower(a);
  return la.size() == b.size() && CRYPTO_memcmp(la.data(), b.data(), b.size()) == 0;
}

std::optional<ChunkError> Malformed(std::string message) { return ChunkError{false, std::move(message)}; }
std::optional<ChunkError> BadSignature(std::string message) { return ChunkError{true, std::move(message)}; }

// Reads one CRLF-terminated line starting at *pos.
std::optional<std::string_view> Line(std::string_view body, size_t* pos) {
  size_t end = body.find("\r\n", *pos);
  if (end == std::string_view::npos) return std::nullopt;
  std::string_view line = body.substr(*pos, end - *pos);
  *pos = end + 2;
  return line;
}

template <typename T, T kPoly>
constexpr std::array<T, 256> ReflectedTable() {
  std::array<T, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    T c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? static_cast<T>((c >> 1) ^ kPoly) : static_cast<T>(c >> 1);
    table[i] = c;
  }
  return table;
}

constexpr auto kCrc32cTable = ReflectedTable<uint32_t, 0x82F63B78u>();
constexpr auto kCrc64NvmeTable = ReflectedTable<uint64_t, 0x9A6C9329AC4BC9B5ull>();

template <typename T>
std::string BigEndian(T v) {
  std::string out(sizeof(T), '\0');
  for (size_t i = 0; i < sizeof(T); ++i) out[sizeof(T) - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string Base64(std::string_view raw) {
  std::string out;
  AppendBase64(out, raw);
  return out;
}

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, md, nullptr);
  return std::string(reinterpret_cast<const char*>(d), n);
}

}  // namespace

std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  std::string k = sigv4::HmacSha256("AWS4" + std::string(secret), date);
  k = sigv4::HmacSha256(k, region);
  k = sigv4::HmacSha256(k, service);
  return sigv4::HmacSha256(k, "aws4_request");
}

std::optional<ChunkError> DecodeAwsChunked(std::string_view body, const ChunkSigning* signing, bool trailer_signed,
                                           DecodedBody* out) {
  out->data.clear();
  out->trailers.clear();
  std::string previous = signing ? Lower(signing->seed_signature) : std::string();
  size_t pos = 0;
  while (true) {
    auto header = Line(body, &pos);
    if (!header) return Malformed("the aws-chunked body ends inside a chunk header");
    std::string_view size_text = *header;
    std::string_view signature;
    if (size_t semi = header->find(';'); semi != std::string_view::npos) {
      size_text = header->substr(0, semi);
      std::string_view ext = Trim(header->substr(semi + 1));
      constexpr std::string_view kSig = "chunk-signature=";
      if (ext.substr(0, kSig.size()) != kSig) return Malformed("unknown aws-chunked chunk extension");
      signature = ext.substr(kSig.size());
    }
    size_text = Trim(size_text);
    if (size_text.empty() || size_text.size() > 12) return Malformed("malformed aws-chunked chunk size");
    uint64_t size = 0;
    for (char c : size_text) {
      int v = HexDigitValue(c);
      if (v < 0) return Malformed("malformed aws-chunked chunk size");
      size = size * 16 + static_cast<uint64_t>(v);
    }
    if (size > body.size() - pos) return Malformed("an aws-chunked chunk is longer than the body");
    std::string_view data = body.substr(pos, size);
    pos += size;
    if (signing) {
      if (signature.size() != 64) return BadSignature("a chunk of the aws-chunked body carries no chunk-signature");
      std::string to_sign = "AWS4-HMAC-SHA256-PAYLOAD\n" + signing->amz_date + "\n" + signing->scope + "\n" + previous +
                            "\n" + std::string(kEmptySha256) + "\n" + sigv4::HexSha256(data);
      std::string expected = HexEncode(sigv4::HmacSha256(signing->signing_key, to_sign));
      if (!SameHex(signature, expected)) {
        return BadSignature("The chunk signature of chunk " + std::to_string(out->data.size()) +
                            " (byte offset) does not match what was computed.");
      }
      previous = expected;
    } else if (!signature.empty()) {
      return Malformed("chunk signatures in an unsigned aws-chunked body");
    }
    if (size == 0) break;
    out->data.append(data);
    if (body.substr(pos, 2) != "\r\n") return Malformed("an aws-chunked chunk does not end with CRLF");
    pos += 2;
  }
  // Trailers (possibly none) up to an empty line; a body without trailers may simply end.
  std::string trailer_text;  // canonical "name:value\n" lines for the trailer signature
  std::string trailer_signature;
  while (pos < body.size()) {
    auto line = Line(body, &pos);
    if (!line) return Malformed("the aws-chunked trailer does not end with CRLF");
    if (line->empty()) break;
    size_t colon = line->find(':');
    if (colon == std::string_view::npos) return Malformed("malformed aws-chunked trailer line");
    std::string name = Lower(Trim(line->substr(0, colon)));
    std::string value(Trim(line->substr(colon + 1)));
    if (name == "x-amz-trailer-signature") {
      trailer_signature = value;
      continue;
    }
    trailer_text += name + ":" + value + "\n";
    out->trailers.emplace_back(std::move(name), std::move(value));
  }
  if (pos != body.size()) return Malformed("bytes after the end of the aws-chunked body");
  if (signing && trailer_signed) {
    std::string to_sign = "AWS4-HMAC-SHA256-TRAILER\n" + signing->amz_date + "\n" + signing->scope + "\n" + previous +
                          "\n" + sigv4::HexSha256(trailer_text);
    std::string expected = HexEncode(sigv4::HmacSha256(signing->signing_key, to_sign));
    if (trailer_signature.size() != 64 || !SameHex(trailer_signature, expected)) {
      return BadSignature("The trailer signature does not match what was computed.");
    }
  }
  return std::nullopt;
}

const std::vector<std::string>& ChecksumAlgorithms() {
  static const std::vector<std::string> kAll = {"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"};
  return kAll;
}

std::optional<std::string> Checksum(std::string_view algorithm, std::string_view data) {
  std::string a(algorithm);
  for (char& c : a) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  if (a == "CRC32") {
    uLong crc = crc32(0L, Z_NULL, 0);
    // zlib takes uInt lengths: feed in slices.
    size_t pos = 0;
    while (pos < data.size()) {
      size_t n = std::min<size_t>(data.size() - pos, 1u << 30);
      crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + pos), static_cast<uInt>(n));
      pos += n;
    }
    return Base64(BigEndian(static_cast<uint32_t>(crc)));
  }
  if (a == "CRC32C") {
    uint32_t crc = 0xFFFFFFFFu;
    for (char ch : data) crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
    return Base64(BigEndian(crc ^ 0xFFFFFFFFu));
  }
  if (a == "CRC64NVME") {
    uint64_t crc = ~0ull;
    for (char ch : data) crc = kCrc64NvmeTable[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
    return Base64(BigEndian(~crc));
  }
  if (a == "SHA1") return Base64(Digest(EVP_sha1(), data));
  if (a == "SHA256") return Base64(Digest(EVP_sha256(), data));
  return std::nullopt;
}

std::string Md5Hex(std::string_view data) { return HexEncode(Digest(EVP_md5(), data)); }
std::string Md5Base64(std::string_view data) { return Base64(Digest(EVP_md5(), data)); }

}  // namespace geysir::control::s3
