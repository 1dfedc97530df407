// API Gateway in the gateway: stage and route matching with AWS's precedence, the payload 1.0
// (REST proxy) event, the 2.0 event of an HTTP API route, and 1.0 output mapping.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gateway/api_match.h"
#include "gateway/event.h"
#include "gateway/host.h"
#include "gateway/result.h"
#include "gateway/routes.h"

using namespace geysir;
using gateway::ApiMatch;
using gateway::MatchApi;
using nlohmann::json;

namespace {

proto::ApiRoute Route(std::string method, std::string path, std::string resource_id = "r1") {
  proto::ApiRoute r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.resource_id = std::move(resource_id);
  return r;
}

proto::ApiGatewayApi RestApi() {
  proto::ApiGatewayApi api;
  api.api_id = "abc123defg";
  api.kind = "rest";
  proto::ApiStage dev;
  dev.name = "dev";
  dev.routes = {Route("ANY", "/", "root"),        Route("ANY", "/{proxy+}", "proxy"),
                Route("GET", "/users/{id}", "uid"), Route("ANY", "/users/{id}", "uany"),
                Route("GET", "/users/me", "me"),    Route("POST", "/files/{key+}", "files")};
  api.stages.push_back(dev);
  return api;
}

std::string Param(const ApiMatch& m, const std::string& name) {
  for (const auto& [k, v] : m.path_parameters) {
    if (k == name) return v;
  }
  return "<none>";
}

}  // namespace

TEST_CASE("REST API: the stage is the first segment; an unknown stage is kNoStage", "[api]") {
  auto api = RestApi();
  auto m = MatchApi(api, "GET", "/dev/hello");
  REQUIRE(m.result == ApiMatch::Result::kMatched);
  CHECK(m.stage->name == "dev");
  CHECK(m.path == "/hello");
  CHECK(MatchApi(api, "GET", "/prod/hello").result == ApiMatch::Result::kNoStage);
  CHECK(MatchApi(api, "GET", "/").result == ApiMatch::Result::kNoStage);
  // The stage root is the "/" resource.
  m = MatchApi(api, "GET", "/dev");
  REQUIRE(m.result == ApiMatch::Result::kMatched);
  CHECK(m.route->resource_id == "root");
  CHECK(m.path == "/");
  m = MatchApi(api, "DELETE", "/dev/");
  CHECK(m.route->resource_id == "root");
}

TEST_CASE("REST API: literal beats {param} beats {proxy+}; exact method beats ANY", "[api]") {
  auto api = RestApi();
  CHECK(MatchApi(api, "GET", "/dev/users/me").route->resource_id == "me");
  auto m = MatchApi(api, "GET", "/dev/users/42");
  CHECK(m.route->resource_id == "uid");
  CHECK(Param(m, "id") == "42");
  CHECK(MatchApi(api, "PUT", "/dev/users/42").route->resource_id == "uany");
  // "me" is GET only: a POST to it falls to the {id} template, not to the literal.
  CHECK(MatchApi(api, "POST", "/dev/users/me").route->resource_id == "uany");
  m = MatchApi(api, "GET", "/dev/users/42/posts");
  CHECK(m.route->resource_id == "proxy");
  CHECK(Param(m, "proxy") == "users/42/posts");
  // Greedy parameters span segments and are decoded.
  m = MatchApi(api, "POST", "/dev/files/a/b%20c/d.txt");
  CHECK(m.route->resource_id == "files");
  CHECK(Param(m, "key") == "a/b c/d.txt");
  CHECK(m.path == "/files/a/b%20c/d.txt");
}

TEST_CASE("REST API: no matching method or path is kNoRoute", "[api]") {
  proto::ApiGatewayApi api;
  api.kind = "rest";
  proto::ApiStage s;
  s.name = "v1";
  s.routes = {Route("GET", "/items"), Route("GET", "/items/{id}")};
  api.stages.push_back(s);
  CHECK(MatchApi(api, "POST", "/v1/items").result == ApiMatch::Result::kNoRoute);
  CHECK(MatchApi(api, "GET", "/v1/other").result == ApiMatch::Result::kNoRoute);
  CHECK(MatchApi(api, "GET", "/v1/items/1/2").result == ApiMatch::Result::kNoRoute);
  CHECK(MatchApi(api, "GET", "/v1").result == ApiMatch::Result::kNoRoute);  // no "/" resource
  // {proxy+} needs at least one segment.
  s.routes = {Route("ANY", "/{proxy+}")};
  api.stages = {s};
  CHECK(MatchApi(api, "GET", "/v1").result == ApiMatch::Result::kNoRoute);
  CHECK(MatchApi(api, "GET", "/v1/x").result == ApiMatch::Result::kMatched);
}

