// ACME Renewal Information (RFC 9773): CertID (the RFC's own example, and one read from a PEM
// made with the openssl CLI), the renewalInfo answer, the moment chosen inside the window, the
// Retry-After clamp, and AcmeClient::GetRenewalInfo against a fake CA with and without
// renewalInfo in its directory. Debian 12's Pebble (2.4.0) offers no renewalInfo, so this is the
// only place ARI is exercised (docs/internet.md says so).
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "control/acme/ari.h"
#include "control/acme/client.h"
#include "control/acme/jws.h"

namespace geysir::control::acme {
namespace {

// openssl x509 -req ... -set_serial 0x87654321 -extfile (authorityKeyIdentifier=keyid):
// AKI 27:0F:67:76:F3:44:F3:96:2C:A6:D6:09:B2:A4:6E:90:83:45:98:7A.
constexpr const char* kLeafPem = R"(-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIFAIdlQyEwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLYXJp
IHRlc3QgQ0EwHhcNMjYxMTI3MTEyMDQ2WhcNMzYxMTI0MTEyMDQ2WjAZMRcwFQYD
VQQDDA5hLmV4YW1wbGUudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKvV
bpleJqtQSuRFQJyq+1vCydUGQIMGxBRxfIvyoQV11bJWroLj/U+xt80y97xyjcU+
p4kMW1pLS9oAubGskjKjXTBbMBkGA1UdEQQSMBCCDmEuZXhhbXBsZS50ZXN0MB8G
A1UdIwQYMBaAFCcPZ3bzRPOWLKbWCbKkbpCDRZh6MB0GA1UdDgQWBBT8NVVxtx1x
Rl9rjL8ml5wHmHBG7zAKBggqhkjOPQQDAgNJADBGAiEAsqiCpMYMUwnHpJp9ZMt6
SGd+2DBRbayueXEeOFk0NP4CIQCE7WR96txqE474JWsp6McoeaDrSW9/Pul90Cym
eQ2EGA==
-----END CERTIFICATE-----
)";

std::string Hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

class FakeCa final : public AcmeTransport {
 public:
  bool offer_ari = true;
  std::map<std::string, std::string> retry_after;
  std::string window_body = R"({"suggestedWindow":{"start":"2026-01-03T00:00:00Z","end":"2026-01-07T00:00:00Z"},)"
                            R"("explanationURL":"https://ca.test/why"})";
  std::string last_get;

  Result<HttpReply> Get(const std::string& url) override {
    last_get = url;
    HttpReply r;
    r.status = 200;
    if (url == "https://ca.test/dir") {
      r.body = R"({"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order")";
      r.body += offer_ari ? R"(,"renewalInfo":"https://ca.test/ari"})" : "}";
      return r;
    }
    if (url.rfind("https://ca.test/ari/", 0) == 0) {
      r.body = window_body;
      r.headers = retry_after;
      return r;
    }
    r.status = 404;
    return r;
  }
  Result<HttpReply> Head(const std::string&) override { return Status::Internal("not used"); }
  Result<HttpReply> PostJose(const std::string&, const std::string&) override { return Status::Internal("not used"); }
};

}  // namespace

