// TlsEdge (gateway/tls_edge.h): what the gateway does with control's "tls" frames. Certificates
// are generated per test; handshakes are real TLS over loopback to an HttpServer serving with
// the edge's context (the server's loop on the test thread, a blocking OpenSSL client on a helper
// thread): SNI picks the certificate, the operator's certificate answers every other name, a
// broken certificate is skipped without taking the others down, acme-tls/1 gets only the
// challenge certificate, and a renewal reaches new handshakes only. Then the plain-HTTP side:
// ACME HTTP-01 answers, custom domains, the HTTPS redirect and HSTS.
#include "gateway/tls_edge.h"

#include <uv.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.h"
#include "proto/tls_state.h"
#include "tests/support/loop.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"

using geysir::gateway::TlsEdge;
using geysir::gateway::TlsEdgeOptions;
using geysir::net::HttpRequest;
using geysir::net::HttpResponder;
using geysir::net::HttpResponse;
using geysir::net::HttpServer;
using geysir::proto::CustomDomainRoute;
using geysir::proto::TlsPemPair;
using geysir::proto::TlsState;
using geysir::testing::LoopRunner;
using geysir::testing::PemPair;
using geysir::testing::SelfSignedPem;
using geysir::testing::TempDir;
using geysir::testing::TlsClient;

namespace {

TlsPemPair Pair(const PemPair& pem) { return TlsPemPair{pem.cert_pem, pem.key_pem}; }

geysir::proto::Frame TlsFrame(const TlsState& state) {
  geysir::proto::Frame f;
  f.header = state;
  f.header["type"] = geysir::proto::kMsgTls;
  return f;
}

std::unique_ptr<TlsEdge> MakeEdge(TlsEdgeOptions options = {}) {
  auto edge = TlsEdge::Create(std::move(options));
  INFO((edge.ok() ? "" : edge.status().ToString()));
  REQUIRE(edge.ok());
  return std::move(*edge);
}

HttpRequest Request(const std::string& method, const std::string& target, bool tls = false) {
  HttpRequest r;
  r.method = method;
  r.target = target;
  r.path = target.substr(0, target.find('?'));
  r.tls = tls;
  return r;
}

// An HttpServer on 127.0.0.1 serving HTTPS with `edge`'s context; answers "sni=<name>".
struct Harness {
  explicit Harness(const TlsEdge& edge) {
    uv_loop_init(&loop);
    runner = std::make_unique<LoopRunner>(&loop);
    server = std::make_unique<HttpServer>(&loop, geysir::net::HttpLimits{},
                                          [](HttpRequest&& req, std::shared_ptr<HttpResponder> resp) {
                                            HttpResponse r;
                                            r.body = "sni=" + req.tls_server_name;
                                            resp->Send(std::move(r));
                                          });
    server->SetTls(&edge.context());
    REQUIRE(server->Listen("127.0.0.1", 0).ok());
    port = server->port();
  }
  ~Harness() {
    server->Close();
    runner->Dispose();
    for (int i = 0; i < 100 && uv_loop_alive(&loop); ++i) uv_run(&loop, UV_RUN_NOWAIT);
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
  uv_loop_t loop;
  std::unique_ptr<LoopRunner> runner;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

// Records what a responder was sent.
class CapturingResponder final : public HttpResponder {
 public:
  void Send(HttpResponse response) override { sent = std::move(response); }
  bool alive() const override { return true; }
  HttpResponse sent;
};

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace

TEST_CASE("tls edge: certificates from a frame are chosen by SNI over a real handshake", "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState state;
  state.generation = 7;
  state.certificates = {Pair(SelfSignedPem("a.example.test", 11)), Pair(SelfSignedPem("b.example.test", 22))};
  auto applied = edge->Apply(TlsFrame(state));
  REQUIRE(applied.ok());
  CHECK(*applied == 7);
  CHECK(edge->generation() == 7);

  Harness h(*edge);
  bool ok = h.runner->Run([&] {
    TlsClient a(h.port, "a.example.test");
    REQUIRE(a.handshake_ok());
    CHECK(a.Serial() == 11);
    CHECK(a.Alpn() == "http/1.1");
    CHECK(a.Get("/") == "sni=a.example.test");
    TlsClient b(h.port, "B.Example.Test");  // host names compare case-insensitively
    REQUIRE(b.handshake_ok());
    CHECK(b.Serial() == 22);
    // No certificate for the name and no operator certificate: the handshake fails.
    TlsClient unknown(h.port, "c.example.test");
    CHECK(unknown.connected());
    CHECK_FALSE(unknown.handshake_ok());
    TlsClient no_sni(h.port, "");
    CHECK_FALSE(no_sni.handshake_ok());
  });
  CHECK(ok);
}

TEST_CASE("tls edge: the operator's certificate answers every name no domain certificate covers",
          "[tls_edge]") {
  TempDir dir("geysir-tls-edge");
  const PemPair op = SelfSignedPem("operator.example.test", 99);
  dir.Write("cert.pem", op.cert_pem);
  dir.Write("key.pem", op.key_pem, 0600);
  TlsEdgeOptions o;
  o.cert_file = dir / "cert.pem";
  o.key_file = dir / "key.pem";
  auto edge = MakeEdge(o);

  TlsState state;
  state.generation = 1;
  state.certificates = {Pair(SelfSignedPem("a.example.test", 11))};
  REQUIRE(edge->Apply(TlsFrame(state)).ok());

  Harness h(*edge);
  bool ok = h.runner->Run([&] {
    TlsClient a(h.port, "a.example.test");
    REQUIRE(a.handshake_ok());
    CHECK(a.Serial() == 11);
    TlsClient other(h.port, "anything.else.test");
    REQUIRE(other.handshake_ok());
    CHECK(other.Serial() == 99);
    CHECK(other.Get("/x") == "sni=anything.else.test");
    TlsClient no_sni(h.port, "");
    REQUIRE(no_sni.handshake_ok());
    CHECK(no_sni.Serial() == 99);
  });
  CHECK(ok);
}

TEST_CASE("tls edge: operator certificate files that are missing, half given or broken are refused",
          "[tls_edge]") {
  TempDir dir("geysir-tls-edge");
  const PemPair op = SelfSignedPem("operator.example.test", 1);
  const PemPair other = SelfSignedPem("other.example.test", 2);
  dir.Write("cert.pem", op.cert_pem);
  dir.Write("key.pem", op.key_pem);
  dir.Write("other-key.pem", other.key_pem);
  dir.Write("garbage.pem", "not a certificate\n");

  TlsEdgeOptions half;
  half.cert_file = dir / "cert.pem";
  auto r = TlsEdge::Create(half);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "--tls-cert and --tls-key go together");

  TlsEdgeOptions missing;
  missing.cert_file = dir / "absent.pem";
  missing.key_file = dir / "key.pem";
  r = TlsEdge::Create(missing);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("cannot read") && Catch::Contains("absent.pem"));

