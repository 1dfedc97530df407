#include "gateway/host.h"

#include <catch2/catch.hpp>

using geysir::gateway::HostMatch;
using geysir::gateway::MatchHost;
using geysir::gateway::StripPort;
using Kind = HostMatch::Kind;

TEST_CASE("function URL hosts are matched by suffix, with port and case ignored", "[host]") {
  auto m = MatchHost("abc123.lambda-url.localhost:8080", "localhost");
  CHECK(m.kind == Kind::kFunctionUrl);
  CHECK(m.url_id == "abc123");
  CHECK(m.domain_name == "abc123.lambda-url.localhost");

  m = MatchHost("ABC123.Lambda-URL.LocalHost", "localhost");
  CHECK(m.kind == Kind::kFunctionUrl);
  CHECK(m.url_id == "abc123");
  CHECK(m.domain_name == "abc123.lambda-url.localhost");

  m = MatchHost("abc.lambda-url.localhost.:80", "localhost");  // absolute form
  CHECK(m.kind == Kind::kFunctionUrl);
  CHECK(m.url_id == "abc");

  m = MatchHost("xyz.lambda-url.fn.example.com", "fn.example.com");
  CHECK(m.kind == Kind::kFunctionUrl);
  CHECK(m.url_id == "xyz");
}

TEST_CASE("other hosts are the platform's", "[host]") {
  CHECK(MatchHost("localhost:8080", "localhost").kind == Kind::kPlatform);
  CHECK(MatchHost("127.0.0.1:8080", "localhost").kind == Kind::kPlatform);
  CHECK(MatchHost("[::1]:8080", "localhost").kind == Kind::kPlatform);
  CHECK(MatchHost("", "localhost").kind == Kind::kPlatform);
  // The right shape under another base domain is not ours.
  CHECK(MatchHost("abc.lambda-url.example.com", "localhost").kind == Kind::kPlatform);
  CHECK(MatchHost("abc.lambda-url.localhost.evil.com", "localhost").kind == Kind::kPlatform);
  CHECK(MatchHost("abclambda-url.localhost", "localhost").kind == Kind::kPlatform);
}

TEST_CASE("malformed labels under the function URL domain", "[host]") {
  CHECK(MatchHost("lambda-url.localhost", "localhost").kind == Kind::kBadFunctionUrl);
  CHECK(MatchHost(".lambda-url.localhost", "localhost").kind == Kind::kBadFunctionUrl);
  CHECK(MatchHost("a.b.lambda-url.localhost", "localhost").kind == Kind::kBadFunctionUrl);
  CHECK(MatchHost("a_b.lambda-url.localhost", "localhost").kind == Kind::kBadFunctionUrl);
}

TEST_CASE("ports are stripped only when numeric", "[host]") {
  CHECK(StripPort("a.b:8080") == "a.b");
  CHECK(StripPort("a.b:") == "a.b");
  CHECK(StripPort("a.b") == "a.b");
  CHECK(StripPort("[::1]:80") == "[::1]");
  CHECK(StripPort("[::1]") == "[::1]");
  CHECK(StripPort("a:b") == "a:b");
}
