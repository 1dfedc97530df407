// ACME Renewal Information (ARI, RFC 9773): the CA's suggested window for renewing a certificate.
//
// A CA whose directory has "renewalInfo" answers GET <renewalInfo>/<CertID> with
//   {"suggestedWindow": {"start": RFC 3339, "end": RFC 3339}, "explanationURL": "..."}
// and a Retry-After saying when to ask again. CertID is base64url(the certificate's Authority
// Key Identifier keyIdentifier) "." base64url(its serial number's DER content octets). The
// client renews at a uniformly random moment inside the window (at once if the window has
// passed), so a CA that moves the window earlier (a mass revocation) is followed, and renewals
// of many certificates spread out. Without renewalInfo, Geysir renews at a third of the
// lifetime left (control/services/domains.cpp).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geysir::control::acme {

struct RenewalWindow {
  int64_t start_s = 0;            // unix seconds
  int64_t end_s = 0;
  std::string explanation_url;    // "" when the CA gave none
};

// CertID from the raw Authority Key Identifier bytes and the serial's DER content octets.
std::string AriCertId(std::string_view aki_key_id, std::string_view serial_content);

// CertID of the leaf (the first certificate) of a PEM chain; kInvalidArgument when it does not
// parse or has no Authority Key Identifier (ARI cannot name it then).
Result<std::string> AriCertIdFromPem(std::string_view chain_pem);

// Parses a renewalInfo response body. kInvalidArgument names what is wrong (no window, a bad
// timestamp, end before start).
Result<RenewalWindow> ParseRenewalInfo(std::string_view body);

// "2026-01-03T00:00:00Z", "2026-01-03T00:00:00.123+02:00" -> unix seconds; nullopt-like error.
Result<int64_t> ParseRfc3339(std::string_view text);

// When to renew: start + (random mod the window's length), never before `now_s`; `now_s` when the
// window has already ended.
int64_t ChooseRenewalTime(const RenewalWindow& window, int64_t now_s, uint64_t random);

// How long to wait before asking again: the Retry-After seconds (`retry_after`, "" when absent:
// 6 hours, RFC 9773's suggestion), clamped to [1 minute, 1 day].
int64_t AriRecheckSeconds(std::string_view retry_after);

}  // namespace geysir::control::acme
