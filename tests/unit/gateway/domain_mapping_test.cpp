// Custom domains in front of API Gateway APIs: picking the API mapping by base path (longest
// segment-wise prefix, "" for the rest), stripping it, and matching a route in the mapping's
// stage with no stage segment in the URL.
#include <catch2/catch.hpp>

#include "gateway/api_match.h"

using namespace geysir;
using gateway::ApiMatch;

namespace {

proto::CustomDomainRoute Mapping(std::string key, std::string api) {
  return proto::CustomDomainRoute{"api.example.com", "", std::move(api), "prod", std::move(key)};
}

proto::ApiGatewayApi Api(std::string kind) {
  proto::ApiGatewayApi api;
  api.api_id = "a1";
  api.kind = std::move(kind);
  proto::ApiStage prod;
  prod.name = "prod";
  proto::ApiRoute users;
  users.method = "GET";
  users.path = "/users/{id}";
  proto::ApiRoute fallback;
  fallback.method = "ANY";
  fallback.path = "$default";
  prod.routes = {users, fallback};
  api.stages.push_back(prod);
  return api;
}

}  // namespace

TEST_CASE("custom domain: the longest base path wins and is stripped", "[api][domain]") {
  std::vector<proto::CustomDomainRoute> maps = {Mapping("", "root"), Mapping("v1", "one"),
                                                Mapping("orders/v1", "orders")};
  std::string rest;
  const proto::CustomDomainRoute* m = gateway::MatchMapping(maps, "/v1/users/7", &rest);
  REQUIRE(m != nullptr);
  CHECK(m->api_id == "one");
  CHECK(rest == "/users/7");
  m = gateway::MatchMapping(maps, "/v1", &rest);
  REQUIRE(m != nullptr);
  CHECK(m->api_id == "one");
  CHECK(rest == "/");
  m = gateway::MatchMapping(maps, "/orders/v1/7?ignored", &rest);
  REQUIRE(m != nullptr);
  CHECK(m->api_id == "orders");
  CHECK(rest == "/7?ignored");
  // Segment-wise: "/v10" and "/orders/v2" are not under "v1" / "orders/v1".
  m = gateway::MatchMapping(maps, "/v10/x", &rest);
  REQUIRE(m != nullptr);
  CHECK(m->api_id == "root");
  CHECK(rest == "/v10/x");
  m = gateway::MatchMapping(maps, "/orders/v2", &rest);
  REQUIRE(m != nullptr);
  CHECK(m->api_id == "root");
  // Case-sensitive, as AWS compares base paths.
  CHECK(gateway::MatchMapping(maps, "/V1/x", &rest)->api_id == "root");
  // Without a root mapping an uncovered path matches nothing (AWS: 403 Forbidden).
  std::vector<proto::CustomDomainRoute> only = {Mapping("v1", "one")};
  CHECK(gateway::MatchMapping(only, "/v2/users", &rest) == nullptr);
  CHECK(gateway::MatchMapping(only, "/", &rest) == nullptr);
}

TEST_CASE("custom domain: the mapping's stage is forced", "[api][domain]") {
  auto rest_api = Api("rest");
  auto m = gateway::MatchApiStage(rest_api, "prod", "GET", "/users/7");
  REQUIRE(m.result == ApiMatch::Result::kMatched);
  CHECK(m.route->path == "/users/{id}");
  CHECK(m.path == "/users/7");
  REQUIRE(m.path_parameters.size() == 1);
  CHECK(m.path_parameters[0].second == "7");
  // A "prod" segment in the URL is just a path segment here.
  CHECK(gateway::MatchApiStage(rest_api, "prod", "GET", "/prod/users/7").result == ApiMatch::Result::kNoRoute);
  CHECK(gateway::MatchApiStage(rest_api, "dev", "GET", "/users/7").result == ApiMatch::Result::kNoStage);
  // An HTTP API falls back to its $default route, in the forced stage too.
  auto http_api = Api("http");
  m = gateway::MatchApiStage(http_api, "prod", "POST", "/anything");
  REQUIRE(m.result == ApiMatch::Result::kMatched);
  CHECK(m.route->path == "$default");
}
