#include "gateway/event.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using geysir::gateway::BuildFunctionUrlEvent;
using geysir::gateway::EventContext;
using geysir::gateway::FormatRequestTime;
using geysir::net::HttpRequest;
using nlohmann::json;

namespace {

HttpRequest Sample() {
  HttpRequest r;
  r.method = "POST";
  r.target = "/my/path%20x?b=2&a=1&a=%E2%82%AC+x&flag&=empty";
  r.path = "/my/path%20x";
  r.query = "b=2&a=1&a=%E2%82%AC+x&flag&=empty";
  r.headers = {{"Host", "abc.lambda-url.localhost:8080"},
               {"User-Agent", "curl/7.88.1"},
               {"X-Multi", "one"},
               {"Cookie", "s=1; theme=dark"},
               {"x-multi", "two"},
               {"Cookie", "lang=is"},
               {"Content-Type", "application/json"},
               {"X-Forwarded-Proto", "https"}};
  r.body = R"({"k":"v"})";
  r.remote_addr = "127.0.0.1";
  r.remote_port = 5555;
  r.received_at_ms = 1795757400123;  // 2026-11-27T05:30:00.123Z
  return r;
}

EventContext Context() {
  EventContext c;
  c.url_id = "abc";
  c.domain_name = "abc.lambda-url.localhost";
  c.request_id = "6f1c2d3e-0000-4000-8000-000000000001";
  c.time_epoch_ms = 1795757400123;
  c.forwarded_port = 8080;
  return c;
}

}  // namespace

TEST_CASE("a representative request becomes AWS's payload 2.0 event", "[event]") {
  json e = json::parse(BuildFunctionUrlEvent(Sample(), Context()));
  CHECK(e["version"] == "2.0");
  CHECK(e["routeKey"] == "$default");
  CHECK(e["rawPath"] == "/my/path%20x");
  CHECK(e["rawQueryString"] == "b=2&a=1&a=%E2%82%AC+x&flag&=empty");
  CHECK(e["cookies"] == json::array({"s=1", "theme=dark", "lang=is"}));

  const json& h = e["headers"];
  CHECK(h["host"] == "abc.lambda-url.localhost:8080");
  CHECK(h["user-agent"] == "curl/7.88.1");
  CHECK(h["x-multi"] == "one,two");
  CHECK(h["content-type"] == "application/json");
  CHECK_FALSE(h.contains("cookie"));
  CHECK_FALSE(h.contains("Host"));
  // Set by the edge, not by the client.
  CHECK(h["x-forwarded-proto"] == "http");
  CHECK(h["x-forwarded-port"] == "8080");
  CHECK(h["x-forwarded-for"] == "127.0.0.1");

  const json& q = e["queryStringParameters"];
  CHECK(q["b"] == "2");
  CHECK(q["a"] == "1,\xe2\x82\xac x");
  CHECK(q["flag"] == "");
  CHECK(q[""] == "empty");

  const json& rc = e["requestContext"];
  CHECK(rc["accountId"] == "anonymous");
  CHECK(rc["apiId"] == "abc");
  CHECK(rc["domainName"] == "abc.lambda-url.localhost");
  CHECK(rc["domainPrefix"] == "abc");
  CHECK(rc["http"]["method"] == "POST");
  CHECK(rc["http"]["path"] == "/my/path%20x");
  CHECK(rc["http"]["protocol"] == "HTTP/1.1");
  CHECK(rc["http"]["sourceIp"] == "127.0.0.1");
  CHECK(rc["http"]["userAgent"] == "curl/7.88.1");
  CHECK(rc["requestId"] == "6f1c2d3e-0000-4000-8000-000000000001");
  CHECK(rc["routeKey"] == "$default");
  CHECK(rc["stage"] == "$default");
  CHECK(rc["time"] == "27/Nov/2026:05:30:00 +0000");
  CHECK(rc["timeEpoch"] == 1795757400123ull);

  CHECK(e["body"] == R"({"k":"v"})");
  CHECK(e["isBase64Encoded"] == false);
}

TEST_CASE("binary and form bodies are base64, empty bodies are omitted", "[event]") {
  HttpRequest r = Sample();
  r.headers = {{"Host", "abc.lambda-url.localhost"}, {"Content-Type", "application/octet-stream"}};
  r.body = std::string("\x00\x01\xfe\xff", 4);
  json e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["body"] == "AAH+/w==");
  CHECK(e["isBase64Encoded"] == true);

  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  r.body = "a=1&b=2";
  e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["body"] == "YT0xJmI9Mg==");
  CHECK(e["isBase64Encoded"] == true);

  // No Content-Type at all: AWS treats the body as binary.
  r.headers = {};
  r.body = "hello";
  e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["isBase64Encoded"] == true);

  // Declared as text but not UTF-8: it cannot travel as a JSON string, so it goes as base64.
  r.headers = {{"Content-Type", "text/plain"}};
  r.body = "caf\xe9";
  e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["isBase64Encoded"] == true);
  CHECK(e["body"] == "Y2Fm6Q==");

  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
  r.body = "line1\nline2 \"q\"";
  e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["isBase64Encoded"] == false);
  CHECK(e["body"] == "line1\nline2 \"q\"");

  r.method = "GET";
  r.body.clear();
  r.query.clear();
  r.path = "/";
  e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK_FALSE(e.contains("body"));
  CHECK_FALSE(e.contains("queryStringParameters"));
  CHECK_FALSE(e.contains("cookies"));
  CHECK(e["isBase64Encoded"] == false);
  CHECK(e["rawQueryString"] == "");
  CHECK(e["requestContext"]["http"]["userAgent"] == "");
}

TEST_CASE("hostile header bytes still make valid JSON", "[event]") {
  HttpRequest r = Sample();
  r.headers = {{"X-Evil", "\"}\\\x01\xff"}, {"X-Forwarded-For", "10.0.0.1"}};
  json e = json::parse(BuildFunctionUrlEvent(r, Context()));
  CHECK(e["headers"]["x-evil"] == "\"}\\\x01\xef\xbf\xbd");
  CHECK(e["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1");
}

TEST_CASE("request time is CLF in UTC", "[event]") {
  CHECK(FormatRequestTime(0) == "01/Jan/1970:00:00:00 +0000");
  CHECK(FormatRequestTime(1583348638390) == "04/Mar/2020:19:03:58 +0000");
}
