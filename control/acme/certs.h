// Certificate plumbing for ACME: the CSR sent at finalize, the TLS-ALPN-01 challenge
// certificate (RFC 8737: self-signed, the domain as its only SAN, and the critical
// id-pe-acmeIdentifier extension holding SHA-256 of the key authorization), and PEM helpers.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/acme/jws.h"
#include "base/status.h"
#include "proto/tls_state.h"

namespace geysir::control::acme {

// A PKCS#10 request (DER) for `names` (the first is also the subject CN), signed by `key`.
Result<std::string> MakeCsr(const EcKey& key, const std::vector<std::string>& names);

// A self-signed certificate for `names`, valid from an hour ago for `days`. When
// `acme_key_authorization` is not empty the RFC 8737 acmeIdentifier extension is added.
Result<std::string> MakeSelfSignedPem(const EcKey& key, const std::vector<std::string>& names, int days,
                                      std::string_view acme_key_authorization = {});

// The challenge certificate and its fresh key for TLS-ALPN-01.
Result<proto::TlsPemPair> MakeAlpnChallenge(std::string_view domain, std::string_view key_authorization);

}  // namespace geysir::control::acme
