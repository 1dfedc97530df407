// The gateway in-process, on a real uv loop, with a real HttpServer and fake scheduler and
// control FrameServers on Unix sockets, driven by a blocking HTTP client on a helper thread.
#include "gateway/gateway.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "proto/frame_channel.h"
#include "proto/invoke_refs.h"
#include "proto/messages.h"
#include "tests/support/loop.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"

using geysir::gateway::Gateway;
using geysir::gateway::GatewayOptions;
using geysir::proto::Frame;
using geysir::proto::FrameConnection;
using geysir::proto::FrameServer;
using geysir::proto::FunctionUrlRoute;
using geysir::proto::InvokeOutcome;
using geysir::proto::InvokeRequest;
using geysir::proto::InvokeResult;
using geysir::proto::RouteTable;
using geysir::testing::BodyOf;
using geysir::testing::DrainAndCloseLoop;
using geysir::testing::LoopRunner;
using geysir::testing::RawClient;
using geysir::testing::RunUntil;
using geysir::testing::StatusOf;
using geysir::testing::TempDir;
using nlohmann::json;

namespace {

// Answers each invoke according to the function's name.
struct FakeScheduler {
  explicit FakeScheduler(uv_loop_t* loop)
      : server(loop, [this](std::shared_ptr<FrameConnection> c) {
          conns.push_back(c);
          std::weak_ptr<FrameConnection> weak = c;
          c->Start([this, weak](Frame&& f) { OnFrame(weak, std::move(f)); }, [](const geysir::Status&) {});
        }) {}

  void OnFrame(const std::weak_ptr<FrameConnection>& weak, Frame&& f) {
    auto conn = weak.lock();
    if (!conn || f.type() != "invoke") return;
    // As the scheduler reads it: the config whole once per connection, then by reference.
    auto decoded = refs[conn.get()].Decode(f.header);
    REQUIRE(decoded.ok());
    InvokeRequest req = std::move(*decoded);
    ++invocations;
    last_source = f.header.value("source", "");
    InvokeResult res;
    res.id = req.id;
    res.request_id = req.request_id;
    res.outcome = InvokeOutcome::kOk;
    std::string payload;
    const std::string& fn = req.function.name;
    if (fn == "echo") {
      payload = f.body;  // the event itself: a JSON object without statusCode -> 200 verbatim
    } else if (fn == "custom") {
      payload = json{{"statusCode", 201},
                     {"headers", {{"X-Fn", "custom"}}},
                     {"cookies", {"a=1; Path=/", "b=2"}},
                     {"body", "AAH+/w=="},
                     {"isBase64Encoded", true}}
                    .dump();
    } else if (fn == "delayed") {
      held_conn = conn;
      held = geysir::proto::MakeFrame("result", res, "\"late\"");
      has_held = true;
      return;
    } else if (fn == "world") {
      payload = "\"world\"";
    } else if (fn == "badstatus") {
      payload = R"({"statusCode":"teapot"})";
    } else if (fn == "boom") {
      res.outcome = InvokeOutcome::kUnhandled;
      payload = R"({"errorMessage":"boom","errorType":"Exception","stackTrace":[]})";
    } else if (fn == "slow") {
      res.outcome = InvokeOutcome::kTimeout;
      payload = R"({"errorMessage":"Task timed out after 3.00 seconds","errorType":"Sandbox.Timedout"})";
    } else if (fn == "busy") {
      res.outcome = InvokeOutcome::kThrottled;
      payload = R"({"message":"Rate Exceeded."})";
    } else {
      res.outcome = InvokeOutcome::kInternal;
      payload = R"({"message":"unknown function"})";
    }
    conn->Send(geysir::proto::MakeFrame("result", res, payload));
  }

  void ReleaseHeld() {
    if (held_conn) held_conn->Send(held);
    held_conn.reset();
  }

