// AWS Signature Version 4, as documented in AWS's "Create a signed AWS API request" guide.
//
// Path canonicalisation depends on the service, decided by the service name of the credential
// scope (Sign and Verify) or the `normalize_uri` argument (CanonicalRequest):
//   - every service but S3: the path is normalised (empty and "." segments dropped, ".."
//     resolved) and then URI-encoded once more, so a '%' already on the wire becomes "%25"
//     ("double encoding"). This is what botocore and the AWS test suite do.
//   - S3: the path is used as sent (no normalisation, existing %XX escapes kept, only bytes
//     that are not allowed raw are encoded).
#include "net/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

#include "base/strings.h"

namespace geysir::net::sigv4 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr int64_t kMaxSkewS = 15 * 60;
constexpr int64_t kMaxPresignExpiresS = 7 * 24 * 3600;  // AWS's limit for presigned URLs

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

const std::string* FindHeader(const HttpRequest& request, std::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

// RFC 3986 encoding as SigV4 wants it: unreserved bytes kept, everything else %XX upper-case.
// `keep` names extra bytes left alone ('/' in paths, '%' for S3 paths already encoded).
std::string UriEncode(std::string_view in, std::string_view keep = {}) { return PercentEncode(in, keep); }

// Query components are decoded before they are re-encoded, so "%7e" and "~" sign the same.
// '+' is a literal plus here (RFC 3986 has no special meaning for it), so it signs as "%2B";
// clients that mean a space send "%20", which every AWS SDK does.
std::string QueryDecode(std::string_view in) { return PercentDecode(in, /*plus_as_space=*/false); }

struct QueryParam {
  std::string key;    // decoded
  std::string value;  // decoded
};

std::vector<QueryParam> ParseQuery(std::string_view query) {
  std::vector<QueryParam> params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view part = query.substr(pos, amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        params.push_back({QueryDecode(part), ""});
      } else {
        params.push_back({QueryDecode(part.substr(0, eq)), QueryDecode(part.substr(eq + 1))});
      }
    }
    pos = amp + 1;
  }
  return params;
}

const QueryParam* FindParam(const std::vector<QueryParam>& params, std::string_view key) {
  for (const auto& p : params) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

std::string CanonicalQuery(std::string_view query, bool presigned) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& p : ParseQuery(query)) {
    if (presigned && p.key == "X-Amz-Signature") continue;
    encoded.emplace_back(UriEncode(p.key), UriEncode(p.value));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

// Empty and "." segments are dropped and ".." pops, as AWS services (other than S3) do; a
// trailing slash survives when the path ends with one and anything is left.
std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> segments;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    pos = slash + 1;
  }
  std::string out = "/";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i) out.push_back('/');
    out += segments[i];
  }
  if (!segments.empty() && path.back() == '/') out.push_back('/');
  return out;
}

std::string CanonicalUri(std::string_view path, bool normalize_uri) {
  if (path.empty()) return "/";
  if (normalize_uri) return UriEncode(NormalizePath(path), "/");
  return UriEncode(path, "/%");
}

// Header values: trimmed, inner runs of spaces collapsed; a value folded over several lines
// (obsolete line folding) counts as one value per line, as AWS's test suite expects.
void AppendCanonicalValue(std::string_view value, std::string* out, bool* first) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t nl = value.find('\n', pos);
    if (nl == std::string_view::npos) nl = value.size();
    std::string_view line = Trim(value.substr(pos, nl - pos));
    if (!line.empty() || (pos == 0 && nl == value.size())) {
      if (!*first) out->push_back(',');
      *first = false;
      bool in_space = false;
      for (char c : line) {
        if (c == ' ' || c == '\t') {
          in_space = true;
          continue;
        }
        if (in_space) out->push_back(' ');
        in_space = false;
        out->push_back(c);
      }
    }
    pos = nl + 1;
  }
}

