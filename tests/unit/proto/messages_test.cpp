#include "proto/messages.h"

#include <catch2/catch.hpp>

using namespace geysir::proto;

TEST_CASE("an invoke request survives the JSON round trip", "[messages]") {
  InvokeRequest r;
  r.id = 42;
  r.request_id = "req-1";
  r.function.name = "hello";
  r.function.handler = "pkg.mod.handler";
  r.function.environment = {{"A", "1"}};
  r.function.reserved_concurrency = 5;
  r.source = InvokeSource::kFunctionUrl;
  r.want_log_tail = true;

  Frame f = MakeFrame(kMsgInvoke, r, "{}");
  CHECK(f.type() == "invoke");
  auto back = f.header.get<InvokeRequest>();
  CHECK(back.id == 42);
  CHECK(back.function.handler == "pkg.mod.handler");
  CHECK(back.function.environment.at("A") == "1");
  CHECK(back.function.reserved_concurrency == 5u);
  CHECK(back.function.log_group == "/aws/lambda/hello");
  CHECK(back.source == InvokeSource::kFunctionUrl);
  CHECK(back.want_log_tail);
}

TEST_CASE("a result from an older peer without optional fields still parses", "[messages]") {
  auto j = nlohmann::json::parse(R"({"id":3,"outcome":"timeout"})");
  auto r = j.get<InvokeResult>();
  CHECK(r.outcome == InvokeOutcome::kTimeout);
  CHECK_FALSE(r.init_duration_ms.has_value());
  CHECK(r.executed_version == "$LATEST");
}

TEST_CASE("an unknown outcome string is read as internal, never as ok", "[messages]") {
  auto j = nlohmann::json::parse(R"({"id":3,"outcome":"bogus"})");
  auto r = j.get<InvokeResult>();
  CHECK(r.outcome == InvokeOutcome::kInternal);
}
