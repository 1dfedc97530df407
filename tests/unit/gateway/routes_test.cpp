#include "gateway/routes.h"

#include <catch2/catch.hpp>

using geysir::gateway::RouteIndex;
using geysir::proto::Frame;
using geysir::proto::FunctionUrlRoute;
using geysir::proto::RouteTable;

namespace {
RouteTable Table(uint64_t gen, std::vector<std::pair<std::string, std::string>> routes) {
  RouteTable t;
  t.generation = gen;
  for (auto& [id, fn] : routes) {
    FunctionUrlRoute r;
    r.url_id = id;
    r.function.name = fn;
    t.function_urls.push_back(r);
  }
  return t;
}
}  // namespace

TEST_CASE("route index keeps the newest table", "[routes]") {
  RouteIndex idx;
  CHECK_FALSE(idx.loaded());
  CHECK(idx.Apply(Table(3, {{"AbC", "hello"}})));
  REQUIRE(idx.Find("abc"));
  CHECK(idx.Find("abc")->function.name == "hello");
  CHECK(idx.Find("nope") == nullptr);

  auto held = idx.Find("abc");
  CHECK_FALSE(idx.Apply(Table(2, {{"old", "x"}})));  // stale
  CHECK(idx.Find("old") == nullptr);
  CHECK(idx.Apply(Table(4, {{"new", "world"}})));
  CHECK(idx.Find("abc") == nullptr);
  CHECK(held->function.name == "hello");  // an in-flight request's route survives the swap
  CHECK(idx.generation() == 4);
}

TEST_CASE("route frames are parsed without throwing", "[routes]") {
  RouteIndex idx;
  Frame ok;
  ok.header = Table(7, {{"u1", "f1"}});
  ok.header["type"] = "routes";
  CHECK(idx.ApplyFrame(ok).ok());
  CHECK(idx.generation() == 7);

  Frame bad;
  bad.header = {{"type", "routes"}, {"generation", "seven"}, {"function_urls", 5}};
  CHECK_FALSE(idx.ApplyFrame(bad).ok());
  CHECK(idx.generation() == 7);
  CHECK(idx.Find("u1"));
}

TEST_CASE("the first table from a new control connection is taken whatever its generation", "[routes]") {
  RouteIndex idx;
  CHECK(idx.Apply(Table(100, {{"a", "f"}})));
  idx.NewSource();
  CHECK(idx.Apply(Table(3, {{"b", "g"}})));
  CHECK(idx.generation() == 3);
  CHECK(idx.Find("b"));
  CHECK_FALSE(idx.Apply(Table(2, {{"c", "h"}})));  // same connection again: stale is stale
}