TEST_CASE("HTTP API: $default stage at the root, named stages as a prefix, $default route last", "[api]") {
  proto::ApiGatewayApi api;
  api.kind = "http";
  proto::ApiStage def;
  def.name = "$default";
  auto fallback = Route("ANY", "$default", "fallback");
  auto pets = Route("GET", "/pets/{id}", "pets");
  def.routes = {fallback, pets};
  proto::ApiStage v2 = def;
  v2.name = "v2";
  api.stages = {def, v2};

  auto m = MatchApi(api, "GET", "/pets/7");
  CHECK(m.stage->name == "$default");
  CHECK(m.route->resource_id == "pets");
  CHECK(Param(m, "id") == "7");
  m = MatchApi(api, "POST", "/pets/7");
  CHECK(m.route->resource_id == "fallback");
  CHECK(m.path_parameters.empty());
  m = MatchApi(api, "GET", "/v2/pets/8");
  CHECK(m.stage->name == "v2");
  CHECK(m.path == "/pets/8");
  CHECK(m.route->resource_id == "pets");

  // Without a $default stage, only named stages serve.
  api.stages = {v2};
  CHECK(MatchApi(api, "GET", "/pets/7").result == ApiMatch::Result::kNoStage);
  // Without a $default route, nothing else matches.
  v2.routes = {pets};
  api.stages = {v2};
  CHECK(MatchApi(api, "GET", "/v2/cats").result == ApiMatch::Result::kNoRoute);
}

TEST_CASE("binary media types match by type, wildcard subtype and */*", "[api]") {
  std::vector<std::string> any = {"*/*"};
  std::vector<std::string> images = {"image/*", "application/octet-stream"};
  CHECK(gateway::MatchesMediaType(any, "text/plain"));
  CHECK(gateway::MatchesMediaType(any, ""));
  CHECK(gateway::MatchesMediaType(images, "image/png"));
  CHECK(gateway::MatchesMediaType(images, "Application/Octet-Stream; charset=x"));
  CHECK_FALSE(gateway::MatchesMediaType(images, "text/plain"));
  CHECK_FALSE(gateway::MatchesMediaType(images, ""));
  CHECK_FALSE(gateway::MatchesMediaType({}, "image/png"));
}

TEST_CASE("execute-api hosts name an API", "[api][host]") {
  auto m = gateway::MatchHost("abc123defg.execute-api.localhost:8080", "localhost");
  CHECK(m.kind == gateway::HostMatch::Kind::kExecuteApi);
  CHECK(m.url_id == "abc123defg");
  CHECK(m.domain_name == "abc123defg.execute-api.localhost");
  CHECK(gateway::MatchHost("ABC.Execute-Api.localhost", "localhost").kind == gateway::HostMatch::Kind::kExecuteApi);
  CHECK(gateway::MatchHost("a_b.execute-api.localhost", "localhost").kind != gateway::HostMatch::Kind::kExecuteApi);
  CHECK(gateway::MatchHost("execute-api.localhost", "localhost").kind != gateway::HostMatch::Kind::kExecuteApi);
  CHECK(gateway::MatchHost("abc.execute-api.example.com", "localhost").kind == gateway::HostMatch::Kind::kPlatform);
}

TEST_CASE("the route index keeps APIs by lower-cased id", "[api]") {
  gateway::RouteIndex index;
  proto::RouteTable t;
  t.generation = 3;
  auto api = RestApi();
  api.api_id = "ABC123DEFG";
  t.apis.push_back(api);
  // Through JSON, as the frame carries it.
  proto::RouteTable back = json(t).get<proto::RouteTable>();
  REQUIRE(back.apis.size() == 1);
  CHECK(back.apis[0].stages[0].routes.size() == 6);
  CHECK_FALSE(back.apis[0].stages[0].routes[0].function.has_value());
  REQUIRE(index.Apply(back));
  REQUIRE(index.FindApi("abc123defg"));
  CHECK(index.FindApi("abc123defg")->stages[0].name == "dev");
  CHECK(index.FindApi("nope") == nullptr);
}