std::vector<std::string> NormalizeSignedHeaders(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const auto& n : names) out.push_back(AsciiLower(Trim(n)));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string Join(const std::vector<std::string>& parts, char sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.push_back(sep);
    out += parts[i];
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t at = s.find(sep, pos);
    if (at == std::string_view::npos) {
      out.emplace_back(s.substr(pos));
      return out;
    }
    out.emplace_back(s.substr(pos, at - pos));
    pos = at + 1;
  }
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return HexDigitValue(c) >= 0; });
}

// YYYYMMDDTHHMMSSZ -> Unix seconds.
std::optional<int64_t> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !IsDigits(s.substr(0, 8)) || !IsDigits(s.substr(9, 6)))
    return std::nullopt;
  auto num = [&](size_t pos, size_t len) { return std::stoi(std::string(s.substr(pos, len))); };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

std::string FormatAmzDate(int64_t unix_s) {
  auto t = static_cast<time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// The HTTP Date header (RFC 7231 IMF-fixdate) as an X-Amz-Date, for clients that send only Date.
std::optional<std::string> DateHeaderAsAmzDate(std::string_view value) {
  std::tm tm{};
  std::string v(Trim(value));
  const char* end = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return FormatAmzDate(static_cast<int64_t>(timegm(&tm)));
}

std::optional<VerifyError> Fail(Failure failure, std::string message) {
  return VerifyError{failure, std::move(message)};
}

std::optional<Credential> FailParse(VerifyError* error, Failure failure, std::string message) {
  if (error) *error = VerifyError{failure, std::move(message)};
  return std::nullopt;
}

// "AKID/20150830/us-east-1/service/aws4_request"
bool ParseScope(std::string_view scope, Credential* cred) {
  auto parts = Split(scope, '/');
  if (parts.size() != 5 || parts[0].empty() || parts[1].size() != 8 || !IsDigits(parts[1]) || parts[2].empty() ||
      parts[3].empty() || parts[4] != "aws4_request")
    return false;
  cred->access_key_id = parts[0];
  cred->date = parts[1];
  cred->region = parts[2];
  cred->service = parts[3];
  return true;
}

std::string Scope(const Credential& c) { return c.date + "/" + c.region + "/" + c.service + "/aws4_request"; }

bool UsesS3PathRules(std::string_view service) { return service == "s3"; }

// The x-amz-content-sha256 values S3 documents besides a hex digest.
bool IsS3PayloadMarker(std::string_view v) {
  return v == "UNSIGNED-PAYLOAD" || v == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" ||
         v == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" || v == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" ||
         v == "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD" || v == "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER";
}

}  // namespace

std::string HexSha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexEncode(digest, sizeof digest);
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &len);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string CanonicalRequest(const HttpRequest& request, const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash, bool presigned, bool normalize_uri) {
  std::vector<std::string> names = NormalizeSignedHeaders(signed_headers);
  std::string out;
  out.reserve(256 + request.target.size());
  out += request.method;
  out.push_back('\n');
  out += CanonicalUri(request.path, normalize_uri);
  out.push_back('\n');
  out += CanonicalQuery(request.query, presigned);
  out.push_back('\n');
  for (const auto& name : names) {
    out += name;
    out.push_back(':');
    bool first = true;
    for (const auto& [k, v] : request.headers) {
      if (EqualsIgnoreCase(k, name)) AppendCanonicalValue(v, &out, &first);
    }
    out.push_back('\n');
  }
  out.push_back('\n');
  out += Join(names, ';');
  out.push_back('\n');
  out += payload_hash;
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request) {
  std::string out;
  out += kAlgorithm;
  out.push_back('\n');
  out += amz_date;
  out.push_back('\n');
  out += scope;
  out.push_back('\n');
  out += HexSha256(canonical_request);
  return out;
}

