// Authentication for control's API.
//
// Authenticator checks AWS Signature V4 on every API request (net/sigv4.h does the
// cryptography) against the secret keys Geysir stores: a request with no signature, a malformed
// one, an unknown access key, a wrong signature, a clock skew over 15 minutes, or a credential
// scope naming another service or region than the endpoint's is refused with the 403 error
// Lambda returns (control/aws_error.h; each service renames it), before any handler runs. A
// signature is only good for the service and region it was made for, as at AWS: a key holder's
// signed S3 request must not be replayable against Lambda.
//
// CodeUrlSigner makes and checks the short-lived download links GetFunction returns as
// Code.Location: "/geysir/v1/code/<hex>.zip?expires=<unix s>&signature=<hex HMAC-SHA256>",
// keyed with a server secret, so a client can GET the zip without SigV4 (as it would a
// presigned S3 URL) until the link expires.
//
// Thread safety: both are immutable after construction apart from what the injected functions
// do; control uses them on its loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "control/aws_error.h"
#include "net/http_server.h"
#include "base/status.h"

namespace geysir::control {

class Authenticator {
 public:
  // Returns the secret key of an access key id; kNotFound for an unknown key, any other error
  // for a failure to look (which becomes a 500, not a 403: the key may well be valid).
  using SecretLookup = std::function<Result<std::string>(const std::string& access_key_id)>;
  // `region`: the one region this endpoint serves (control's --region).
  Authenticator(SecretLookup lookup, std::function<int64_t()> now_s, std::string region = "us-east-1");

  // nullopt when the request is authentic and signed for `service` (the signing name of the
  // API the request is routed to: "lambda", "s3", "iam", ...) in this endpoint's region (and
  // *access_key_id, if given, names the key); otherwise the error to answer with. An empty
  // `service` checks no service (a request no handler claims, answered UnknownOperation).
  std::optional<AwsError> Check(const net::HttpRequest& request, std::string_view service,
                                std::string* access_key_id = nullptr) const;

 private:
  SecretLookup lookup_;
  std::function<int64_t()> now_s_;
  std::string region_;
};

class CodeUrlSigner {
 public:
  explicit CodeUrlSigner(std::string key);

  // The path and query of a download link for `hex` valid until `expires_s` (Unix seconds).
  std::string PathFor(const std::string& hex, int64_t expires_s) const;
  // True when `query` carries a valid, unexpired signature for `hex`.
  bool Verify(const std::string& hex, const std::map<std::string, std::string>& query, int64_t now_s) const;

 private:
  std::string Mac(const std::string& hex, int64_t expires_s) const;
  std::string key_;
};

// Reads the 32-byte server secret at `path`, creating it (mode 0600, random) if missing.
Result<std::string> LoadOrCreateSecretFile(const std::string& path);

}  // namespace geysir::control
