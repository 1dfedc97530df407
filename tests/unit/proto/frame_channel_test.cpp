// FrameServer / FrameClient over a real Unix socket in a temp directory, on a real uv loop run
// by the test with a bounded timeout.
#include "proto/frame_channel.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "tests/support/loop.h"
#include "tests/support/temp_dir.h"

using geysir::proto::Frame;
using geysir::proto::FrameClient;
using geysir::proto::FrameConnection;
using geysir::proto::FrameServer;
using geysir::testing::RunUntil;
using geysir::testing::TempDir;

namespace {

Frame Make(const std::string& type, std::string body, int n = 0) {
  Frame f;
  f.header = {{"type", type}, {"n", n}};
  f.body = std::move(body);
  return f;
}

// A server that answers every frame with an "echo" frame carrying the same body and n.
struct EchoServer {
  EchoServer(uv_loop_t* loop)
      : server(loop, [this](std::shared_ptr<FrameConnection> c) {
          conns.push_back(c);
          std::weak_ptr<FrameConnection> weak = c;
          c->Start(
              [weak](Frame&& f) {
                if (auto conn = weak.lock()) conn->Send(Make("echo", std::move(f.body), f.header.value("n", 0)));
              },
              [this](const geysir::Status& why) {
                ++closed;
                last_close = why;
              });
        }) {}
  FrameServer server;
  std::vector<std::shared_ptr<FrameConnection>> conns;
  int closed = 0;
  geysir::Status last_close;
};

void CloseLoop(uv_loop_t* loop) {
  for (int i = 0; i < 100 && uv_loop_alive(loop); ++i) uv_run(loop, UV_RUN_NOWAIT);
  CHECK(uv_loop_close(loop) == 0);
}

}  // namespace

TEST_CASE("FrameServer and FrameClient exchange frames", "[frame_channel]") {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  // A stale socket file, as a crashed server leaves it.
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    close(fd);
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    EchoServer echo(&loop);
    REQUIRE(echo.server.Listen(path).ok());
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);

    std::vector<Frame> got;
    int connected = 0;
    FrameClient* cp = nullptr;
    const std::string big(3 * 1024 * 1024 + 7, 'z');  // spans many reads and a queued write
    FrameClient client(
        &loop, path, [&](Frame&& f) { got.push_back(std::move(f)); },
        [&] {
          ++connected;
          CHECK(cp->Send(Make("hello", "one", 1)).ok());
          CHECK(cp->Send(Make("hello", big, 2)).ok());
          CHECK(cp->Send(Make("hello", "", 3)).ok());
        },
        [](const geysir::Status&) {});
    cp = &client;
    CHECK_FALSE(client.Send(Make("early", "")).ok());  // not connected yet: refused, not queued
    client.Start();
    REQUIRE(RunUntil(&loop, [&] { return got.size() == 3; }));
    CHECK(connected == 1);
    CHECK(got[0].type() == "echo");
    CHECK(got[0].body == "one");
    CHECK(got[1].body == big);
    CHECK(got[1].header["n"] == 2);
    CHECK(got[2].body.empty());
    client.Close();
    CHECK_FALSE(client.connected());
    REQUIRE(RunUntil(&loop, [&] { return echo.closed == 1; }));
    echo.server.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("FrameClient reconnects after the server restarts", "[frame_channel]") {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto echo = std::make_unique<EchoServer>(&loop);
    REQUIRE(echo->server.Listen(path).ok());
    int connected = 0, disconnected = 0;
    std::vector<std::string> got;
    FrameClient* cp = nullptr;
    FrameClient client(
        &loop, path, [&](Frame&& f) { got.push_back(f.body); },
        [&] {
          ++connected;
          CHECK(cp->Send(Make("hi", "after connect " + std::to_string(connected))).ok());
        },
        [&](const geysir::Status&) { ++disconnected; });
    cp = &client;
    client.Start();
    REQUIRE(RunUntil(&loop, [&] { return got.size() == 1; }));

    // The server goes away: its connections close, and nothing listens for a while.
    echo->server.Close();
    echo.reset();
    REQUIRE(RunUntil(&loop, [&] { return disconnected == 1; }));
    CHECK_FALSE(client.connected());
    CHECK_FALSE(client.Send(Make("while down", "")).ok());
    RunUntil(&loop, [] { return false; }, 300);  // a few failed attempts with back-off
    CHECK(connected == 1);

    auto echo2 = std::make_unique<EchoServer>(&loop);
    REQUIRE(echo2->server.Listen(path).ok());  // the old socket file is replaced
    REQUIRE(RunUntil(&loop, [&] { return got.size() == 2; }, 4000));
    CHECK(connected == 2);
    CHECK(got[1] == "after connect 2");
    client.Close();
    echo2->server.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("FrameServer closes a connection that sends a malformed frame", "[frame_channel]") {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    EchoServer echo(&loop);
    REQUIRE(echo.server.Listen(path).ok());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    // Header length 0 is invalid.
    const char bad[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    REQUIRE(write(fd, bad, sizeof bad) == 8);
    REQUIRE(RunUntil(&loop, [&] { return echo.closed == 1; }));
    CHECK_FALSE(echo.last_close.ok());
    CHECK(echo.conns.size() == 1);
    CHECK_FALSE(echo.conns[0]->open());
    echo.conns[0]->Send(Make("ignored", ""));  // inert after close
    close(fd);
    echo.server.Close();
  }
  CloseLoop(&loop);
}

TEST_CASE("FrameServer refuses a path that is not a socket", "[frame_channel]") {
  TempDir dir;
  const std::string path = dir.path() + "/file";
  REQUIRE(std::system(("touch '" + path + "'").c_str()) == 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    FrameServer server(&loop, [](std::shared_ptr<FrameConnection>) {});
    CHECK_FALSE(server.Listen(path).ok());
  }
  CloseLoop(&loop);
}
