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

TEST_CASE("the unavailable outcome has its own name on the wire", "[messages]") {
  InvokeResult r;
  r.outcome = InvokeOutcome::kUnavailable;
  nlohmann::json j = r;
  CHECK(j["outcome"] == "unavailable");
  CHECK(j.get<InvokeResult>().outcome == InvokeOutcome::kUnavailable);
}

TEST_CASE("a logs header of several batches, or of one, is taken whole; a malformed one throws", "[messages]") {
  LogBatch a;
  a.function_name = "hello";
  a.log_stream = "s";
  a.request_id = "r1";
  a.events = {{1, "START"}, {2, "line \"quoted\""}};
  a.outcome = "ok";
  a.duration_ms = 1.5;
  a.sender = "x";
  a.seq = 7;
  LogBatch b = a;
  b.request_id = "r2";
  b.seq = 8;
  b.outcome.clear();
  auto wire = nlohmann::json::parse(EncodeFrame(MakeFrame(kMsgLogs, LogBatches{{a, b}})).substr(8));
  auto copied = wire.get<LogBatches>();
  LogBatches taken = TakeLogBatches(wire);
  REQUIRE(taken.batches.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const LogBatch& t = taken.batches[i];
    const LogBatch& c = copied.batches[i];
    CHECK(t.function_name == c.function_name);
    CHECK(t.version == c.version);
    CHECK(t.request_id == c.request_id);
    CHECK(t.outcome == c.outcome);
    CHECK(t.duration_ms == c.duration_ms);
    CHECK(t.sender == "x");
    CHECK(t.seq == c.seq);
    REQUIRE(t.events.size() == 2);
    CHECK(t.events[1].timestamp_ms == 2);
    CHECK(t.events[1].message == "line \"quoted\"");
  }
  // The single-batch form (no "batches"); an absent version is $LATEST, as from_json reads it.
  auto single = nlohmann::json::parse(EncodeFrame(MakeFrame(kMsgLogs, a)).substr(8));
  single.erase("version");
  LogBatches one = TakeLogBatches(single);
  CHECK(one.batches.at(0).seq == 7);
  CHECK(one.batches.at(0).version == "$LATEST");
  // Shapes that are not batches.
  for (const char* bad : {R"({"batches": 3})", R"({"batches": [3]})", R"({"batches": [{"events": []}]})",
                          R"({"function_name": "f", "events": [{"ts": 1, "msg": 2}]})",
                          R"({"function_name": "f", "events": {"ts": 1}})", R"({"function_name": 5})"}) {
    auto j = nlohmann::json::parse(bad);
    INFO(bad);
    CHECK_THROWS_AS(TakeLogBatches(j), nlohmann::json::exception);
  }
}