  TlsEdgeOptions garbage;
  garbage.cert_file = dir / "garbage.pem";
  garbage.key_file = dir / "key.pem";
  r = TlsEdge::Create(garbage);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().ToString(), Catch::Contains("garbage.pem"));

  TlsEdgeOptions mismatch;
  mismatch.cert_file = dir / "cert.pem";
  mismatch.key_file = dir / "other-key.pem";
  r = TlsEdge::Create(mismatch);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().ToString(), Catch::Contains("cert.pem"));
}

TEST_CASE("tls edge: a broken certificate in a frame is skipped, the others still serve", "[tls_edge]") {
  auto edge = MakeEdge();
  const PemPair good = SelfSignedPem("good.example.test", 5);
  const PemPair stray = SelfSignedPem("stray.example.test", 6);
  TlsState state;
  state.generation = 3;
  state.certificates = {TlsPemPair{"garbage", "garbage"}, TlsPemPair{good.cert_pem, stray.key_pem}, Pair(good)};
  auto applied = edge->Apply(TlsFrame(state));
  REQUIRE(applied.ok());
  CHECK(*applied == 3);

  Harness h(*edge);
  bool ok = h.runner->Run([&] {
    TlsClient c(h.port, "good.example.test");
    REQUIRE(c.handshake_ok());
    CHECK(c.Serial() == 5);
  });
  CHECK(ok);

  // A frame whose header is not a TlsState is refused whole, and the edge keeps what it had.
  geysir::proto::Frame bad;
  bad.header = {{"type", "tls"}, {"certificates", "not a list"}};
  auto refused = edge->Apply(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::StartsWith("bad tls frame"));
  CHECK(edge->generation() == 3);
  CHECK(edge->context().Select("good.example.test") != nullptr);
}

