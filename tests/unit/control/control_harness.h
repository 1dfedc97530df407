// ControlServer in process, for the unit tests that stand control up whole: a real loop on the
// test thread, a temp data directory, no scheduler (nobody listens on scheduler.sock), a blocking
// client on a helper thread that signs its requests with SigV4 (as boto3 does) and talks HTTP over
// a real loopback socket, and a blocking client of control.sock that speaks raw frames.
//
// Thread behaviour: Harness lives on the test thread, which runs the loop inside Run(); the
// Client passed to Run()'s function is used on the helper thread only; a FrameSocket blocks
// (with a 3 s receive timeout) and belongs to whichever thread made it.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "control/code_store.h"
#include "control/control_server.h"
#include "net/http_server.h"
#include "net/sigv4.h"
#include "proto/frame.h"
#include "tests/support/loop.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"

namespace geysir::control::testing {

using nlohmann::json;

struct CallOptions {
  bool sign = true;
  std::string akid, secret;            // override the credentials
  int64_t skew_s = 0;                  // signing clock offset
  net::HeaderList headers;
  std::string region = "us-east-1";    // the credential scope
  std::string service = "lambda";
  bool content_sha256 = true;          // send x-amz-content-sha256 (else: as given in headers)
  std::string content_type = "application/json";  // of a request with a body
};

inline std::string AmzDate(int64_t unix_s) {
  time_t t = static_cast<time_t>(unix_s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
  std::string Header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? "" : it->second;
  }
  std::string ErrorType() const { return Header("x-amzn-errortype"); }
};

struct Creds {
  std::string akid, secret;
};

// Parses the [geysir] profile out of the credentials file.
inline Creds ReadCredentials(const std::string& path) {
  std::ifstream in(path);
  std::string line, profile;
  Creds c;
  while (std::getline(in, line)) {
    if (line.rfind("[", 0) == 0) profile = line;
    if (profile != "[geysir]") continue;
    auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 3);
    if (k == "aws_access_key_id") c.akid = v;
    if (k == "aws_secret_access_key") c.secret = v;
  }
  return c;
}

class Client {
 public:
  Client(uint16_t port, Creds creds) : port_(port), creds_(std::move(creds)) {}

  Reply Call(const std::string& method, const std::string& target, const std::string& body = "",
             const CallOptions& o = {}) {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string::npos ? "" : target.substr(q + 1);
    req.headers = {{"Host", "127.0.0.1:" + std::to_string(port_)}};
    if (!body.empty()) req.headers.emplace_back("Content-Type", o.content_type);
    for (auto& h : o.headers) req.headers.push_back(h);
    req.body = body;
    if (o.sign) {
      net::sigv4::Sign(req, o.akid.empty() ? creds_.akid : o.akid, o.secret.empty() ? creds_.secret : o.secret,
                         o.region, o.service, AmzDate(std::time(nullptr) + o.skew_s), o.content_sha256);
    }
    std::string wire = method + " " + target + " HTTP/1.1\r\n";
    for (auto& [k, v] : req.headers) wire += k + ": " + v + "\r\n";
    wire += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ::geysir::testing::RawClient c(port_, 10000);
    Reply r;
    if (!c.connected() || !c.Send(wire)) return r;
    std::string resp = c.ReadResponse(method == "HEAD");
    r.status = ::geysir::testing::StatusOf(resp);
    size_t end = resp.find("\r\n\r\n");
    std::istringstream hs(resp.substr(0, end));
    std::string line;
    std::getline(hs, line);
    while (std::getline(hs, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string k = line.substr(0, colon);
      for (auto& ch : k) ch = static_cast<char>(tolower(ch));
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[k] = v;
    }
    r.body = ::geysir::testing::BodyOf(resp);
    return r;
  }

  Reply CreateFunction(const std::string& name, const std::string& zip, json extra = json::object()) {
    json b = {{"FunctionName", name},
              {"Runtime", "python3.11"},
              {"Role", "arn:aws:iam::000000000000:role/test"},
              {"Handler", "app.handler"},
              {"Code", {{"ZipFile", ::geysir::Base64Encode(zip)}}}};
    b.update(extra);
    return Call("POST", "/2015-03-31/functions", b.dump());
  }

 private:
  uint16_t port_;
  Creds creds_;
};

// A blocking client of control.sock speaking raw frames.
class FrameSocket {
 public:
  explicit FrameSocket(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    struct timeval tv {3, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~FrameSocket() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const proto::Frame& f) {
    std::string bytes = proto::EncodeFrame(f);
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  std::optional<proto::Frame> Next() {
    for (int guard = 0; guard < 1000; ++guard) {
      auto f = decoder_.Next();
      if (!f.ok()) return std::nullopt;
      if (f->has_value()) return std::move(**f);
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      decoder_.Feed(buf, static_cast<size_t>(n));
    }
    return std::nullopt;
  }
  // The next frame of `type`, skipping others (control also pushes "tls" frames to gateways
  // after each route table).
  std::optional<proto::Frame> NextOf(const std::string& type) {
    for (int guard = 0; guard < 100; ++guard) {
      auto f = Next();
      if (!f || f->type() == type) return f;
    }
    return std::nullopt;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  proto::FrameDecoder decoder_;
};

struct Harness {
  explicit Harness(const std::function<void(ControlOptions&)>& tweak = nullptr) {
    data = dir.path() + "/data";
    uv_loop_init(&loop);
    runner = std::make_unique<::geysir::testing::LoopRunner>(&loop);
    ControlOptions o;
    o.data_dir = data;
    o.listen_port = 0;
    o.socket_path = dir.path() + "/run/control.sock";
    o.scheduler_socket = dir.path() + "/run/scheduler.sock";  // nobody listens: no scheduler
    socket_path = o.socket_path;
    if (tweak) tweak(o);
    data = o.data_dir;  // a tweak may keep the data elsewhere (a restart test)
    server = std::make_unique<ControlServer>(&loop, o);
    Status st = server->Start();
    INFO(st.ToString());
    REQUIRE(st.ok());
    creds = ReadCredentials(server->credentials_path());
    REQUIRE(creds.akid == server->admin_key().access_key_id);
    port = server->port();
  }
  ~Harness() {
    server->Close();
    runner->Dispose();
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); ++i) uv_run(&loop, UV_RUN_NOWAIT);
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
  // Runs the loop while `client` talks to the server from a helper thread.
  void Run(const std::function<void(Client&)>& client, uint64_t timeout_ms = 20000) {
    Client c(port, creds);
    REQUIRE(runner->Run([&] { client(c); }, timeout_ms));
  }

  ::geysir::testing::TempDir dir;
  std::string data, socket_path;
  uv_loop_t loop;
  std::unique_ptr<::geysir::testing::LoopRunner> runner;
  std::unique_ptr<ControlServer> server;
  Creds creds;
  uint16_t port = 0;
};

}  // namespace geysir::control::testing
