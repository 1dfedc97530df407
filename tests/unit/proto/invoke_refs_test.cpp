// Invoke headers name a config sent earlier on the connection (proto/invoke_refs.h).
#include "proto/invoke_refs.h"

#include <catch2/catch.hpp>

using namespace geysir::proto;

namespace {

InvokeRequest Request(const std::string& name, const std::string& revision, uint64_t id) {
  InvokeRequest r;
  r.id = id;
  r.request_id = "req-" + std::to_string(id);
  r.function.name = name;
  r.function.revision_id = revision;
  r.function.handler = "app.handler";
  r.function.log_group = "/aws/lambda/" + name;  // as from_json completes it
  r.function.environment = {{"A", "1"}, {"B", std::string(200, 'b')}};
  r.source = InvokeSource::kFunctionUrl;
  return r;
}

// What travels: the header as bytes and back, as a frame carries it.
nlohmann::json Wire(const nlohmann::json& j) { return nlohmann::json::parse(j.dump()); }

}  // namespace

TEST_CASE("a config goes in full once per connection, then by reference", "[invoke_refs]") {
  InvokeRefSender sender;
  InvokeRefTable table;
  auto first = Wire(sender.Encode(Request("hello", "r1", 1)));
  CHECK(first.contains("function"));
  CHECK(first.contains("function_ref"));
  auto second = Wire(sender.Encode(Request("hello", "r1", 2)));
  CHECK_FALSE(second.contains("function"));
  CHECK(second.dump().size() < first.dump().size() / 2);

  auto a = table.Decode(first);
  REQUIRE(a.ok());
  auto b = table.Decode(second);
  REQUIRE(b.ok());
  CHECK(b->id == 2);
  CHECK(b->request_id == "req-2");
  CHECK(b->source == InvokeSource::kFunctionUrl);
  CHECK(b->function == Request("hello", "r1", 2).function);
  CHECK(b->function.environment.at("B").size() == 200);
}

TEST_CASE("a changed config goes in full again and replaces the old one", "[invoke_refs]") {
  InvokeRefSender sender;
  InvokeRefTable table;
  REQUIRE(table.Decode(Wire(sender.Encode(Request("hello", "r1", 1)))).ok());
  // A new revision, and a change that keeps the revision (reserved concurrency).
  auto next = Request("hello", "r2", 2);
  auto h = Wire(sender.Encode(next));
  CHECK(h.contains("function"));
  REQUIRE(table.Decode(h).ok());
  next.function.reserved_concurrency = 3;
  h = Wire(sender.Encode(next));
  CHECK(h.contains("function"));
  REQUIRE(table.Decode(h).ok());
  auto again = table.Decode(Wire(sender.Encode(next)));
  REQUIRE(again.ok());
  CHECK(again->function.revision_id == "r2");
  CHECK(again->function.reserved_concurrency == 3u);
  CHECK(table.size() == 1);  // one entry per function
  CHECK(sender.size() == 1);
}

TEST_CASE("after a reconnect everything goes in full again", "[invoke_refs]") {
  InvokeRefSender sender;
  (void)sender.Encode(Request("hello", "r1", 1));
  sender.Clear();
  InvokeRefTable fresh;  // the scheduler's table for the new connection
  auto h = Wire(sender.Encode(Request("hello", "r1", 2)));
  CHECK(h.contains("function"));
  CHECK(fresh.Decode(h).ok());
}

TEST_CASE("an unknown or malformed reference is refused, not guessed", "[invoke_refs]") {
  InvokeRefTable table;
  auto r = table.Decode(nlohmann::json{{"id", 1}, {"request_id", "x"}, {"function_ref", 7}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("unknown function_ref 7") != std::string::npos);
  CHECK_FALSE(table.Decode(nlohmann::json{{"id", 1}, {"request_id", "x"}}).ok());
  CHECK_FALSE(table.Decode(nlohmann::json{{"id", 1}, {"request_id", "x"}, {"function_ref", "7"}}).ok());
  CHECK_FALSE(table.Decode(nlohmann::json{{"id", "one"}, {"request_id", "x"}, {"function", {{"name", "f"}}}}).ok());
  // The whole form without a reference still works (an older sender).
  auto whole = table.Decode(Wire(nlohmann::json(Request("f", "r", 3))));
  REQUIRE(whole.ok());
  CHECK(whole->function.name == "f");
  CHECK(table.size() == 0);
}

TEST_CASE("past the bound a new function's config goes in full every time", "[invoke_refs]") {
  InvokeRefSender sender;
  InvokeRefTable table;
  for (size_t i = 0; i < kMaxFunctionRefs; ++i) {
    REQUIRE(table.Decode(Wire(sender.Encode(Request("f" + std::to_string(i), "r", i + 1)))).ok());
  }
  auto extra = Request("one-more", "r", 5000);
  for (int i = 0; i < 2; ++i) {
    auto h = Wire(sender.Encode(extra));
    CHECK(h.contains("function"));
    CHECK_FALSE(h.contains("function_ref"));
    CHECK(table.Decode(h).ok());
  }
  CHECK(sender.size() == kMaxFunctionRefs);
  CHECK(table.size() == kMaxFunctionRefs);
  // The known ones still go by reference.
  CHECK_FALSE(Wire(sender.Encode(Request("f0", "r", 6000))).contains("function"));
}