TEST_CASE("ARI CertID: RFC 9773's example and one read from a certificate", "[acme][ari]") {
  CHECK(AriCertId(Hex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"), Hex("0087654321")) ==
        "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  auto id = AriCertIdFromPem(kLeafPem);
  REQUIRE(id.ok());
  CHECK(*id == "Jw9ndvNE85YsptYJsqRukINFmHo.AIdlQyE");  // the leading 00 of a high-bit serial is kept
  CHECK(!AriCertIdFromPem("not a certificate").ok());
}

TEST_CASE("RFC 3339 timestamps", "[acme][ari]") {
  CHECK(*ParseRfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(*ParseRfc3339("2026-01-03T00:00:00Z") == 1767398400);
  CHECK(*ParseRfc3339("2026-01-03T02:00:00.123+02:00") == 1767398400);
  CHECK(*ParseRfc3339("2026-01-02T19:00:00-05:00") == 1767398400);
  for (const char* bad : {"", "2026-01-03", "2026-01-03T00:00:00", "2026-13-03T00:00:00Z", "2026-01-03T00:00:00Zjunk",
                          "2026-01-03T00:00:00+0200"}) {
    INFO(bad);
    CHECK(!ParseRfc3339(bad).ok());
  }
}

TEST_CASE("renewalInfo answers: the window, and what is refused", "[acme][ari]") {
  auto w = ParseRenewalInfo(R"({"suggestedWindow":{"start":"2026-01-03T00:00:00Z","end":"2026-01-07T00:00:00Z"},)"
                            R"("explanationURL":"https://ca.test/why"})");
  REQUIRE(w.ok());
  CHECK(w->start_s == 1767398400);
  CHECK(w->end_s == 1767398400 + 4 * 86400);
  CHECK(w->explanation_url == "https://ca.test/why");
  CHECK(!ParseRenewalInfo("[]").ok());
  CHECK(!ParseRenewalInfo(R"({"suggestedWindow":{"start":"2026-01-03T00:00:00Z"}})").ok());
  CHECK(ParseRenewalInfo(R"({"suggestedWindow":{"start":"2026-01-07T00:00:00Z","end":"2026-01-03T00:00:00Z"}})")
            .status()
            .message()
            .find("ends before it starts") != std::string::npos);
}

TEST_CASE("the renewal moment: inside the window, never in the past", "[acme][ari]") {
  RenewalWindow w{1000, 2000, ""};
  for (uint64_t r : {uint64_t{0}, uint64_t{1}, uint64_t{999}, uint64_t{123456789}, ~uint64_t{0}}) {
    int64_t t = ChooseRenewalTime(w, 500, r);
    CHECK(t >= 1000);
    CHECK(t < 2000);
  }
  CHECK(ChooseRenewalTime(w, 500, 0) == 1000);
  CHECK(ChooseRenewalTime(w, 500, 250) == 1250);
  // Part of the window has passed: only what is left is drawn from.
  CHECK(ChooseRenewalTime(w, 1500, 0) == 1500);
  CHECK(ChooseRenewalTime(w, 1500, 499) == 1999);
  // The window is over (the CA wants it renewed now, e.g. after a revocation).
  CHECK(ChooseRenewalTime(w, 2000, 7) == 2000);
  CHECK(ChooseRenewalTime(w, 9000, 7) == 9000);
}

TEST_CASE("Retry-After for the next look-up is clamped", "[acme][ari]") {
  CHECK(AriRecheckSeconds("") == 6 * 3600);
  CHECK(AriRecheckSeconds("21600") == 21600);
  CHECK(AriRecheckSeconds("1") == 60);
  CHECK(AriRecheckSeconds("999999") == 86400);
  CHECK(AriRecheckSeconds("Wed, 21 Oct 2015 07:28:00 GMT") == 6 * 3600);
}

TEST_CASE("AcmeClient asks renewalInfo only when the directory offers it", "[acme][ari]") {
  auto key = EcKey::Generate();
  REQUIRE(key.ok());
  FakeCa ca;
  AcmeConfig config;
  config.directory_url = "https://ca.test/dir";
  {
    ca.retry_after = {{"retry-after", "7200"}};
    AcmeClient client(ca, config, std::move(*key));
    auto info = client.GetRenewalInfo(kLeafPem);
    REQUIRE(info.ok());
    CHECK(ca.last_get == "https://ca.test/ari/Jw9ndvNE85YsptYJsqRukINFmHo.AIdlQyE");
    CHECK(info->window.start_s == 1767398400);
    CHECK(info->recheck_s == 7200);
  }
  {
    ca.offer_ari = false;
    auto key2 = EcKey::Generate();
    REQUIRE(key2.ok());
    AcmeClient client(ca, config, std::move(*key2));
    auto info = client.GetRenewalInfo(kLeafPem);
    REQUIRE(!info.ok());
    CHECK(info.status().code() == Code::kNotFound);
  }
  {
    ca.offer_ari = true;
    ca.window_body = "{}";
    auto key3 = EcKey::Generate();
    REQUIRE(key3.ok());
    AcmeClient client(ca, config, std::move(*key3));
    auto info = client.GetRenewalInfo(kLeafPem);
    REQUIRE(!info.ok());
    CHECK(info.status().code() == Code::kInvalidArgument);
  }
}

}  // namespace geysir::control::acme