TEST_CASE("the payload 1.0 event has every field a REST proxy integration gets", "[api][event]") {
  net::HttpRequest r;
  r.method = "POST";
  r.target = "/dev/users/42?tag=a&tag=b%20c&x=1";
  r.path = "/dev/users/42";
  r.query = "tag=a&tag=b%20c&x=1";
  r.headers = {{"Host", "abc123defg.execute-api.localhost:8080"},
               {"User-Agent", "curl/8"},
               {"X-Multi", "one"},
               {"x-multi", "two"},
               {"Cookie", "a=1; b=2"},
               {"Content-Type", "application/json"}};
  r.body = R"({"k":"v"})";
  r.remote_addr = "127.0.0.1";
  r.received_at_ms = 1795757400123;

  gateway::NameValueList params = {{"id", "42"}};
  std::map<std::string, std::string> vars = {{"env", "dev"}};
  gateway::RestEventContext c;
  c.base.url_id = "abc123defg";
  c.base.domain_name = "abc123defg.execute-api.localhost";
  c.base.request_id = "6f1c2d3e-0000-4000-8000-000000000001";
  c.base.time_epoch_ms = 1795757400123;
  c.base.forwarded_port = 8080;
  c.base.account_id = "000000000000";
  c.base.stage = "dev";
  c.base.path_parameters = &params;
  c.base.stage_variables = &vars;
  c.resource_path = "/users/{id}";
  c.resource_id = "uid";
  c.path = "/users/42";
  json e = json::parse(gateway::BuildRestEvent(r, c));

  CHECK(e["resource"] == "/users/{id}");
  CHECK(e["path"] == "/users/42");
  CHECK(e["httpMethod"] == "POST");
  CHECK_FALSE(e.contains("version"));
  // Headers keep their spelling; repeats: the last in headers, all in multiValueHeaders.
  CHECK(e["headers"]["User-Agent"] == "curl/8");
  CHECK(e["headers"]["X-Multi"] == "two");
  CHECK(e["multiValueHeaders"]["X-Multi"] == json::array({"one", "two"}));
  CHECK(e["headers"]["Cookie"] == "a=1; b=2");
  CHECK(e["headers"]["X-Forwarded-For"] == "127.0.0.1");
  CHECK(e["headers"]["X-Forwarded-Port"] == "8080");
  CHECK(e["queryStringParameters"] == json({{"tag", "b c"}, {"x", "1"}}));
  CHECK(e["multiValueQueryStringParameters"]["tag"] == json::array({"a", "b c"}));
  CHECK(e["pathParameters"] == json({{"id", "42"}}));
  CHECK(e["stageVariables"] == json({{"env", "dev"}}));
  const json& rc = e["requestContext"];
  CHECK(rc["stage"] == "dev");
  CHECK(rc["resourcePath"] == "/users/{id}");
  CHECK(rc["resourceId"] == "uid");
  CHECK(rc["httpMethod"] == "POST");
  CHECK(rc["path"] == "/dev/users/42");
  CHECK(rc["accountId"] == "000000000000");
  CHECK(rc["apiId"] == "abc123defg");
  CHECK(rc["protocol"] == "HTTP/1.1");
  CHECK(rc["requestId"] == "6f1c2d3e-0000-4000-8000-000000000001");
  CHECK(rc["requestTimeEpoch"] == 1795757400123);
  CHECK(rc["requestTime"] == "27/Nov/2026:05:30:00 +0000");
  CHECK(rc["identity"]["sourceIp"] == "127.0.0.1");
  CHECK(rc["identity"]["userAgent"] == "curl/8");
  CHECK(rc["identity"]["user"].is_null());
  CHECK(e["body"] == R"({"k":"v"})");
  CHECK(e["isBase64Encoded"] == false);

  // A binary body (binaryMediaTypes matched) travels base64; no query or params are null.
  r.body = std::string("\x00\xff\x10", 3);
  r.query.clear();
  c.binary_body = true;
  c.base.path_parameters = nullptr;
  c.base.stage_variables = nullptr;
  c.version_field = true;
  e = json::parse(gateway::BuildRestEvent(r, c));
  CHECK(e["version"] == "1.0");
  CHECK(e["body"] == "AP8Q");
  CHECK(e["isBase64Encoded"] == true);
  CHECK(e["queryStringParameters"].is_null());
  CHECK(e["multiValueQueryStringParameters"].is_null());
  CHECK(e["pathParameters"].is_null());
  CHECK(e["stageVariables"].is_null());
  r.body.clear();
  e = json::parse(gateway::BuildRestEvent(r, c));
  CHECK(e["body"].is_null());
  CHECK(e["isBase64Encoded"] == false);
}

