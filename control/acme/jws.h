// The cryptography ACME (RFC 8555) needs, on OpenSSL: ES256 account keys, their JWK and RFC 7638
// thumbprint, flattened JWS objects signed with ES256 (the signature as raw R||S, 64 bytes, as
// RFC 7518 section 3.4 requires, not DER). Base64url is base/base64.h's Base64UrlEncode.
//
// Thread safety: EcKey is immutable after creation and may be used from any thread; the free
// functions are pure.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/base64.h"
#include "base/status.h"
#include "net/tls.h"

namespace geysir::control::acme {

std::string Sha256(std::string_view bytes);  // raw 32 bytes

// An ECDSA P-256 key pair.
class EcKey {
 public:
  static Result<EcKey> Generate();
  static Result<EcKey> FromPem(std::string_view pem);
  std::string ToPem() const;  // PKCS#8, unencrypted: store it 0600

  // {"crv":"P-256","kty":"EC","x":…,"y":…}
  nlohmann::json Jwk() const;
  // ES256 over `data`: 64 bytes R||S.
  Result<std::string> SignEs256(std::string_view data) const;

  EVP_PKEY* get() const { return key_.get(); }

 private:
  std::shared_ptr<EVP_PKEY> key_;
};

// RFC 7638: base64url(SHA-256(the required members of `jwk`, sorted, no whitespace)). Handles
// EC (crv, kty, x, y), RSA (e, kty, n) and oct (k, kty) keys.
Result<std::string> Thumbprint(const nlohmann::json& jwk);

// A flattened JWS JSON object {"protected","payload","signature"} with alg ES256. `header`
// gets "alg" added; it must carry either "jwk" or "kid", plus "nonce" and "url" (RFC 8555
// section 6.2). An empty `payload` with post_as_get set signs "" (POST-as-GET).
Result<nlohmann::json> SignJws(const EcKey& key, nlohmann::json header, const std::string& payload);

// The DER ECDSA signature `der` as raw R||S, each padded to `half` bytes.
Result<std::string> DerToRawEcdsa(std::string_view der, size_t half);

}  // namespace geysir::control::acme
