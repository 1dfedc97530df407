#include "gateway/result.h"

#include <strings.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using geysir::gateway::MapHandlerOutput;
using geysir::gateway::MapInvokeResult;
using geysir::net::HeaderList;
using geysir::net::HttpResponse;
using geysir::proto::InvokeOutcome;
using geysir::proto::InvokeResult;

namespace {

std::vector<std::string> All(const HeaderList& h, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : h) {
    if (n.size() == name.size() && strncasecmp(n.c_str(), name.c_str(), n.size()) == 0) out.push_back(v);
  }
  return out;
}

HttpResponse Ok(const std::string& payload) {
  InvokeResult r;
  r.outcome = InvokeOutcome::kOk;
  return MapInvokeResult(r, payload);
}

}  // namespace

TEST_CASE("a response object is honoured", "[result]") {
  HttpResponse r = Ok(R"({"statusCode":201,"headers":{"X-Custom":"v","Content-Type":"text/plain","X-Num":5},
                          "cookies":["a=1; Path=/","b=2"],"body":"created"})");
  CHECK(r.status == 201);
  CHECK(r.body == "created");
  CHECK(All(r.headers, "content-type") == std::vector<std::string>{"text/plain"});
  CHECK(All(r.headers, "x-custom") == std::vector<std::string>{"v"});
  CHECK(All(r.headers, "x-num") == std::vector<std::string>{"5"});
  CHECK(All(r.headers, "set-cookie") == std::vector<std::string>{"a=1; Path=/", "b=2"});
}

TEST_CASE("content-type defaults to application/json; missing body is empty", "[result]") {
  HttpResponse r = Ok(R"({"statusCode":204})");
  CHECK(r.status == 204);
  CHECK(r.body.empty());
  CHECK(All(r.headers, "content-type") == std::vector<std::string>{"application/json"});
}

TEST_CASE("base64 bodies are decoded", "[result]") {
  HttpResponse r = Ok(R"({"statusCode":200,"isBase64Encoded":true,"body":"AAH+/w==","headers":{"content-type":"image/png"}})");
  CHECK(r.status == 200);
  CHECK(r.body == std::string("\x00\x01\xfe\xff", 4));
  // isBase64Encoded false leaves the body alone.
  r = Ok(R"({"statusCode":200,"isBase64Encoded":false,"body":"AAH+/w=="})");
  CHECK(r.body == "AAH+/w==");
}

TEST_CASE("any other JSON value is a 200 application/json body, verbatim", "[result]") {
  for (std::string payload : std::vector<std::string>{R"("Hello, world!")", R"({"message":"hi"})", "42", "[1,2]", "null", "true"}) {
    HttpResponse r = Ok(payload);
    CHECK(r.status == 200);
    CHECK(r.body == payload);
    CHECK(All(r.headers, "content-type") == std::vector<std::string>{"application/json"});
  }
}

TEST_CASE("malformed response objects are 502", "[result]") {
  for (std::string payload : std::vector<std::string>{R"({"statusCode":"200"})", R"({"statusCode":20.5})", R"({"statusCode":99})",
                              R"({"statusCode":700})", R"({"statusCode":null})",
                              R"({"statusCode":200,"isBase64Encoded":true,"body":"@@@"})",
                              R"({"statusCode":200,"cookies":[1]})", R"({"statusCode":200,"headers":[]})",
                              "not json"}) {
    INFO(payload);
    std::string problem;
    InvokeResult res;
    res.outcome = InvokeOutcome::kOk;
    HttpResponse r = MapInvokeResult(res, payload, &problem);
    CHECK(r.status == 502);
    CHECK_FALSE(problem.empty());
  }
  CHECK(MapHandlerOutput(R"({"statusCode":200.0})").value().status == 200);
}

TEST_CASE("a function cannot split the response or set framing headers", "[result]") {
  HttpResponse r = Ok(R"({"statusCode":200,"headers":{"X-Bad":"a\r\nInjected: 1","Content-Length":"999",
                          "Transfer-Encoding":"chunked","Bad Name":"x","X-Good":"ok"},
                          "cookies":["c=1\r\nX: y"],"body":"hi"})");
  CHECK(r.status == 200);
  CHECK(All(r.headers, "x-bad").empty());
  CHECK(All(r.headers, "content-length").empty());
  CHECK(All(r.headers, "transfer-encoding").empty());
  CHECK(All(r.headers, "bad name").empty());
  CHECK(All(r.headers, "set-cookie").empty());
  CHECK(All(r.headers, "x-good") == std::vector<std::string>{"ok"});
}

TEST_CASE("outcomes other than ok map to gateway errors", "[result]") {
  auto map = [](InvokeOutcome o, std::string payload = "{}") {
    InvokeResult r;
    r.outcome = o;
    return MapInvokeResult(r, payload);
  };
  HttpResponse r = map(InvokeOutcome::kUnhandled, R"({"errorMessage":"boom","errorType":"Exception"})");
  CHECK(r.status == 502);
  CHECK(nlohmann::json::parse(r.body)["Message"] == "Internal Server Error");
  CHECK(map(InvokeOutcome::kTimeout).status == 504);
  r = map(InvokeOutcome::kThrottled, R"({"message":"queue full"})");
  CHECK(r.status == 429);
  CHECK(nlohmann::json::parse(r.body)["Message"] == "Too Many Requests");
  CHECK(map(InvokeOutcome::kInternal, R"({"message":"sandbox setup failed"})").status == 502);
  CHECK(map(InvokeOutcome::kUnavailable, R"({"message":"scheduler unavailable: connection refused"})").status == 503);
  r = map(InvokeOutcome::kUnavailable, "not even JSON");
  CHECK(r.status == 503);
  CHECK(nlohmann::json::parse(r.body)["Message"] == "Service Unavailable");
  // The outcome decides, not the words: an internal failure that happens to say them is a 502.
  CHECK(map(InvokeOutcome::kInternal, R"({"message":"scheduler unavailable: connection refused"})").status == 502);
  CHECK(All(map(InvokeOutcome::kTimeout).headers, "content-type") == std::vector<std::string>{"application/json"});
}

TEST_CASE("a result nested past the bound or with a huge statusCode is a 502, not a crash", "[result]") {
  // The gateway dumped an object "body" recursively: 100,000 levels overflowed its stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (std::string payload : {R"({"statusCode":200,"body":)" + deep + "}", deep, std::string(R"({"statusCode":1e300})"),
                              std::string(R"({"statusCode":-1e300})"), std::string(R"({"statusCode":18446744073709551615})")}) {
    INFO(payload.substr(0, 60));
    std::string problem;
    InvokeResult res;
    res.outcome = InvokeOutcome::kOk;
    HttpResponse r = MapInvokeResult(res, payload, &problem);
    CHECK(r.status == 502);
    CHECK_FALSE(problem.empty());
  }
  // Within the bound, an object body is still serialised as before.
  const std::string ok = std::string(100, '[') + std::string(100, ']');
  HttpResponse r = Ok(R"({"statusCode":200,"body":)" + ok + "}");
  CHECK(r.status == 200);
  CHECK(r.body == ok);
}