  FrameServer server;
  std::vector<std::shared_ptr<FrameConnection>> conns;
  std::map<FrameConnection*, geysir::proto::InvokeRefTable> refs;  // per connection, as the scheduler keeps them
  std::shared_ptr<FrameConnection> held_conn;  // "delayed": answered only when released
  Frame held;
  std::atomic<bool> has_held{false};
  std::atomic<int> invocations{0};
  std::string last_source;
};

// Sends the table on subscribe and whenever Push() is called.
struct FakeControl {
  explicit FakeControl(uv_loop_t* loop)
      : server(loop, [this](std::shared_ptr<FrameConnection> c) {
          conns.push_back(c);
          std::weak_ptr<FrameConnection> weak = c;
          c->Start(
              [this, weak](Frame&& f) {
                auto conn = weak.lock();
                if (!conn || f.type() != "subscribe_routes") return;
                ++subscriptions;
                conn->Send(geysir::proto::MakeFrame("routes", table));
              },
              [](const geysir::Status&) {});
        }) {}

  void Push() {
    for (auto& c : conns) {
      if (c->open()) c->Send(geysir::proto::MakeFrame("routes", table));
    }
  }

  FrameServer server;
  std::vector<std::shared_ptr<FrameConnection>> conns;
  RouteTable table;
  int subscriptions = 0;
};

FunctionUrlRoute Route(const std::string& url_id, const std::string& function) {
  FunctionUrlRoute r;
  r.url_id = url_id;
  r.function.name = function;
  r.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:" + function;
  return r;
}

std::string Get(uint16_t port, const std::string& host, const std::string& target, const std::string& extra = "") {
  RawClient c(port);
  if (!c.connected()) return "";
  c.Send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "Connection: close\r\n\r\n");
  return c.ReadResponse();
}

std::string HeaderOf(const std::string& response, const std::string& name) {
  std::string lower;
  size_t end = response.find("\r\n\r\n");
  for (size_t i = 0; i < end; ++i) lower.push_back(static_cast<char>(tolower(response[i])));
  size_t at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  size_t start = at + 3 + name.size();
  while (start < end && response[start] == ' ') ++start;
  return response.substr(start, response.find("\r\n", start) - start);
}

}  // namespace

