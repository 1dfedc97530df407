// Custom domains (control/services/domains.h) as `geysir domain add|list|remove` and the gateway
// meet them: control stood up whole (control_harness.h), the native API /geysir/v1/domains driven
// with signed HTTP requests, and the "tls" frame the registry pushes on control.sock after each
// routes frame read back as a gateway reads it. Only certificates "none" and "manual" are used:
// an "acme" domain would start an order with a real CA.
#include "control/services/domains.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "proto/messages.h"
#include "proto/tls_state.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/unit/control/control_harness.h"
#include "tests/unit/control/store_test_util.h"

namespace geysir::control {
namespace {

using nlohmann::json;
namespace ct = geysir::control::testing;
namespace nt = geysir::testing;

const std::string kDomains = "/geysir/v1/domains";

ct::Reply Put(ct::Client& c, const std::string& name, const json& body) {
  return c.Call("PUT", kDomains + "/" + name, body.dump());
}

// The next "tls" frame a subscribed gateway gets, as it parses it.
std::optional<proto::TlsState> NextTls(ct::FrameSocket& gw) {
  auto f = gw.NextOf(proto::kMsgTls);
  if (!f) return std::nullopt;
  return f->header.get<proto::TlsState>();
}

const proto::CustomDomainRoute* FindDomain(const proto::TlsState& s, const std::string& name) {
  for (const auto& d : s.domains) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("domains: add, get, list and remove a domain without a certificate", "[control][domains]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::Reply put = Put(c, "Shop.Example.com.", {{"UrlId", "abcdef123456"}, {"Certificate", "none"}});
    INFO(put.body);
    REQUIRE(put.status == 200);
    json r = put.Json();
    CHECK(r["DomainName"] == "shop.example.com");  // lower-cased, the trailing dot dropped
    CHECK(r["UrlId"] == "abcdef123456");
    CHECK(r["Certificate"] == "none");
    CHECK(r["Status"] == "none");
    CHECK(r["Serial"] == "");
    CHECK(r["ApiMappings"] == json::array());
    CHECK(r["Created"].get<int64_t>() > 0);

    ct::Reply got = c.Call("GET", kDomains + "/shop.example.com");
    REQUIRE(got.status == 200);
    CHECK(got.Json()["UrlId"] == "abcdef123456");

    REQUIRE(Put(c, "api.example.com", {{"ApiId", "a1b2c3d4e5"}, {"Stage", "prod"}, {"BasePath", "v1"},
                                       {"Certificate", "none"}}).status == 200);
    ct::Reply list = c.Call("GET", kDomains);
    REQUIRE(list.status == 200);
    const json domains = list.Json();
    REQUIRE(domains["Domains"].size() == 2);
    json api;
    for (const auto& d : domains["Domains"]) {
      if (d["DomainName"] == "api.example.com") api = d;
    }
    REQUIRE(api.is_object());
    REQUIRE(api["ApiMappings"].size() == 1);
    CHECK(api["ApiMappings"][0]["ApiId"] == "a1b2c3d4e5");
    CHECK(api["ApiMappings"][0]["Stage"] == "prod");
    CHECK(api["ApiMappings"][0]["ApiMappingKey"] == "v1");
    CHECK(api["ApiMappings"][0]["ApiMappingId"].get<std::string>().size() == 6);

    // A function URL target replaces the API mappings.
    ct::Reply retarget = Put(c, "api.example.com", {{"UrlId", "zzzzzz999999"}, {"Certificate", "none"}});
    REQUIRE(retarget.status == 200);
    CHECK(retarget.Json()["UrlId"] == "zzzzzz999999");
    CHECK(retarget.Json()["ApiMappings"] == json::array());

    ct::Reply del = c.Call("DELETE", kDomains + "/shop.example.com");
    CHECK(del.status == 204);
    CHECK(del.body.empty());
    ct::Reply gone = c.Call("GET", kDomains + "/shop.example.com");
    CHECK(gone.status == 404);
    CHECK(gone.ErrorType() == "ResourceNotFoundException");
    CHECK(c.Call("DELETE", kDomains + "/shop.example.com").status == 404);
    CHECK(c.Call("GET", kDomains).Json()["Domains"].size() == 1);
  });
}

TEST_CASE("domains: what the native API refuses", "[control][domains]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    for (const char* name : {"under_score.example.com", "-lead.example.com", "a..b", "example.com-"}) {
      INFO(name);
      ct::Reply r = Put(c, name, {{"Certificate", "none"}});
      CHECK(r.status == 400);
      CHECK(r.ErrorType() == "InvalidParameterValueException");
    }
    ct::Reply cert = Put(c, "ok.example.com", {{"Certificate", "self"}});
    CHECK(cert.status == 400);
    CHECK(cert.Json()["message"] == "Certificate must be acme, manual or none, not 'self'");
    ct::Reply challenge = Put(c, "ok.example.com", {{"Certificate", "none"}, {"Challenge", "dns-01"}});
    CHECK(challenge.status == 400);
    CHECK(challenge.Json()["message"] == "Challenge must be http-01 or tls-alpn-01, not 'dns-01'");
    ct::Reply both = Put(c, "ok.example.com", {{"Certificate", "none"}, {"UrlId", "u"}, {"ApiId", "a"}, {"Stage", "s"}});
    CHECK(both.status == 400);
    CHECK(both.Json()["message"] == "give a function URL or an API, not both");
    ct::Reply no_stage = Put(c, "ok.example.com", {{"Certificate", "none"}, {"ApiId", "a1b2c3d4e5"}});
    CHECK(no_stage.status == 400);
    CHECK(no_stage.Json()["message"] == "an API target needs its stage");
    ct::Reply half = Put(c, "ok.example.com", {{"Certificate", "manual"}, {"CertificatePem", "x"}});
    CHECK(half.status == 400);
    CHECK(half.Json()["message"] == "a manual certificate needs both the certificate and the private key (PEM)");
    ct::Reply not_object = c.Call("PUT", kDomains + "/ok.example.com", "[1]");
    CHECK(not_object.status == 400);
    CHECK(not_object.ErrorType() == "InvalidRequestContentException");
    // None of them made a domain.
    CHECK(c.Call("GET", kDomains).Json()["Domains"].empty());

