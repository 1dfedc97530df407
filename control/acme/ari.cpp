#include "control/acme/ari.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "control/acme/jws.h"
#include "base/openssl_ptr.h"

namespace geysir::control::acme {
namespace {



bool Digits(std::string_view s, size_t at, size_t n, int* out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string AriCertId(std::string_view aki_key_id, std::string_view serial_content) {
  return Base64UrlEncode(aki_key_id) + "." + Base64UrlEncode(serial_content);
}

Result<std::string> AriCertIdFromPem(std::string_view chain_pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf failed");
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) return Status::Invalid("the certificate chain does not start with a PEM certificate");
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf.get());
  if (aki == nullptr) return Status::Invalid("the certificate has no Authority Key Identifier");
  // The serial's DER encoding is tag, one length octet (serials are at most 20 octets), content.
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf.get()), &der);
  if (len < 3 || der == nullptr) {
    OPENSSL_free(der);
    return Status::Invalid("the certificate's serial number does not encode");
  }
  std::string serial(reinterpret_cast<const char*>(der) + 2, static_cast<size_t>(len - 2));
  OPENSSL_free(der);
  return AriCertId(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)),
                                    static_cast<size_t>(ASN1_STRING_length(aki))),
                   serial);
}

Result<int64_t> ParseRfc3339(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  auto bad = [&] { return Status::Invalid("'" + std::string(s) + "' is not an RFC 3339 timestamp"); };
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) || s[7] != '-' ||
      !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !Digits(s, 11, 2, &h) ||
      s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' || !Digits(s, 17, 2, &sec)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return bad();
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (!Digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' || !Digits(s, i + 4, 2, &om)) return bad();
    offset = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return bad();
  }
  if (i != s.size()) return bad();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = std::min(sec, 59);  // a leap second counts as the second before it
  return static_cast<int64_t>(timegm(&tm)) - offset;
}

Result<RenewalWindow> ParseRenewalInfo(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Invalid("the renewalInfo answer is not a JSON object");
  auto w = j.find("suggestedWindow");
  if (w == j.end() || !w->is_object()) return Status::Invalid("the renewalInfo answer has no suggestedWindow");
  auto field = [&](const char* k) -> Result<int64_t> {
    auto it = w->find(k);
    if (it == w->end() || !it->is_string()) return Status::Invalid(std::string("suggestedWindow has no ") + k);
    return ParseRfc3339(it->get<std::string>());
  };
  auto start = field("start");
  if (!start.ok()) return start.status();
  auto end = field("end");
  if (!end.ok()) return end.status();
  if (*end <= *start) return Status::Invalid("suggestedWindow ends before it starts");
  RenewalWindow out;
  out.start_s = *start;
  out.end_s = *end;
  if (auto e = j.find("explanationURL"); e != j.end() && e->is_string()) out.explanation_url = *e;
  return out;
}

int64_t ChooseRenewalTime(const RenewalWindow& window, int64_t now_s, uint64_t random) {
  if (window.end_s <= now_s) return now_s;
  int64_t start = std::max(window.start_s, now_s);
  uint64_t span = static_cast<uint64_t>(window.end_s - start);
  return start + static_cast<int64_t>(random % span);
}

int64_t AriRecheckSeconds(std::string_view retry_after) {
  int64_t s = 6 * 3600;
  if (!retry_after.empty() && retry_after.size() <= 9 &&
      std::all_of(retry_after.begin(), retry_after.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    s = std::stoll(std::string(retry_after));
  }
  return std::clamp<int64_t>(s, 60, 24 * 3600);
}

}  // namespace geysir::control::acme