TEST_CASE("gateway serves function URLs, /healthz and route updates over real sockets", "[gateway]") {
  TempDir dir;
  REQUIRE(!dir.path().empty());
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler scheduler(&loop);
    FakeControl control(&loop);
    control.table.generation = 1;
    for (const char* fn : {"echo", "custom", "world", "badstatus", "boom", "slow", "busy"}) {
      control.table.function_urls.push_back(Route(std::string("u") + fn, fn));
    }
    FunctionUrlRoute cors_route = Route("ucors", "world");
    cors_route.cors = {{"AllowOrigins", {"https://app.example"}}, {"AllowMethods", {"GET"}}};
    control.table.function_urls.push_back(cors_route);
    REQUIRE(scheduler.server.Listen(dir.path() + "/scheduler.sock").ok());
    REQUIRE(control.server.Listen(dir.path() + "/control.sock").ok());

    GatewayOptions options;
    options.scheduler_socket = dir.path() + "/scheduler.sock";
    options.control_socket = dir.path() + "/control.sock";
    Gateway gateway(&loop, options);
    REQUIRE(gateway.Listen("127.0.0.1", 0).ok());
    const uint16_t port = gateway.port();
    REQUIRE(port != 0);
    gateway.Start();
    REQUIRE(RunUntil(&loop, [&] { return gateway.routes().loaded() && gateway.scheduler_connected(); }));
    CHECK(control.subscriptions == 1);

    LoopRunner runner(&loop);
    bool ok = runner.Run(
        [&] {
          // The event reaches the function as AWS builds it.
          std::string r = Get(port, "uecho.lambda-url.localhost:" + std::to_string(port), "/p/q?x=1&x=2",
                              "Cookie: a=1; b=2\r\nX-Dup: 1\r\nX-Dup: 2\r\n");
          CHECK(StatusOf(r) == 200);
          CHECK(HeaderOf(r, "content-type") == "application/json");
          std::string request_id = HeaderOf(r, "x-amzn-requestid");
          CHECK(request_id.size() == 36);
          json e = json::parse(BodyOf(r), nullptr, false);
          REQUIRE(e.is_object());
          CHECK(e["version"] == "2.0");
          CHECK(e["rawPath"] == "/p/q");
          CHECK(e["rawQueryString"] == "x=1&x=2");
          CHECK(e["queryStringParameters"]["x"] == "1,2");
          CHECK(e["cookies"] == json::array({"a=1", "b=2"}));
          CHECK(e["headers"]["x-dup"] == "1,2");
          CHECK(e["requestContext"]["apiId"] == "uecho");
          CHECK(e["requestContext"]["domainName"] == "uecho.lambda-url.localhost");
          CHECK(e["requestContext"]["http"]["sourceIp"] == "127.0.0.1");
          CHECK(e["requestContext"]["requestId"] == request_id);
          CHECK(e["headers"]["x-forwarded-port"] == std::to_string(port));

          // A response object: status, headers, one Set-Cookie per cookie, base64 body decoded.
          r = Get(port, "UCUSTOM.lambda-url.LOCALHOST", "/");
          CHECK(StatusOf(r) == 201);
          CHECK(HeaderOf(r, "x-fn") == "custom");
          CHECK(r.find("Set-Cookie: a=1; Path=/\r\n") != std::string::npos);
          CHECK(r.find("Set-Cookie: b=2\r\n") != std::string::npos);
          CHECK(BodyOf(r) == std::string("\x00\x01\xfe\xff", 4));

          r = Get(port, "uworld.lambda-url.localhost", "/");
          CHECK(StatusOf(r) == 200);
          CHECK(BodyOf(r) == "\"world\"");

          CHECK(StatusOf(Get(port, "ubadstatus.lambda-url.localhost", "/")) == 502);
          r = Get(port, "uboom.lambda-url.localhost", "/");
          CHECK(StatusOf(r) == 502);
          CHECK(json::parse(BodyOf(r), nullptr, false)["Message"] == "Internal Server Error");
          CHECK(StatusOf(Get(port, "uslow.lambda-url.localhost", "/")) == 504);
          r = Get(port, "ubusy.lambda-url.localhost", "/");
          CHECK(StatusOf(r) == 429);
          CHECK(json::parse(BodyOf(r), nullptr, false)["Message"] == "Too Many Requests");

          // CORS: the edge answers the preflight itself and decorates the function's response.
          const int before = scheduler.invocations;
          {
            RawClient c(port);
            c.Send("OPTIONS / HTTP/1.1\r\nHost: ucors.lambda-url.localhost\r\nOrigin: https://app.example\r\n"
                   "Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n");
            r = c.ReadResponse();
          }
          CHECK(StatusOf(r) == 200);
          CHECK(HeaderOf(r, "access-control-allow-origin") == "https://app.example");
          CHECK(HeaderOf(r, "access-control-allow-methods") == "GET");
          CHECK(scheduler.invocations == before);
          r = Get(port, "ucors.lambda-url.localhost", "/", "Origin: https://app.example\r\n");
          CHECK(StatusOf(r) == 200);
          CHECK(HeaderOf(r, "access-control-allow-origin") == "https://app.example");
          CHECK(BodyOf(r) == "\"world\"");

          // Unknown URL id, malformed label, unknown platform path.
          r = Get(port, "nosuch.lambda-url.localhost", "/");
          CHECK(StatusOf(r) == 404);
          CHECK(json::parse(BodyOf(r), nullptr, false).contains("Message"));
          CHECK(StatusOf(Get(port, "a.b.lambda-url.localhost", "/")) == 404);
          CHECK(StatusOf(Get(port, "localhost:" + std::to_string(port), "/nothing")) == 404);
          CHECK(StatusOf(Get(port, "uecho.lambda-url.example.com", "/")) == 404);

          // /healthz on the platform host.
          r = Get(port, "localhost:" + std::to_string(port), "/healthz");
          CHECK(StatusOf(r) == 200);
          json h = json::parse(BodyOf(r), nullptr, false);
          CHECK(h["status"] == "ok");
          CHECK(h["scheduler"] == true);
          CHECK(h["routes"] == 1);

          // Keep-alive: two function calls on one connection.
          {
            RawClient c(port);
            c.Send("GET / HTTP/1.1\r\nHost: uworld.lambda-url.localhost\r\n\r\n"
                   "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            CHECK(StatusOf(c.ReadResponse()) == 200);
            CHECK(StatusOf(c.ReadResponse()) == 200);
          }

          // A route change applies without a restart.
          runner.Post([&] {
            control.table.generation = 2;
            control.table.function_urls = {Route("unew", "world")};
            control.Push();
          });
          int status = 0;
          for (int i = 0; i < 200 && status != 200; ++i) {
            status = StatusOf(Get(port, "unew.lambda-url.localhost", "/"));
            if (status != 200) usleep(10'000);
          }
          CHECK(status == 200);
          CHECK(StatusOf(Get(port, "uecho.lambda-url.localhost", "/")) == 404);
          h = json::parse(BodyOf(Get(port, "localhost", "/healthz")), nullptr, false);
          CHECK(h["routes"] == 2);
        },
        20000);
    CHECK(ok);
    CHECK(scheduler.last_source == "function_url");

    // Control goes away: the gateway keeps serving with the table it has.
    control.server.Close();
    REQUIRE(RunUntil(&loop, [&] { return !gateway.control_connected(); }));
    ok = runner.Run([&] { CHECK(StatusOf(Get(port, "unew.lambda-url.localhost", "/")) == 200); }, 5000);
    CHECK(ok);

    // The scheduler goes away: function calls fail fast with 503, /healthz says so.
    scheduler.server.Close();
    REQUIRE(RunUntil(&loop, [&] { return !gateway.scheduler_connected(); }));
    ok = runner.Run(
        [&] {
          CHECK(StatusOf(Get(port, "unew.lambda-url.localhost", "/")) == 503);
          json h = json::parse(BodyOf(Get(port, "localhost", "/healthz")), nullptr, false);
          CHECK(h["scheduler"] == false);
        },
        5000);
    CHECK(ok);

    gateway.Close();
    runner.Dispose();
  }
  CHECK(DrainAndCloseLoop(&loop) == 0);
}

TEST_CASE("graceful shutdown lets an in-flight function call finish", "[gateway]") {
  TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler scheduler(&loop);
    FakeControl control(&loop);
    control.table.generation = 5;
    control.table.function_urls = {Route("udelayed", "delayed")};
    REQUIRE(scheduler.server.Listen(dir.path() + "/scheduler.sock").ok());
    REQUIRE(control.server.Listen(dir.path() + "/control.sock").ok());
    GatewayOptions options;
    options.scheduler_socket = dir.path() + "/scheduler.sock";
    options.control_socket = dir.path() + "/control.sock";
    Gateway gateway(&loop, options);
    REQUIRE(gateway.Listen("127.0.0.1", 0).ok());
    const uint16_t port = gateway.port();
    gateway.Start();
    REQUIRE(RunUntil(&loop, [&] { return gateway.routes().loaded() && gateway.scheduler_connected(); }));

    std::atomic<bool> shutdown_done{false};
    LoopRunner runner(&loop);
    bool ok = runner.Run(
        [&] {
          RawClient c(port);
          REQUIRE(c.connected());
          c.Send("GET / HTTP/1.1\r\nHost: udelayed.lambda-url.localhost\r\n\r\n");
          for (int i = 0; i < 300 && !scheduler.has_held; ++i) usleep(10'000);
          REQUIRE(scheduler.has_held);
          runner.Post([&] { gateway.Shutdown([&] { shutdown_done = true; }); });
          // Stopped accepting: a new connection is refused (bounded wait for the listener to close).
          bool refused = false;
          for (int i = 0; i < 100 && !refused; ++i) {
            RawClient probe(port, 200);
            refused = !probe.connected();
            if (!refused) usleep(10'000);
          }
          CHECK(refused);
          CHECK_FALSE(shutdown_done);
          runner.Post([&] { scheduler.ReleaseHeld(); });
          std::string r = c.ReadResponse();
          CHECK(StatusOf(r) == 200);
          CHECK(BodyOf(r) == "\"late\"");
          for (int i = 0; i < 300 && !shutdown_done; ++i) usleep(10'000);
          CHECK(shutdown_done);
        },
        10000);
    CHECK(ok);
    CHECK_FALSE(gateway.control_connected());
    CHECK_FALSE(gateway.scheduler_connected());
    scheduler.server.Close();
    control.server.Close();
    runner.Dispose();
  }
  CHECK(DrainAndCloseLoop(&loop) == 0);
}

// Not run by default: `gateway_tests "[.bench]"` measures the gateway's own cost per function
// call with wrk (16 connections, 5 s) against a fake scheduler that answers at once from its own
// thread and loop, as the real one does from its own process. Needs wrk on PATH.
TEST_CASE("bench: function URL calls through the gateway", "[.bench]") {
  TempDir dir;
  uv_loop_t peer_loop;
  uv_loop_init(&peer_loop);
  auto scheduler = std::make_unique<FakeScheduler>(&peer_loop);
  auto control = std::make_unique<FakeControl>(&peer_loop);
  control->table.generation = 1;
  control->table.function_urls = {Route("bench", "custom")};
  REQUIRE(scheduler->server.Listen(dir.path() + "/scheduler.sock").ok());
  REQUIRE(control->server.Listen(dir.path() + "/control.sock").ok());
  LoopRunner peer_runner(&peer_loop);
  std::atomic<bool> done{false};
  std::thread peer([&] {
    // The peers' loop runs until the bench is over.
    while (!done) uv_run(&peer_loop, UV_RUN_ONCE);
  });

  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    GatewayOptions options;
    options.scheduler_socket = dir.path() + "/scheduler.sock";
    options.control_socket = dir.path() + "/control.sock";
    Gateway gateway(&loop, options);
    REQUIRE(gateway.Listen("127.0.0.1", 0).ok());
    gateway.Start();
    REQUIRE(RunUntil(&loop, [&] { return gateway.routes().loaded() && gateway.scheduler_connected(); }));
    const std::string port = std::to_string(gateway.port());
    LoopRunner runner(&loop);
    runner.Run(
        [&] {
          std::string cmd = "wrk -t2 -c16 -d5s --latency -H 'Host: bench.lambda-url.localhost:" + port +
                            "' http://127.0.0.1:" + port + "/ 2>&1";
          CHECK(std::system(cmd.c_str()) == 0);
        },
        30000);
    gateway.Close();
    runner.Dispose();
  }
  CHECK(DrainAndCloseLoop(&loop) == 0);
  done = true;
  peer_runner.Post([] {});  // wakes the peer loop so its thread sees `done`
  peer.join();
  scheduler->server.Close();
  control->server.Close();
  scheduler.reset();
  control.reset();
  peer_runner.Dispose();
  CHECK(DrainAndCloseLoop(&peer_loop) == 0);
}

TEST_CASE("a call the scheduler never answers gets 504 at the gateway's own deadline", "[gateway]") {
  TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler scheduler(&loop);
    FakeControl control(&loop);
    control.table.generation = 1;
    FunctionUrlRoute r = Route("udelayed", "delayed");
    r.function.timeout_s = 0;
    control.table.function_urls = {r};
    REQUIRE(scheduler.server.Listen(dir.path() + "/scheduler.sock").ok());
    REQUIRE(control.server.Listen(dir.path() + "/control.sock").ok());
    GatewayOptions options;
    options.scheduler_socket = dir.path() + "/scheduler.sock";
    options.control_socket = dir.path() + "/control.sock";
    options.call_grace_ms = 100;
    Gateway gateway(&loop, options);
    REQUIRE(gateway.Listen("127.0.0.1", 0).ok());
    const uint16_t port = gateway.port();
    gateway.Start();
    REQUIRE(RunUntil(&loop, [&] { return gateway.routes().loaded() && gateway.scheduler_connected(); }));

    LoopRunner runner(&loop);
    bool ok = runner.Run(
        [&] {
          RawClient c(port);
          c.Send("GET / HTTP/1.1\r\nHost: udelayed.lambda-url.localhost\r\n\r\n");
          std::string resp = c.ReadResponse();
          CHECK(StatusOf(resp) == 504);
          // The late result is dropped; the connection still serves the next request.
          runner.Post([&] { scheduler.ReleaseHeld(); });
          c.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
          CHECK(StatusOf(c.ReadResponse()) == 200);
        },
        5000);
    CHECK(ok);
    gateway.Close();
    scheduler.server.Close();
    control.server.Close();
    runner.Dispose();
  }
  CHECK(DrainAndCloseLoop(&loop) == 0);
}

TEST_CASE("before control's first route table every host but /healthz gets a retryable 503", "[gateway]") {
  TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FakeScheduler scheduler(&loop);
    FakeControl control(&loop);
    control.table.generation = 1;
    control.table.function_urls = {Route("uecho", "echo")};
    REQUIRE(scheduler.server.Listen(dir.path() + "/scheduler.sock").ok());
    GatewayOptions options;
    options.scheduler_socket = dir.path() + "/scheduler.sock";
    options.control_socket = dir.path() + "/control.sock";  // control is not there yet
    Gateway gateway(&loop, options);
    REQUIRE(gateway.Listen("127.0.0.1", 0).ok());
    const uint16_t port = gateway.port();
    gateway.Start();
    REQUIRE(RunUntil(&loop, [&] { return gateway.scheduler_connected(); }));
    REQUIRE_FALSE(gateway.routes().loaded());

    LoopRunner runner(&loop);
    bool ok = runner.Run(
        [&] {
          for (const char* host : {"uecho.lambda-url.localhost", "unknown.lambda-url.localhost",
                                   "abc123.execute-api.localhost", "api.custom.example"}) {
            INFO(host);
            std::string r = Get(port, host, "/");
            CHECK(StatusOf(r) == 503);
            CHECK(HeaderOf(r, "retry-after") == "1");
            CHECK(HeaderOf(r, "x-amzn-requestid").size() == 36);
          }
          CHECK(StatusOf(Get(port, "localhost", "/healthz")) == 200);
          // Control arrives: its table replaces the 503s with real answers.
          runner.Post([&] { CHECK(control.server.Listen(dir.path() + "/control.sock").ok()); });
          std::string r;
          for (int i = 0; i < 100 && StatusOf(r) != 200; ++i) {
            if (i) usleep(50'000);
            r = Get(port, "uecho.lambda-url.localhost", "/");
          }
          CHECK(StatusOf(r) == 200);
          CHECK(StatusOf(Get(port, "unknown.lambda-url.localhost", "/")) == 404);
        },
        10000);
    CHECK(ok);
    gateway.Close();
    scheduler.server.Close();
    control.server.Close();
    runner.Dispose();
  }
  CHECK(DrainAndCloseLoop(&loop) == 0);
}