std::string Signature(std::string_view secret_key, std::string_view date, std::string_view region,
                      std::string_view service, std::string_view string_to_sign) {
  std::string key = "AWS4";
  key += secret_key;
  std::string k_date = HmacSha256(key, date);
  std::string k_region = HmacSha256(k_date, region);
  std::string k_service = HmacSha256(k_region, service);
  std::string k_signing = HmacSha256(k_service, "aws4_request");
  return HexEncode(HmacSha256(k_signing, string_to_sign));
}

std::optional<Credential> ParseCredential(const HttpRequest& request, VerifyError* error) {
  Credential cred;
  const std::string* authz = FindHeader(request, "Authorization");
  if (authz != nullptr) {
    std::string_view v = Trim(*authz);
    if (v.substr(0, kAlgorithm.size()) != kAlgorithm ||
        (v.size() > kAlgorithm.size() && v[kAlgorithm.size()] != ' ')) {
      return FailParse(error, Failure::kIncompleteSignature,
                       "Authorization header requires the AWS4-HMAC-SHA256 algorithm (Signature Version 4).");
    }
    v.remove_prefix(kAlgorithm.size());
    std::optional<std::string> scope, signed_headers, signature;
    for (const auto& part : Split(v, ',')) {
      std::string_view p = Trim(part);
      size_t eq = p.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = Trim(p.substr(0, eq));
      std::string value(Trim(p.substr(eq + 1)));
      if (key == "Credential") scope = value;
      else if (key == "SignedHeaders") signed_headers = value;
      else if (key == "Signature") signature = value;
    }
    std::string missing;
    if (!scope) missing += " Authorization header requires 'Credential' parameter.";
    if (!signed_headers) missing += " Authorization header requires 'SignedHeaders' parameter.";
    if (!signature) missing += " Authorization header requires 'Signature' parameter.";
    const std::string* amz_date = FindHeader(request, "X-Amz-Date");
    std::optional<std::string> date;
    if (amz_date != nullptr) {
      date = std::string(Trim(*amz_date));
    } else if (const std::string* http_date = FindHeader(request, "Date")) {
      date = DateHeaderAsAmzDate(*http_date);
    }
    if (!date) missing += " Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.";
    if (!missing.empty()) return FailParse(error, Failure::kIncompleteSignature, missing.substr(1));
    if (!ParseScope(*scope, &cred)) {
      return FailParse(error, Failure::kIncompleteSignature,
                       "Credential should be scoped to a valid region and service: <key>/<YYYYMMDD>/<region>/"
                       "<service>/aws4_request, got '" + *scope + "'.");
    }
    cred.signed_headers = Split(*signed_headers, ';');
    cred.signature = *signature;
    cred.amz_date = *date;
  } else {
    auto params = ParseQuery(request.query);
    const QueryParam* algorithm = FindParam(params, "X-Amz-Algorithm");
    if (algorithm == nullptr) {
      return FailParse(error, Failure::kMissingAuthentication, "Missing Authentication Token");
    }
    if (algorithm->value != kAlgorithm) {
      return FailParse(error, Failure::kIncompleteSignature, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    }
    std::string missing;
    for (const char* name : {"X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                             "X-Amz-Signature"}) {
      if (FindParam(params, name) == nullptr) missing += std::string(" Query-string authentication requires the ") +
                                                         name + " parameter.";
    }
    if (!missing.empty()) return FailParse(error, Failure::kIncompleteSignature, missing.substr(1));
    if (!ParseScope(FindParam(params, "X-Amz-Credential")->value, &cred)) {
      return FailParse(error, Failure::kIncompleteSignature,
                       "X-Amz-Credential should be <key>/<YYYYMMDD>/<region>/<service>/aws4_request.");
    }
    const std::string& expires = FindParam(params, "X-Amz-Expires")->value;
    if (!IsDigits(expires) || expires.size() > 9 || std::stoll(expires) < 1 ||
        std::stoll(expires) > kMaxPresignExpiresS) {
      return FailParse(error, Failure::kIncompleteSignature,
                       "X-Amz-Expires must be a number of seconds between 1 and 604800.");
    }
    cred.expires_s = std::stoll(expires);
    cred.signed_headers = Split(FindParam(params, "X-Amz-SignedHeaders")->value, ';');
    cred.signature = FindParam(params, "X-Amz-Signature")->value;
    cred.amz_date = FindParam(params, "X-Amz-Date")->value;
    cred.presigned = true;
  }
  if (!ParseAmzDate(cred.amz_date)) {
    return FailParse(error, Failure::kIncompleteSignature,
                     "Date must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z'), got '" + cred.amz_date + "'.");
  }
  if (!IsHex64(cred.signature)) {
    return FailParse(error, Failure::kIncompleteSignature, "Signature must be 64 hexadecimal characters.");
  }
  auto names = NormalizeSignedHeaders(cred.signed_headers);
  if (std::find(names.begin(), names.end(), "host") == names.end()) {
    return FailParse(error, Failure::kIncompleteSignature, "SignedHeaders must include 'host'.");
  }
  return cred;
}

std::optional<VerifyError> Verify(const HttpRequest& request, const Credential& credential,
                                  std::string_view secret_key, int64_t now_s) {
  std::optional<int64_t> signed_at = ParseAmzDate(credential.amz_date);
  if (!signed_at) return Fail(Failure::kIncompleteSignature, "Invalid X-Amz-Date '" + credential.amz_date + "'.");
  if (credential.presigned) {
    if (now_s > *signed_at + credential.expires_s) {
      return Fail(Failure::kPresignExpired, "Request has expired: signed at " + credential.amz_date + ", valid for " +
                                                std::to_string(credential.expires_s) + " s, now " +
                                                FormatAmzDate(now_s) + ".");
    }
    if (*signed_at > now_s + kMaxSkewS) {
      return Fail(Failure::kRequestExpired, "Signature not yet current: " + credential.amz_date +
                                                " is still later than " + FormatAmzDate(now_s + kMaxSkewS) + " (" +
                                                FormatAmzDate(now_s) + " + 15 min.)");
    }
  } else if (*signed_at < now_s - kMaxSkewS) {
    return Fail(Failure::kRequestExpired, "Signature expired: " + credential.amz_date + " is now earlier than " +
                                              FormatAmzDate(now_s - kMaxSkewS) + " (" + FormatAmzDate(now_s) +
                                              " - 15 min.)");
  } else if (*signed_at > now_s + kMaxSkewS) {
    return Fail(Failure::kRequestExpired, "Signature not yet current: " + credential.amz_date +
                                              " is still later than " + FormatAmzDate(now_s + kMaxSkewS) + " (" +
                                              FormatAmzDate(now_s) + " + 15 min.)");
  }
  if (credential.amz_date.compare(0, 8, credential.date) != 0) {
    return Fail(Failure::kSignatureMismatch, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                                             "of date from HTTP: '" + credential.date + "' != '" +
                                                 credential.amz_date.substr(0, 8) + "'.");
  }

  // The payload hash. Only S3 lets the client declare it (x-amz-content-sha256): a hex digest
  // that must match the body, UNSIGNED-PAYLOAD, or a STREAMING-* marker whose chunks S3 checks
  // itself (control/services/s3/s3_chunked.h). Every other service signs the SHA-256 of the body
  // whatever the header says, as AWS's do: otherwise "UNSIGNED-PAYLOAD" would let a captured
  // signature carry any body. A hex digest that does not match the body is refused anywhere.
  // Presigned URLs: S3 signs UNSIGNED-PAYLOAD (AWS's documented form); SDKs presigning for other
  // services (botocore's SigV4QueryAuth) hash the body, and UNSIGNED-PAYLOAD is taken there
  // only for an empty body, where it leaves nothing unsigned.
  const bool s3 = UsesS3PathRules(credential.service);
  std::vector<std::string> payload_hashes;
  if (const std::string* declared = FindHeader(request, "x-amz-content-sha256")) {
    std::string value(Trim(*declared));
    if (IsHex64(value)) {
      if (AsciiLower(value) != HexSha256(request.body)) {
        return Fail(Failure::kSignatureMismatch,
                    "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
      payload_hashes.push_back(std::move(value));
    } else if (s3 && IsS3PayloadMarker(value)) {
      payload_hashes.push_back(std::move(value));
    } else if (s3) {
      return Fail(Failure::kSignatureMismatch,
                  "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* marker, or the SHA-256 of the body.");
    } else {
      return Fail(Failure::kSignatureMismatch,
                  "x-amz-content-sha256 '" + value.substr(0, 64) + "' is not the SHA-256 of the body; only S3 accepts "
                  "an unsigned or streaming payload.");
    }
  } else if (credential.presigned) {
    if (s3 || request.body.empty()) payload_hashes.emplace_back("UNSIGNED-PAYLOAD");
    if (!s3) payload_hashes.push_back(HexSha256(request.body));
  } else {
    payload_hashes.push_back(HexSha256(request.body));
  }

  std::string given = AsciiLower(credential.signature);
  for (const auto& payload_hash : payload_hashes) {
    std::string canonical = CanonicalRequest(request, credential.signed_headers, payload_hash, credential.presigned,
                                             !UsesS3PathRules(credential.service));
    std::string to_sign = StringToSign(credential.amz_date, Scope(credential), canonical);
    std::string expected = Signature(secret_key, credential.date, credential.region, credential.service, to_sign);
    if (given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0) {
      return std::nullopt;
    }
  }
  return Fail(Failure::kSignatureMismatch,
              "The request signature we calculated does not match the signature you provided. Check your AWS "
              "Secret Access Key and signing method. Consult the service documentation for details.");
}

void Sign(HttpRequest& request, std::string_view access_key, std::string_view secret_key,
          std::string_view region, std::string_view service, std::string_view amz_date,
          bool add_content_sha256_header) {
  auto drop = [&](std::string_view name) {
    std::erase_if(request.headers, [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
  };
  drop("Authorization");
  drop("X-Amz-Date");
  request.headers.emplace_back("X-Amz-Date", std::string(amz_date));
  if (add_content_sha256_header) {
    drop("x-amz-content-sha256");
    request.headers.emplace_back("x-amz-content-sha256", HexSha256(request.body));
  }
  std::string payload_hash;
  if (const std::string* declared = FindHeader(request, "x-amz-content-sha256")) {
    payload_hash = std::string(Trim(*declared));
  } else {
    payload_hash = HexSha256(request.body);
  }
  // Every header is signed except those that proxies and clients rewrite in transit.
  std::vector<std::string> names;
  for (const auto& [k, v] : request.headers) {
    std::string name = AsciiLower(k);
    if (name == "user-agent" || name == "expect" || name == "x-amzn-trace-id" || name == "connection") continue;
    names.push_back(name);
  }
  names = NormalizeSignedHeaders(names);
  Credential cred;
  cred.date = std::string(amz_date.substr(0, 8));
  cred.region = std::string(region);
  cred.service = std::string(service);
  std::string canonical = CanonicalRequest(request, names, payload_hash, false, !UsesS3PathRules(service));
  std::string scope = Scope(cred);
  std::string to_sign = StringToSign(amz_date, scope, canonical);
  std::string signature = Signature(secret_key, cred.date, region, service, to_sign);
  std::string authz = std::string(kAlgorithm) + " Credential=" + std::string(access_key) + "/" + scope +
                      ", SignedHeaders=" + Join(names, ';') + ", Signature=" + signature;
  request.headers.emplace_back("Authorization", std::move(authz));
}

}  // namespace geysir::net::sigv4