    CHECK(c.Call("POST", kDomains).status == 405);
    CHECK(c.Call("POST", kDomains + "/ok.example.com").status == 405);
    CHECK(c.Call("GET", kDomains + "/ok.example.com/frobnicate").status == 404);
    // Renewal is for ACME certificates only.
    REQUIRE(Put(c, "ok.example.com", {{"Certificate", "none"}}).status == 200);
    CHECK(c.Call("POST", kDomains + "/ok.example.com/renew").status == 400);
    CHECK(c.Call("GET", kDomains + "/ok.example.com/renew").status == 405);
    // Unsigned requests never reach the registry.
    ct::CallOptions unsigned_call;
    unsigned_call.sign = false;
    CHECK(c.Call("GET", kDomains, "", unsigned_call).status == 403);
  });
}

TEST_CASE("domains: an operator's certificate is checked, stored 0600 and served", "[control][domains]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    nt::PemPair pem = nt::SelfSignedPem("secure.example.com", 42);
    nt::PemPair other = nt::SelfSignedPem("other.example.com", 43);

    ct::Reply wrong_name = Put(c, "secure.example.com",
                               {{"Certificate", "manual"}, {"CertificatePem", other.cert_pem}, {"PrivateKeyPem", other.key_pem}});
    CHECK(wrong_name.status == 400);
    CHECK(wrong_name.Json()["message"] == "the certificate is for other.example.com, not secure.example.com");
    ct::Reply wrong_key = Put(c, "secure.example.com",
                              {{"Certificate", "manual"}, {"CertificatePem", pem.cert_pem}, {"PrivateKeyPem", other.key_pem}});
    CHECK(wrong_key.status == 400);
    CHECK(wrong_key.ErrorType() == "InvalidParameterValueException");

    ct::Reply put = Put(c, "secure.example.com",
                        {{"Certificate", "manual"}, {"CertificatePem", pem.cert_pem}, {"PrivateKeyPem", pem.key_pem}});
    INFO(put.body);
    REQUIRE(put.status == 200);
    json r = put.Json();
    CHECK(r["Status"] == "issued");
    CHECK(r["Serial"] == "2a");
    CHECK(r["NotAfter"].get<int64_t>() > r["NotBefore"].get<int64_t>());
    CHECK(r["RenewAt"] == 0);  // an operator's certificate is not renewed by Geysir
    CHECK(put.body.find("PRIVATE KEY") == std::string::npos);  // the key is never returned

    const std::string dir = h.data + "/tls/domains/secure.example.com";
    CHECK(ct::ReadFile(dir + "/cert.pem") == pem.cert_pem);
    CHECK(ct::ReadFile(dir + "/key.pem") == pem.key_pem);
    struct stat st {};
    REQUIRE(stat((dir + "/key.pem").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // Removing the domain deletes its certificate and key.
    REQUIRE(c.Call("DELETE", kDomains + "/secure.example.com").status == 204);
    CHECK_FALSE(ct::Exists(dir + "/key.pem"));
  });
}

