// AWS Signature Version 4: signing (for tests and tools) and verification (for control).
//
// Verification follows AWS's documented algorithm: canonical request (URI-encoded path, sorted
// canonical query, signed headers lower-cased with trimmed values, hashed payload — taken from
// x-amz-content-sha256 when present and allowed, see below),
// string to sign, derived signing key, HMAC-SHA256. Credentials arrive in the Authorization
// header or in presigned query parameters (X-Amz-Algorithm, X-Amz-Credential, ...). Only S3
// signs a declared payload marker (UNSIGNED-PAYLOAD, STREAMING-*); every other service signs
// the body's SHA-256. Whether the scope's service and region are this endpoint's is the
// caller's check (control/auth.h).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http_server.h"
#include "base/strings.h"
#include "base/status.h"

namespace geysir::net::sigv4 {

// The parsed credential of a signed request.
struct Credential {
  std::string access_key_id;
  std::string date;        // YYYYMMDD of the scope
  std::string region;      // "us-east-1"
  std::string service;     // "lambda", "s3", "iam", ...
  std::vector<std::string> signed_headers;
  std::string signature;   // hex
  std::string amz_date;    // X-Amz-Date: YYYYMMDDTHHMMSSZ
  bool presigned = false;
  int64_t expires_s = 0;   // presigned only
};

// Why verification failed, named as AWS names it so control can answer in the client's format.
enum class Failure {
  kMissingAuthentication,    // no Authorization header or presigned parameters: 403 MissingAuthenticationToken
  kIncompleteSignature,      // malformed Authorization: 403 IncompleteSignatureException
  kUnknownAccessKey,         // 403 UnrecognizedClientException / InvalidAccessKeyId (S3)
  kSignatureMismatch,        // 403 InvalidSignatureException / SignatureDoesNotMatch (S3)
  kRequestExpired,           // clock skew over 15 minutes: 403 InvalidSignatureException "Signature expired" / RequestTimeTooSkewed (S3)
  kPresignExpired,           // a presigned request past its X-Amz-Expires: 403 InvalidSignatureException "Request has expired" / AccessDenied (S3)
};

struct VerifyError {
  Failure failure;
  std::string message;       // AWS-like wording, safe to show the client
};

// Parses credentials from the Authorization header or the query string.
// Returns kMissingAuthentication/kIncompleteSignature errors through VerifyError.
std::optional<Credential> ParseCredential(const HttpRequest& request, VerifyError* error);

// Verifies `request` was signed with `secret_key` for `credential`. `now_s` is the current
// Unix time (injected for tests); skew over 15 minutes fails with kRequestExpired.
std::optional<VerifyError> Verify(const HttpRequest& request, const Credential& credential,
                                  std::string_view secret_key, int64_t now_s);

// Building blocks, exposed for the AWS test-suite vectors in tests/unit/proto/.
// `normalize_uri`: every service but S3 normalises the path (drops empty and "." segments,
// resolves "..") and URI-encodes the wire path once more (so "%3A" signs as "%253A"); S3 signs
// the path as sent. Sign and Verify choose by the service name ("s3" or not).
std::string CanonicalRequest(const HttpRequest& request, const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash, bool presigned, bool normalize_uri = true);
std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request);
std::string Signature(std::string_view secret_key, std::string_view date, std::string_view region,
                      std::string_view service, std::string_view string_to_sign);

// Signs a request in place (adds X-Amz-Date, x-amz-content-sha256 when asked, Authorization).
// `amz_date` is YYYYMMDDTHHMMSSZ. Used by tests and by tools without libcurl.
void Sign(HttpRequest& request, std::string_view access_key, std::string_view secret_key,
          std::string_view region, std::string_view service, std::string_view amz_date,
          bool add_content_sha256_header);

std::string HexSha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw bytes (HexEncode: base/strings.h)

}  // namespace geysir::net::sigv4
