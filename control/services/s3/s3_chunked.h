// The body encodings and integrity checks of S3 uploads.
//
// aws-chunked (Content-Encoding: aws-chunked), as S3's "SigV4 streaming" documentation
// defines it. The request's x-amz-content-sha256 names the variant:
//   STREAMING-AWS4-HMAC-SHA256-PAYLOAD          <hex>;chunk-signature=<sig>\r\n<data>\r\n ...
//                                              0;chunk-signature=<sig>\r\n\r\n
//   STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER  the same, then trailer lines and
//                                              x-amz-trailer-signature:<sig>\r\n\r\n
//   STREAMING-UNSIGNED-PAYLOAD-TRAILER          <hex>\r\n<data>\r\n ... 0\r\n<trailers>\r\n
// Each chunk signature chains from the previous one (the first from the request's seed
// signature): HMAC(signing key, "AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous>\n"
// + hex sha256("") + "\n" + hex sha256(chunk)). Every chunk, the final empty one and the
// trailer are verified; a body whose chunks do not chain is refused whole.
//
// Checksums (x-amz-checksum-<algorithm> headers or trailers): CRC32, CRC32C, CRC64NVME,
// SHA1, SHA256, each the base64 of the big-endian digest, as S3 sends them.
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace geysir::control::s3 {

// What signed chunks are checked against. signing_key is the raw derived SigV4 key.
struct ChunkSigning {
  std::string signing_key;
  std::string amz_date;        // YYYYMMDDTHHMMSSZ of the request
  std::string scope;           // DATE/REGION/s3/aws4_request
  std::string seed_signature;  // hex, from the Authorization header
};

struct DecodedBody {
  std::string data;
  std::vector<std::pair<std::string, std::string>> trailers;  // lower-case names
};

struct ChunkError {
  bool signature = false;  // true: a chunk signature did not match (403 SignatureDoesNotMatch)
  std::string message;     // otherwise: malformed encoding (400 IncompleteBody / InvalidRequest)
};

// Decodes an aws-chunked body. `signing` null: chunks carry no signatures (the unsigned
// variant); otherwise every chunk must carry a valid one. `trailer_signed`: a trailer must
// end with a valid x-amz-trailer-signature.
std::optional<ChunkError> DecodeAwsChunked(std::string_view body, const ChunkSigning* signing, bool trailer_signed,
                                           DecodedBody* out);

// The SigV4 signing key: HMAC chain over "AWS4"+secret, date, region, service, "aws4_request".
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);

// The checksum algorithms S3 accepts, upper-case ("CRC32", ...); the header suffix is the
// lower-case name: x-amz-checksum-crc32.
const std::vector<std::string>& ChecksumAlgorithms();
// base64 of the big-endian digest of `data`; nullopt for an unknown algorithm.
std::optional<std::string> Checksum(std::string_view algorithm, std::string_view data);

std::string Md5Hex(std::string_view data);
std::string Md5Base64(std::string_view data);

}  // namespace geysir::control::s3