TEST_CASE("the 2.0 event of an HTTP API route carries its route key, stage and parameters", "[api][event]") {
  net::HttpRequest r;
  r.method = "GET";
  r.target = "/v2/pets/7";
  r.path = "/v2/pets/7";
  r.remote_addr = "127.0.0.1";
  gateway::NameValueList params = {{"id", "7"}};
  gateway::EventContext c;
  c.url_id = "abc123defg";
  c.request_id = "r";
  c.account_id = "000000000000";
  c.route_key = "GET /pets/{id}";
  c.stage = "v2";
  c.path_parameters = &params;
  json e = json::parse(gateway::BuildFunctionUrlEvent(r, c));
  CHECK(e["version"] == "2.0");
  CHECK(e["routeKey"] == "GET /pets/{id}");
  CHECK(e["rawPath"] == "/v2/pets/7");
  CHECK(e["pathParameters"] == json({{"id", "7"}}));
  CHECK_FALSE(e.contains("stageVariables"));
  CHECK(e["requestContext"]["routeKey"] == "GET /pets/{id}");
  CHECK(e["requestContext"]["stage"] == "v2");
  CHECK(e["requestContext"]["accountId"] == "000000000000");
}

TEST_CASE("payload 1.0 output: multiValueHeaders merge, base64 by binary media types", "[api][result]") {
  gateway::ApiOutputOptions none;
  auto r = gateway::MapProxyOutputV1(
      R"({"statusCode":201,"headers":{"X-A":"1","Set-Cookie":"dropped=1"},)"
      R"("multiValueHeaders":{"Set-Cookie":["a=1","b=2"],"X-B":["x","y"]},"body":"hi"})",
      none);
  REQUIRE(r.ok());
  CHECK(r->status == 201);
  CHECK(r->body == "hi");
  std::vector<std::string> cookies, xb;
  bool have_xa = false, have_ct = false;
  for (const auto& [n, v] : r->headers) {
    if (n == "Set-Cookie") cookies.push_back(v);
    if (n == "X-B") xb.push_back(v);
    if (n == "X-A") have_xa = v == "1";
    if (n == "Content-Type") have_ct = v == "application/json";
  }
  CHECK(cookies == std::vector<std::string>{"a=1", "b=2"});
  CHECK(xb == std::vector<std::string>{"x", "y"});
  CHECK(have_xa);
  CHECK(have_ct);

  const std::string b64 = R"({"statusCode":200,"headers":{"Content-Type":"image/png"},"body":"AP8Q","isBase64Encoded":true})";
  // A REST API without binary media types sends the base64 text.
  r = gateway::MapProxyOutputV1(b64, none);
  REQUIRE(r.ok());
  CHECK(r->body == "AP8Q");
  std::vector<std::string> all = {"*/*"};
  gateway::ApiOutputOptions rest;
  rest.binary_types = &all;
  rest.accept = "*/*";
  r = gateway::MapProxyOutputV1(b64, rest);
  REQUIRE(r.ok());
  CHECK(r->body == std::string("\x00\xff\x10", 3));
  gateway::ApiOutputOptions http;
  http.always_decode = true;
  CHECK(gateway::MapProxyOutputV1(b64, http)->body == std::string("\x00\xff\x10", 3));

  // What API Gateway calls a malformed Lambda proxy response.
  CHECK_FALSE(gateway::MapProxyOutputV1(R"("hello")", none).ok());
  CHECK_FALSE(gateway::MapProxyOutputV1(R"({"body":"x"})", none).ok());
  CHECK_FALSE(gateway::MapProxyOutputV1(R"({"statusCode":200,"body":{"a":1}})", none).ok());
  CHECK(gateway::MapProxyOutputV1(R"({"statusCode":"404"})", none)->status == 404);

  proto::InvokeResult ok;
  ok.outcome = proto::InvokeOutcome::kOk;
  auto bad = gateway::MapApiResult(ok, R"({"body":"x"})", "1.0", none);
  CHECK(bad.status == 502);
  CHECK(json::parse(bad.body) == json({{"message", "Internal server error"}}));
  // An HTTP API words the same failure with capitals (AWS's own two spellings).
  gateway::ApiOutputOptions http_api;
  http_api.http_api = true;
  CHECK(json::parse(gateway::MapApiResult(ok, R"({"body":"x"})", "1.0", http_api).body) ==
        json({{"message", "Internal Server Error"}}));
  // Format 2.0 infers a response from any JSON value, as for function URLs.
  auto inferred = gateway::MapApiResult(ok, R"({"body":"x"})", "2.0", none);
  CHECK(inferred.status == 200);
  proto::InvokeResult timeout;
  timeout.outcome = proto::InvokeOutcome::kTimeout;
  auto t = gateway::MapApiResult(timeout, "{}", "1.0", none);
  CHECK(t.status == 504);
  CHECK(json::parse(t.body) == json({{"message", "Endpoint request timed out"}}));
}