TEST_CASE("tls edge: acme-tls/1 handshakes get the challenge certificate, others never do", "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState state;
  state.generation = 1;
  state.certificates = {Pair(SelfSignedPem("site.example.test", 1))};
  state.alpn01 = {{"site.example.test", Pair(SelfSignedPem("site.example.test", 777))},
                  {"new.example.test", Pair(SelfSignedPem("new.example.test", 888))}};
  REQUIRE(edge->Apply(TlsFrame(state)).ok());

  Harness h(*edge);
  bool ok = h.runner->Run([&] {
    TlsClient challenge(h.port, "site.example.test", "acme-tls/1");
    REQUIRE(challenge.handshake_ok());
    CHECK(challenge.Serial() == 777);
    CHECK(challenge.Alpn() == "acme-tls/1");
    // A name with only a challenge (the first certificate not issued yet).
    TlsClient first(h.port, "new.example.test", "acme-tls/1");
    REQUIRE(first.handshake_ok());
    CHECK(first.Serial() == 888);
    // Ordinary traffic for the same names never sees a challenge certificate.
    TlsClient normal(h.port, "site.example.test");
    REQUIRE(normal.handshake_ok());
    CHECK(normal.Serial() == 1);
    TlsClient no_cert(h.port, "new.example.test");
    CHECK_FALSE(no_cert.handshake_ok());
  });
  CHECK(ok);
}

TEST_CASE("tls edge: a renewed certificate reaches new handshakes; open connections keep theirs",
          "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState v1;
  v1.generation = 1;
  v1.certificates = {Pair(SelfSignedPem("renew.example.test", 1))};
  REQUIRE(edge->Apply(TlsFrame(v1)).ok());
  TlsState v2 = v1;
  v2.generation = 2;
  v2.certificates = {Pair(SelfSignedPem("renew.example.test", 2))};

  Harness h(*edge);
  bool ok = h.runner->Run([&] {
    TlsClient before(h.port, "renew.example.test");
    REQUIRE(before.handshake_ok());
    CHECK(before.Serial() == 1);
    // Frames are applied on the loop thread, as the gateway's control channel does.
    std::atomic<bool> applied{false};
    h.runner->Post([&] {
      CHECK(edge->Apply(TlsFrame(v2)).ok());
      applied = true;
    });
    while (!applied) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(before.Get("/still") == "sni=renew.example.test");
    TlsClient after(h.port, "renew.example.test");
    REQUIRE(after.handshake_ok());
    CHECK(after.Serial() == 2);
  });
  CHECK(ok);
  CHECK(edge->generation() == 2);
}

TEST_CASE("tls edge: of two certificates for one name in a frame, the one that lasts longer is served",
          "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState state;
  state.generation = 1;
  state.certificates = {Pair(SelfSignedPem("twice.example.test", 1, 86400)),
                        Pair(SelfSignedPem("twice.example.test", 2, 90 * 86400)),
                        Pair(SelfSignedPem("twice.example.test", 3, 3600))};
  REQUIRE(edge->Apply(TlsFrame(state)).ok());
  auto chosen = edge->context().Select("twice.example.test");
  REQUIRE(chosen != nullptr);
  CHECK(chosen->not_after_s() - chosen->not_before_s() > 80 * 86400);  // serial 2, the 90-day one
}

TEST_CASE("tls edge: ACME HTTP-01 answers, replaced whole by each frame", "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState state;
  state.generation = 1;
  state.http01 = {{"tok-EN_1", "tok-EN_1.thumbprint"}};
  REQUIRE(edge->Apply(TlsFrame(state)).ok());

  CHECK_FALSE(edge->Challenge(Request("GET", "/index.html")).has_value());
  auto served = edge->Challenge(Request("GET", "/.well-known/acme-challenge/tok-EN_1"));
  REQUIRE(served.has_value());
  CHECK(served->status == 200);
  CHECK(served->body == "tok-EN_1.thumbprint");
  CHECK(HeaderOf(*served, "Content-Type") == "application/octet-stream");
  CHECK(edge->Challenge(Request("HEAD", "/.well-known/acme-challenge/tok-EN_1"))->status == 200);
  CHECK(edge->Challenge(Request("POST", "/.well-known/acme-challenge/tok-EN_1"))->status == 405);
  CHECK(edge->Challenge(Request("GET", "/.well-known/acme-challenge/other"))->status == 404);
  // Not a base64url token: never looked up.
  CHECK(edge->Challenge(Request("GET", "/.well-known/acme-challenge/tok.EN_1"))->status == 404);
  CHECK(edge->Challenge(Request("GET", "/.well-known/acme-challenge/"))->status == 404);

  TlsState next;
  next.generation = 2;
  next.http01 = {{"second", "second.thumbprint"}};
  REQUIRE(edge->Apply(TlsFrame(next)).ok());
  CHECK(edge->Challenge(Request("GET", "/.well-known/acme-challenge/tok-EN_1"))->status == 404);
  CHECK(edge->Challenge(Request("GET", "/.well-known/acme-challenge/second"))->body == "second.thumbprint");
}