TEST_CASE("domains: the tls frame a gateway gets on subscribe and after each change", "[control][domains]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::FrameSocket gw(h.socket_path);
    REQUIRE(gw.connected());
    proto::Frame sub;
    sub.header = {{"type", proto::kMsgSubscribeRoutes}};
    REQUIRE(gw.Send(sub));
    REQUIRE(gw.NextOf(proto::kMsgRoutes));
    auto first = NextTls(gw);
    REQUIRE(first);
    CHECK(first->certificates.empty());
    CHECK(first->domains.empty());

    nt::PemPair pem = nt::SelfSignedPem("secure.example.com", 7);
    REQUIRE(Put(c, "secure.example.com", {{"Certificate", "manual"}, {"CertificatePem", pem.cert_pem},
                                          {"PrivateKeyPem", pem.key_pem}, {"UrlId", "abcdef123456"}}).status == 200);
    // The routes frame comes first, then the tls frame with a newer generation.
    REQUIRE(gw.NextOf(proto::kMsgRoutes));
    auto second = NextTls(gw);
    REQUIRE(second);
    CHECK(second->generation > first->generation);
    REQUIRE(second->certificates.size() == 1);
    CHECK(second->certificates[0].cert_pem == pem.cert_pem);
    CHECK(second->certificates[0].key_pem == pem.key_pem);
    const proto::CustomDomainRoute* d = FindDomain(*second, "secure.example.com");
    REQUIRE(d != nullptr);
    CHECK(d->url_id == "abcdef123456");
    CHECK(d->api_id.empty());

    REQUIRE(Put(c, "api.example.com", {{"Certificate", "none"}, {"ApiId", "a1b2c3d4e5"}, {"Stage", "prod"},
                                       {"BasePath", "orders/v1"}}).status == 200);
    auto third = NextTls(gw);
    REQUIRE(third);
    CHECK(third->generation > second->generation);
    CHECK(third->certificates.size() == 1);  // "none" serves plain HTTP only
    const proto::CustomDomainRoute* a = FindDomain(*third, "api.example.com");
    REQUIRE(a != nullptr);
    CHECK(a->url_id.empty());
    CHECK(a->api_id == "a1b2c3d4e5");
    CHECK(a->stage == "prod");
    CHECK(a->base_path == "orders/v1");

    // A gateway that applied a frame says so; control takes the acknowledgement silently.
    proto::Frame applied;
    applied.header = {{"type", proto::kMsgTlsApplied}, {"generation", third->generation}};
    REQUIRE(gw.Send(applied));

    REQUIRE(c.Call("DELETE", kDomains + "/secure.example.com").status == 204);
    auto fourth = NextTls(gw);
    REQUIRE(fourth);
    CHECK(fourth->certificates.empty());
    CHECK(FindDomain(*fourth, "secure.example.com") == nullptr);
    CHECK(FindDomain(*fourth, "api.example.com") != nullptr);
  });
}

TEST_CASE("domains: domains and operator certificates survive a restart", "[control][domains]") {
  nt::TempDir keep;
  const std::string data = keep.path() + "/data";
  nt::PemPair pem = nt::SelfSignedPem("secure.example.com", 0x1234);
  {
    ct::Harness h([&](ControlOptions& o) { o.data_dir = data; });
    h.Run([&](ct::Client& c) {
      REQUIRE(Put(c, "secure.example.com", {{"Certificate", "manual"}, {"CertificatePem", pem.cert_pem},
                                            {"PrivateKeyPem", pem.key_pem}}).status == 200);
    });
  }
  ct::Harness h([&](ControlOptions& o) { o.data_dir = data; });
  h.Run([&](ct::Client& c) {
    ct::Reply got = c.Call("GET", kDomains + "/secure.example.com");
    REQUIRE(got.status == 200);
    CHECK(got.Json()["Status"] == "issued");
    CHECK(got.Json()["Serial"] == "1234");

    ct::FrameSocket gw(h.socket_path);
    REQUIRE(gw.connected());
    proto::Frame sub;
    sub.header = {{"type", proto::kMsgSubscribeRoutes}};
    REQUIRE(gw.Send(sub));
    auto tls = NextTls(gw);
    REQUIRE(tls);
    REQUIRE(tls->certificates.size() == 1);  // served again from disk, nothing re-issued
    CHECK(tls->certificates[0].cert_pem == pem.cert_pem);
  });
}

}  // namespace geysir::control
