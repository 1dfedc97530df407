// HttpServer with TLS (net/tls.h) over real loopback sockets: the server's loop runs on the
// test thread, a blocking OpenSSL client on a helper thread. SNI picks the certificate, ALPN
// says http/1.1, keep-alive works across records, acme-tls/1 gets only the challenge
// certificate, sessions resume, and replacing certificates leaves open connections alone.
#include "net/tls.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "net/http_server.h"
#include "tests/support/loop.h"
#include "tests/support/tls_client.h"

using geysir::net::HttpRequest;
using geysir::net::HttpResponder;
using geysir::net::HttpResponse;
using geysir::net::HttpServer;
using geysir::net::TlsCertificate;
using geysir::net::TlsCertificatePtr;
using geysir::net::TlsContext;
using geysir::testing::CertificatePem;
using geysir::testing::LoopRunner;
using geysir::testing::PemPair;
using geysir::testing::PrivateKeyPem;
using geysir::testing::SelfSignedPem;

namespace {

// A self-signed P-256 certificate for `name` with a given serial.
TlsCertificatePtr MakeCert(const std::string& name, long serial) {
  const PemPair pem = SelfSignedPem(name, serial);
  auto cert = TlsCertificate::FromPem(pem.cert_pem, pem.key_pem);
  REQUIRE(cert.ok());
  return *cert;
}

struct Harness {
  Harness() {
    uv_loop_init(&loop);
    runner = std::make_unique<LoopRunner>(&loop);
    auto ctx = TlsContext::Create();
    REQUIRE(ctx.ok());
    tls = std::move(*ctx);
    server = std::make_unique<HttpServer>(&loop, geysir::net::HttpLimits{},
                                          [this](HttpRequest&& req, std::shared_ptr<HttpResponder> resp) {
                                            HttpResponse r;
                                            r.body = "sni=" + req.tls_server_name + " tls=" + (req.tls ? "1" : "0") +
                                                     " path=" + req.path + " body=" + req.body;
                                            resp->Send(std::move(r));
                                          });
    server->SetTls(tls.get());
    REQUIRE(server->Listen("127.0.0.1", 0).ok());
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
  std::unique_ptr<TlsContext> tls;
  std::unique_ptr<HttpServer> server;
};

using Client = geysir::testing::TlsClient;

}  // namespace

TEST_CASE("TLS: SNI picks the certificate, ALPN http/1.1, keep-alive with large bodies", "[tls]") {
  Harness h;
  h.tls->SetCertificates({MakeCert("a.test", 101), MakeCert("b.test", 202)}, nullptr);
  const uint16_t port = h.server->port();
  std::string big(100'000, 'x');  // several TLS records each way
  bool ok = h.runner->Run([&] {
    Client a(port, "a.test");
    REQUIRE(a.handshake_ok());
    CHECK(a.Serial() == 101);
    CHECK(a.Alpn() == "http/1.1");
    CHECK(a.Get("/one") == "sni=a.test tls=1 path=/one body=");
    CHECK(a.Get("/two", big) == "sni=a.test tls=1 path=/two body=" + big);
    Client b(port, "B.Test");  // names compare case-insensitively
    REQUIRE(b.handshake_ok());
    CHECK(b.Serial() == 202);
    CHECK(b.Get("/") == "sni=b.test tls=1 path=/ body=");
    Client tls12(port, "a.test", "http/1.1", nullptr, TLS1_2_VERSION);
    REQUIRE(tls12.handshake_ok());
    CHECK(std::string(SSL_get_version(tls12.ssl())) == "TLSv1.2");
    CHECK(tls12.Get("/12") == "sni=a.test tls=1 path=/12 body=");
  });
  CHECK(ok);
}

TEST_CASE("TLS: an unknown name fails the handshake unless a fallback certificate exists", "[tls]") {
  Harness h;
  h.tls->SetCertificates({MakeCert("a.test", 1)}, nullptr);
  const uint16_t port = h.server->port();
  bool ok = h.runner->Run([&] {
    Client unknown(port, "nobody.test");
    CHECK_FALSE(unknown.handshake_ok());
    Client no_sni(port, "");
    CHECK_FALSE(no_sni.handshake_ok());
  });
  CHECK(ok);
  h.tls->SetCertificates({MakeCert("a.test", 1)}, MakeCert("fallback.test", 9));
  ok = h.runner->Run([&] {
    Client unknown(port, "nobody.test");
    REQUIRE(unknown.handshake_ok());
    CHECK(unknown.Serial() == 9);
    CHECK(unknown.Get("/") == "sni=nobody.test tls=1 path=/ body=");
  });
  CHECK(ok);
}

TEST_CASE("TLS: acme-tls/1 gets the challenge certificate and no HTTP", "[tls]") {
  Harness h;
  h.tls->SetCertificates({MakeCert("a.test", 1)}, nullptr);
  h.tls->SetAcmeCertificates({{"a.test", MakeCert("a.test", 77)}});
  const uint16_t port = h.server->port();
  bool ok = h.runner->Run([&] {
    Client v(port, "a.test", "acme-tls/1");
    REQUIRE(v.handshake_ok());
    CHECK(v.Serial() == 77);
    CHECK(v.Alpn() == "acme-tls/1");
    CHECK(v.ClosedByPeer());
    // A name with no challenge pending: the validation handshake fails, it never gets the
    // ordinary certificate.
    Client other(port, "b.test", "acme-tls/1");
    CHECK_FALSE(other.handshake_ok());
    // Ordinary clients are unaffected.
    Client normal(port, "a.test");
    REQUIRE(normal.handshake_ok());
    CHECK(normal.Serial() == 1);
  });
  CHECK(ok);
}

TEST_CASE("TLS: sessions resume (tickets, TLS 1.2 and 1.3)", "[tls]") {
  Harness h;
  h.tls->SetCertificates({MakeCert("a.test", 1)}, nullptr);
  const uint16_t port = h.server->port();
  bool ok = h.runner->Run([&] {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SSL_SESSION* session = nullptr;
      {
        Client first(port, "a.test", "http/1.1", nullptr, version);
        REQUIRE(first.handshake_ok());
        CHECK(first.Get("/") != "");  // TLS 1.3 tickets arrive after the handshake
        session = SSL_get1_session(first.ssl());
      }
      REQUIRE(session != nullptr);
      Client second(port, "a.test", "http/1.1", session, version);
      REQUIRE(second.handshake_ok());
      CHECK(SSL_session_reused(second.ssl()) == 1);
      CHECK(second.Get("/r") == "sni=a.test tls=1 path=/r body=");
      SSL_SESSION_free(session);
    }
  });
  CHECK(ok);
}

TEST_CASE("TLS: a replaced certificate serves new connections; open ones keep working", "[tls]") {
  Harness h;
  h.tls->SetCertificates({MakeCert("a.test", 1)}, nullptr);
  const uint16_t port = h.server->port();
  TlsCertificatePtr renewed = MakeCert("a.test", 2);
  bool ok = h.runner->Run([&] {
    Client old_conn(port, "a.test");
    REQUIRE(old_conn.handshake_ok());
    CHECK(old_conn.Get("/before") != "");
    // The swap happens on the loop thread, as a "tls" frame would apply it.
    std::atomic<bool> swapped{false};
    h.runner->Post([&] {
      h.tls->SetCertificates({renewed}, nullptr);
      swapped = true;
    });
    for (int i = 0; i < 200 && !swapped; ++i) usleep(5000);
    REQUIRE(swapped);
    CHECK(old_conn.Get("/after") == "sni=a.test tls=1 path=/after body=");
    CHECK(old_conn.Serial() == 1);
    Client new_conn(port, "a.test");
    REQUIRE(new_conn.handshake_ok());
    CHECK(new_conn.Serial() == 2);
  });
  CHECK(ok);
}

TEST_CASE("TlsCertificate: names, serial, validity, key mismatch", "[tls]") {
  TlsCertificatePtr c = MakeCert("www.example.test", 0x1234);
  CHECK(c->names() == std::vector<std::string>{"www.example.test"});
  CHECK(c->serial_hex() == "1234");
  CHECK(c->not_after_s() > c->not_before_s());
  CHECK(c->Covers("WWW.example.test"));
  CHECK_FALSE(c->Covers("example.test"));
  TlsCertificatePtr other = MakeCert("x.test", 1);
  std::string cert_pem = CertificatePem(c->leaf());
  std::string wrong_key = PrivateKeyPem(other->key());
  auto mismatch = TlsCertificate::FromPem(cert_pem, wrong_key);
  REQUIRE_FALSE(mismatch.ok());
  CHECK_THAT(mismatch.status().message(), Catch::Contains("does not belong"));
  CHECK_FALSE(TlsCertificate::FromPem("garbage", wrong_key).ok());
}