TEST_CASE("tls edge: custom domains map to a function URL or to API mappings", "[tls_edge]") {
  auto edge = MakeEdge();
  TlsState state;
  state.generation = 1;
  state.domains = {CustomDomainRoute{"fn.example.test", "urlid123", "", "", ""},
                   CustomDomainRoute{"api.example.test", "", "api1", "prod", ""},
                   CustomDomainRoute{"api.example.test", "", "api2", "v2", "orders"}};
  REQUIRE(edge->Apply(TlsFrame(state)).ok());
  const auto* fn = edge->Domain("fn.example.test");
  REQUIRE(fn != nullptr);
  REQUIRE(fn->size() == 1);
  CHECK(fn->front().url_id == "urlid123");
  const auto* api = edge->Domain("api.example.test");
  REQUIRE(api != nullptr);
  REQUIRE(api->size() == 2);
  CHECK((*api)[0].api_id == "api1");
  CHECK((*api)[1].base_path == "orders");
  CHECK(edge->Domain("other.example.test") == nullptr);

  TlsState none;
  none.generation = 2;
  REQUIRE(edge->Apply(TlsFrame(none)).ok());
  CHECK(edge->Domain("fn.example.test") == nullptr);
}

TEST_CASE("tls edge: plain HTTP is redirected only when asked to, and only for hosts with a certificate",
          "[tls_edge]") {
  TlsState state;
  state.generation = 1;
  state.certificates = {Pair(SelfSignedPem("secure.example.test", 1))};

  auto off = MakeEdge();
  REQUIRE(off->Apply(TlsFrame(state)).ok());
  CHECK_FALSE(off->Redirect(Request("GET", "/a?b=1"), "secure.example.test").has_value());

  TlsEdgeOptions o;
  o.redirect_http = true;
  o.https_port = 8443;
  auto on = MakeEdge(o);
  REQUIRE(on->Apply(TlsFrame(state)).ok());
  auto r = on->Redirect(Request("GET", "/a?b=1"), "secure.example.test");
  REQUIRE(r.has_value());
  CHECK(r->status == 308);
  CHECK(HeaderOf(*r, "Location") == "https://secure.example.test:8443/a?b=1");
  CHECK_FALSE(on->Redirect(Request("GET", "/a"), "plain.example.test").has_value());
  CHECK_FALSE(on->Redirect(Request("GET", "/a", /*tls=*/true), "secure.example.test").has_value());
  CHECK_FALSE(on->Redirect(Request("GET", "/a"), "").has_value());

  TlsEdgeOptions standard;
  standard.redirect_http = true;  // https_port 443: no port in the Location
  auto std_edge = MakeEdge(standard);
  REQUIRE(std_edge->Apply(TlsFrame(state)).ok());
  auto loc = std_edge->Redirect(Request("GET", "/"), "secure.example.test");
  REQUIRE(loc.has_value());
  CHECK(HeaderOf(*loc, "Location") == "https://secure.example.test/");
}

TEST_CASE("tls edge: HSTS is added to what the inner responder sends", "[tls_edge]") {
  CHECK_FALSE(MakeEdge()->hsts());
  TlsEdgeOptions o;
  o.hsts_max_age_s = 31536000;
  auto edge = MakeEdge(o);
  CHECK(edge->hsts());
  auto inner = std::make_shared<CapturingResponder>();
  auto outer = edge->WithHsts(inner);
  CHECK(outer->alive());
  HttpResponse r;
  r.status = 201;
  r.body = "made";
  outer->Send(std::move(r));
  CHECK(inner->sent.status == 201);
  CHECK(inner->sent.body == "made");
  CHECK(HeaderOf(inner->sent, "Strict-Transport-Security") == "max-age=31536000");
}
