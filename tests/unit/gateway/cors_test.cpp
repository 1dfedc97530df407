#include "gateway/cors.h"

#include <strings.h>

#include <catch2/catch.hpp>

using geysir::gateway::ApplyCors;
using geysir::gateway::IsPreflight;
using geysir::gateway::PreflightResponse;
using geysir::net::HttpRequest;
using geysir::net::HttpResponse;
using nlohmann::json;

namespace {
std::string H(const HttpResponse& r, const char* name) {
  for (const auto& [n, v] : r.headers) {
    if (strcasecmp(n.c_str(), name) == 0) return v;
  }
  return "";
}
HttpRequest Preflight(const std::string& origin) {
  HttpRequest r;
  r.method = "OPTIONS";
  r.headers = {{"Origin", origin}, {"Access-Control-Request-Method", "POST"}};
  return r;
}
}  // namespace

TEST_CASE("preflights are answered from the Cors configuration", "[cors]") {
  json cors = {{"AllowOrigins", {"https://a.example"}},
               {"AllowMethods", {"GET", "POST"}},
               {"AllowHeaders", {"x-custom", "content-type"}},
               {"MaxAge", 600}};
  REQUIRE(IsPreflight(Preflight("https://a.example")));
  HttpRequest plain_options;
  plain_options.method = "OPTIONS";
  CHECK_FALSE(IsPreflight(plain_options));

  HttpResponse r = PreflightResponse(cors, Preflight("https://a.example"));
  CHECK(r.status == 200);
  CHECK(H(r, "access-control-allow-origin") == "https://a.example");
  CHECK(H(r, "access-control-allow-methods") == "GET,POST");
  CHECK(H(r, "access-control-allow-headers") == "x-custom,content-type");
  CHECK(H(r, "access-control-max-age") == "600");
  CHECK(H(r, "access-control-allow-credentials").empty());

  r = PreflightResponse(cors, Preflight("https://evil.example"));
  CHECK(r.status == 200);
  CHECK(H(r, "access-control-allow-origin").empty());
}

TEST_CASE("function responses get the configured CORS headers, replacing the function's", "[cors]") {
  json cors = {{"AllowOrigins", {"*"}}, {"ExposeHeaders", {"x-total"}}};
  HttpResponse r;
  r.headers = {{"Access-Control-Allow-Origin", "https://mine"}, {"X-Other", "1"}};
  std::string origin = "https://b.example";
  ApplyCors(cors, &origin, r);
  CHECK(H(r, "access-control-allow-origin") == "*");
  CHECK(H(r, "access-control-expose-headers") == "x-total");
  CHECK(H(r, "x-other") == "1");

  // With credentials a wildcard must echo the origin.
  cors["AllowCredentials"] = true;
  HttpResponse r2;
  ApplyCors(cors, &origin, r2);
  CHECK(H(r2, "access-control-allow-origin") == "https://b.example");
  CHECK(H(r2, "access-control-allow-credentials") == "true");
  CHECK(H(r2, "vary") == "Origin");

  // A disallowed origin gets no CORS headers at all.
  json strict = {{"AllowOrigins", {"https://a.example"}}};
  HttpResponse r3;
  r3.headers = {{"access-control-allow-origin", "*"}};
  ApplyCors(strict, &origin, r3);
  CHECK(H(r3, "access-control-allow-origin").empty());
}
