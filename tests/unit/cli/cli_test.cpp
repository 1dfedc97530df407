// Tests for the geysir CLI library: argument parsing, credentials and endpoint resolution,
// directory packaging, error formatting, and that libcurl's SigV4 signing (what the CLI sends)
// verifies under proto/sigv4 (what control checks), against a one-shot loopback HTTP server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "base/base64.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "cli/control_client.h"
#include "cli/package.h"
#include "net/sigv4.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using namespace geysir::cli;

namespace {

CommandLine Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "geysir");
  auto r = ParseCommandLine(args);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

std::string ParseError(std::vector<std::string> args) {
  args.insert(args.begin(), "geysir");
  auto r = ParseCommandLine(args);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

using geysir::testing::TempDir;

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

struct ZipEntryInfo {
  std::string content;
  uint32_t mode = 0;
};

std::map<std::string, ZipEntryInfo> ReadZip(const std::string& bytes) {
  std::map<std::string, ZipEntryInfo> out;
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
  REQUIRE(src != nullptr);
  zip_t* z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
  REQUIRE(z != nullptr);
  zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    auto idx = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    REQUIRE(zip_stat_index(z, idx, 0, &st) == 0);
    ZipEntryInfo info;
    info.content.resize(st.size);
    zip_file_t* f = zip_fopen_index(z, idx, 0);
    REQUIRE(f != nullptr);
    REQUIRE(zip_fread(f, info.content.data(), st.size) == static_cast<zip_int64_t>(st.size));
    zip_fclose(f);
    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    REQUIRE(zip_file_get_external_attributes(z, idx, 0, &opsys, &attr) == 0);
    CHECK(opsys == ZIP_OPSYS_UNIX);
    info.mode = (attr >> 16) & 07777;
    out[st.name] = info;
  }
  zip_discard(z);
  zip_error_fini(&err);
  return out;
}

}  // namespace

TEST_CASE("deploy arguments", "[cli][args]") {
  auto cl = Parse({"deploy", "./app", "--name", "hello", "--handler=app.handler", "--memory", "256", "--timeout",
                   "10", "--env", "A=1", "--env", "B=x=y", "--url", "--endpoint", "http://h:9"});
  CHECK(cl.command == Command::kDeploy);
  CHECK(cl.deploy.path == "./app");
  CHECK(cl.deploy.name == "hello");
  CHECK(cl.deploy.handler == std::optional<std::string>("app.handler"));
  CHECK_FALSE(cl.deploy.runtime.has_value());
  CHECK(cl.deploy.memory_mb == std::optional<int>(256));
  CHECK(cl.deploy.timeout_s == std::optional<int>(10));
  REQUIRE(cl.deploy.env.has_value());
  CHECK(cl.deploy.env->at("A") == "1");
  CHECK(cl.deploy.env->at("B") == "x=y");
  CHECK(cl.deploy.url);
  CHECK(cl.global.endpoint == std::optional<std::string>("http://h:9"));

  CHECK(ParseError({"deploy", "./app"}).find("--name is required") != std::string::npos);
  CHECK(ParseError({"deploy", "--name", "x"}).find("PATH") != std::string::npos);
  CHECK(ParseError({"deploy", "a", "--name", "x", "--memory", "lots"}).find("--memory") != std::string::npos);
  CHECK(ParseError({"deploy", "a", "--name", "x", "--timeout", "901"}).find("1 to 900") != std::string::npos);
  CHECK(ParseError({"deploy", "a", "--name", "x", "--env", "novalue"}).find("KEY=VALUE") != std::string::npos);
  CHECK(ParseError({"deploy", "a", "--name", "x", "--bogus"}).find("unknown option --bogus") != std::string::npos);
  CHECK(ParseError({"deploy", "a", "--name"}).find("needs a value") != std::string::npos);
}

TEST_CASE("other commands, global options and help", "[cli][args]") {
  auto inv = Parse({"--data-dir", "/d", "invoke", "fn", "--payload", "{\"a\":1}", "--log", "--profile", "p"});
  CHECK(inv.command == Command::kInvoke);
  CHECK(inv.invoke.name == "fn");
  CHECK(inv.invoke.payload == std::optional<std::string>("{\"a\":1}"));
  CHECK(inv.invoke.log);
  CHECK(inv.global.data_dir == std::optional<std::string>("/d"));
  CHECK(inv.global.profile == std::optional<std::string>("p"));
  CHECK_FALSE(Parse({"invoke", "fn"}).invoke.payload.has_value());
  CHECK(Parse({"invoke", "fn", R"({"any": "event"})"}).invoke.payload == std::optional<std::string>(R"({"any": "event"})"));
  CHECK(ParseError({"invoke", "fn", "{}", "--payload", "{}"}).find("payload once") != std::string::npos);
  CHECK(ParseError({"invoke", "fn", "{}", "x"}).find("unexpected argument") != std::string::npos);

  auto logs = Parse({"logs", "fn", "-f", "--since", "2h"});
  CHECK(logs.command == Command::kLogs);
  CHECK(logs.logs.follow);
  CHECK(logs.logs.since_ms == 2 * 3600 * 1000);
  CHECK(Parse({"logs", "fn"}).logs.since_ms == 10 * 60 * 1000);
  CHECK(ParseError({"logs", "fn", "--since", "soon"}).find("not a duration") != std::string::npos);

  CHECK(Parse({"list"}).command == Command::kList);
  CHECK(Parse({"delete", "fn"}).name.name == "fn");
  CHECK(Parse({"url", "fn"}).command == Command::kUrl);
  CHECK(ParseError({"delete"}).find("needs a function NAME") != std::string::npos);
  CHECK(ParseError({"url", "a", "b"}).find("unexpected argument 'b'") != std::string::npos);
  CHECK(ParseError({"frobnicate"}).find("unknown command 'frobnicate'") != std::string::npos);

  CHECK(Parse({}).command == Command::kHelp);
  CHECK(Parse({"--help"}).command == Command::kHelp);
  auto h = Parse({"deploy", "--help"});
  CHECK(h.command == Command::kHelp);
  CHECK(h.help_topic == "deploy");
  CHECK(HelpText("deploy").find("--handler") != std::string::npos);
  CHECK(HelpText("").find("Commands:") != std::string::npos);
  CHECK(Parse({"server", "--data-dir", "/x"}).command == Command::kServer);
}

TEST_CASE("function names and ARNs", "[cli][args]") {
  CHECK(*NormalizeFunctionName("hello-world_2") == "hello-world_2");
  CHECK(*NormalizeFunctionName("arn:aws:lambda:us-east-1:000000000000:function:hello") == "hello");
  CHECK(*NormalizeFunctionName("arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST") == "hello");
  CHECK_FALSE(NormalizeFunctionName("arn:aws:lambda:us-east-1:000000000000:function:hello:3").ok());
  CHECK_FALSE(NormalizeFunctionName("arn:aws:s3:::bucket").ok());
  CHECK_FALSE(NormalizeFunctionName("has space").ok());
  CHECK_FALSE(NormalizeFunctionName("../etc").ok());
  CHECK_FALSE(NormalizeFunctionName(std::string(65, 'a')).ok());
  CHECK(Parse({"invoke", "arn:aws:lambda:us-east-1:000000000000:function:fn"}).invoke.name == "fn");
  CHECK(ParseError({"delete", "a/b"}).find("not a valid function name") != std::string::npos);
}

TEST_CASE("durations", "[cli][args]") {
  CHECK(*ParseDuration("500ms") == 500);
  CHECK(*ParseDuration("90s") == 90'000);
  CHECK(*ParseDuration("10m") == 600'000);
  CHECK(*ParseDuration("1d") == 86'400'000);
  CHECK(*ParseDuration("15") == 15'000);
  CHECK_FALSE(ParseDuration("m").ok());
  CHECK_FALSE(ParseDuration("5y").ok());
}

TEST_CASE("credentials file parsing", "[cli][config]") {
  auto ini = ParseIni(
      "# written by geysir\n"
      "[default]\n"
      "aws_access_key_id = AKIDDEFAULT\n"
      "aws_secret_access_key=secret/with+chars=\n"
      "\n"
      "[profile geysir]\n"
      "  aws_access_key_id=AKIDGEYSIR  \r\n"
      "; comment\n"
      "aws_secret_access_key = s2\n"
      "[broken]\n"
      "aws_access_key_id = only\n");
  auto d = KeyFromProfile(ini, "default");
  REQUIRE(d.has_value());
  CHECK(d->access_key_id == "AKIDDEFAULT");
  CHECK(d->secret_access_key == "secret/with+chars=");
  auto g = KeyFromProfile(ini, "geysir");
  REQUIRE(g.has_value());
  CHECK(g->access_key_id == "AKIDGEYSIR");
  CHECK(g->secret_access_key == "s2");
  CHECK_FALSE(KeyFromProfile(ini, "broken").has_value());
  CHECK_FALSE(KeyFromProfile(ini, "missing").has_value());
}

TEST_CASE("endpoint and credentials resolution", "[cli][config]") {
  TempDir dir;
  GlobalOptions g;
  g.data_dir = dir.path();

  SECTION("nothing there: says what to do") {
    auto r = ResolveConfig(g, Env({}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("geysir server") != std::string::npos);
  }
  SECTION("server.json and its credentials file") {
    dir.Write("creds", "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n"
                       "[geysir]\naws_access_key_id=G\naws_secret_access_key=GS\n[other]\n"
                       "aws_access_key_id=O\naws_secret_access_key=OS\n");
    dir.Write("run/server.json", nlohmann::json{{"control_endpoint", "http://127.0.0.1:9000/"},
                                                {"credentials_file", (dir / "creds")}}
                                     .dump());
    auto r = ResolveConfig(g, Env({{"AWS_ACCESS_KEY_ID", "ENV"}, {"AWS_SECRET_ACCESS_KEY", "ES"}}));
    REQUIRE(r.ok());
    CHECK(r->endpoint == "http://127.0.0.1:9000");
    CHECK(r->region == "us-east-1");
    CHECK(r->key.access_key_id == "G");  // the server's file wins over the environment
    g.profile = "other";
    r = ResolveConfig(g, Env({}));
    REQUIRE(r.ok());
    CHECK(r->key.access_key_id == "O");
    g.profile = "nope";
    CHECK_FALSE(ResolveConfig(g, Env({})).ok());
  }
  SECTION("flags and environment") {
    dir.Write("credentials", "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n");
    auto r = ResolveConfig(g, Env({{"GEYSIR_ENDPOINT", "http://e:1"}, {"AWS_REGION", "eu-west-1"}}));
    REQUIRE(r.ok());
    CHECK(r->endpoint == "http://e:1");
    CHECK(r->region == "eu-west-1");
    CHECK(r->key.access_key_id == "D");
    g.endpoint = "http://flag:2";
    r = ResolveConfig(g, Env({{"GEYSIR_ENDPOINT", "http://e:1"}}));
    REQUIRE(r.ok());
    CHECK(r->endpoint == "http://flag:2");
  }
  SECTION("environment keys when there is no credentials file") {
    g.endpoint = "http://flag:2";
    auto r = ResolveConfig(g, Env({{"AWS_ACCESS_KEY_ID", "ENV"}, {"AWS_SECRET_ACCESS_KEY", "ES"}}));
    REQUIRE(r.ok());
    CHECK(r->key.access_key_id == "ENV");
    auto none = ResolveConfig(g, Env({}));
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().message().find("no credentials") != std::string::npos);
  }
}

TEST_CASE("zipping a directory keeps relative paths and exec bits, skips caches", "[cli][package]") {
  TempDir dir;
  dir.Write("app.py", "def handler(event, context):\n    return {'ok': True}\n");
  dir.Write("pkg/__init__.py", "");
  dir.Write("pkg/sub/mod.py", "X = 1\n");
  dir.Write("bin/tool", "#!/bin/sh\necho hi\n", 0755);
  dir.Write("__pycache__/app.cpython-311.pyc", "junk");
  dir.Write("pkg/__pycache__/x.pyc", "junk");
  dir.Write(".git/HEAD", "ref: refs/heads/main\n");
  fs::create_symlink("app.py", dir / "link.py");
  fs::create_symlink("/nonexistent/target", dir / "dangling");

  auto pkg = ZipDirectory(dir.path());
  INFO(pkg.status().ToString());
  REQUIRE(pkg.ok());
  CHECK(pkg->file_count == 5);
  auto entries = ReadZip(pkg->zip);
  std::vector<std::string> names;
  for (const auto& [name, info] : entries) names.push_back(name);
  CHECK(names == std::vector<std::string>{"app.py", "bin/tool", "link.py", "pkg/__init__.py", "pkg/sub/mod.py"});
  CHECK(entries["bin/tool"].mode == 0755);
  CHECK(entries["app.py"].mode == 0644);
  CHECK(entries["link.py"].content == entries["app.py"].content);
  CHECK(entries["pkg/sub/mod.py"].content == "X = 1\n");

  // Same tree, same bytes: the server stores code once per sha256.
  auto again = ZipDirectory(dir.path());
  REQUIRE(again.ok());
  CHECK(again->zip == pkg->zip);

  // The archive is a real zip: `unzip -l` reads it.
  std::string zip_path = (dir / "out.zip");
  std::ofstream(zip_path, std::ios::binary) << pkg->zip;
  if (system("command -v unzip >/dev/null 2>&1") == 0) {
    CHECK(system(("unzip -tq " + zip_path + " >/dev/null").c_str()) == 0);
  }
  // And a .zip path is taken as is.
  auto from_file = PackagePath(zip_path);
  REQUIRE(from_file.ok());
  CHECK_FALSE(from_file->from_directory);
  CHECK(from_file->zip == pkg->zip);
  CHECK(from_file->file_count == 5);
}

TEST_CASE("packaging errors", "[cli][package]") {
  TempDir dir;
  CHECK_FALSE(PackagePath((dir / "missing")).ok());
  CHECK(ZipDirectory(dir.path()).status().message().find("no files") != std::string::npos);
  dir.Write("notzip.zip", "this is not a zip");
  auto bad = PackagePath((dir / "notzip.zip"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("not a valid zip") != std::string::npos);
  CHECK(HumanBytes(12) == "12 B");
  CHECK(HumanBytes(3482) == "3.4 KiB");
}

TEST_CASE("AWS error responses read as a person would want", "[cli][client]") {
  ApiResponse r;
  r.status = 404;
  r.headers = {{"x-amzn-errortype", "ResourceNotFoundException:http://internal.amazon.com/coral/"}};
  r.body = R"({"Type":"User","Message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:x"})";
  CHECK(ErrorSummary(r) ==
        "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:000000000000:function:x");
  CHECK(ApiError(r).code() == geysir::Code::kNotFound);

  ApiResponse s;
  s.status = 403;
  s.body = R"({"__type":"com.amazon.coral.service#InvalidSignatureException","message":"Signature expired"})";
  CHECK(ErrorSummary(s) == "InvalidSignatureException: Signature expired");

  ApiResponse t;
  t.status = 500;
  t.body = "oops";
  CHECK(ErrorSummary(t) == "HTTP 500: oops");
}

TEST_CASE("request bodies deploy sends", "[cli][commands]") {
  DeployOptions o;
  o.name = "hello";
  o.handler = "app.handler";
  o.memory_mb = 256;
  auto create = nlohmann::json::parse(CreateFunctionBody(o, "PK\x05\x06"));
  CHECK(create["FunctionName"] == "hello");
  CHECK(create["Runtime"] == "python3.11");
  CHECK(create["Role"] == "arn:aws:iam::000000000000:role/geysir");
  CHECK(create["Handler"] == "app.handler");
  CHECK(create["MemorySize"] == 256);
  CHECK_FALSE(create.contains("Timeout"));
  CHECK(*geysir::DecodeBase64(create["Code"]["ZipFile"].get<std::string>()) == "PK\x05\x06");

  DeployOptions only_code;
  only_code.name = "hello";
  CHECK(UpdateConfigurationBody(only_code).empty());
  only_code.env = std::map<std::string, std::string>{{"K", "V"}};
  auto update = nlohmann::json::parse(UpdateConfigurationBody(only_code));
  CHECK(update == nlohmann::json{{"Environment", {{"Variables", {{"K", "V"}}}}}});
}

TEST_CASE("timestamps", "[cli][commands]") {
  CHECK(FormatTimestampMs(1795757400123) == "2026-11-27T05:30:00.123Z");
}

namespace {

// A one-shot HTTP server on loopback: accepts connections, reads one request each, answers
// with `response`, and keeps the raw requests. Bounded in time.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response, int connections = 1)
      : OneShotServer(std::vector<std::string>(static_cast<size_t>(connections), response)) {}
  // One connection per response, answered in order.
  explicit OneShotServer(std::vector<std::string> responses) : responses_(std::move(responses)) {
    int connections = static_cast<int>(responses_.size());
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd_, 8) == 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, connections] { Serve(connections); });
  }
  ~OneShotServer() {
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  // Valid after the client call returned.
  const std::vector<std::string>& requests() {
    if (thread_.joinable()) thread_.join();
    return requests_;
  }

 private:
  void Serve(int connections) {
    for (int i = 0; i < connections; ++i) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (std::chrono::steady_clock::now() < deadline) {
        size_t end = req.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t cl = 0;
          size_t at = req.find("Content-Length: ");
          if (at != std::string::npos && at < end) cl = std::stoul(req.substr(at + 16));
          if (req.size() >= end + 4 + cl) break;
        }
        pollfd q{c, POLLIN, 0};
        if (poll(&q, 1, 1000) <= 0) continue;
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      requests_.push_back(req);
      std::string out = responses_[static_cast<size_t>(i)];
      (void)!write(c, out.data(), out.size());
      close(c);
    }
  }

  std::vector<std::string> responses_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::string> requests_;
};

// Raw HTTP/1.1 request text -> net::HttpRequest.
geysir::net::HttpRequest ParseRaw(const std::string& raw) {
  geysir::net::HttpRequest r;
  size_t end = raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream rl(line);
  std::string version;
  rl >> r.method >> r.target >> version;
  size_t q = r.target.find('?');
  r.path = r.target.substr(0, q);
  r.query = q == std::string::npos ? "" : r.target.substr(q + 1);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(line.substr(0, colon), value);
  }
  r.body = raw.substr(end + 4);
  return r;
}

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("what the CLI sends is signed so that control's verifier accepts it", "[cli][client][sigv4]") {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct Case {
    std::string method, path, body;
  };
  std::vector<Case> cases = {
      {"GET", "/2015-03-31/functions/hello/configuration", ""},
      {"GET", "/2015-03-31/functions/?Marker=abc%3D&MaxItems=50", ""},
      {"GET", "/geysir/v1/functions/hello/logs?limit=1000&start_time=1795757400123", ""},
      {"POST", "/2015-03-31/functions", R"({"FunctionName":"hello","Code":{"ZipFile":"UEsFBg=="}})"},
      {"PUT", "/2015-03-31/functions/hello/code", R"({"ZipFile":"UEsFBg=="})"},
      {"DELETE", "/2015-03-31/functions/hello", ""},
      {"POST", "/2015-03-31/functions/hello/invocations", ""},
  };
  for (const auto& c : cases) {
    SECTION(c.method + " " + c.path) {
      OneShotServer server("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                           "Connection: close\r\n\r\n{}");
      ClientConfig cfg;
      cfg.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
      cfg.region = "us-east-1";
      cfg.key = {"AKIDGEYSIRCLI", "cli/secret+KEY"};
      ControlClient client(cfg);
      auto r = client.Call(c.method, c.path, c.body);
      REQUIRE(r.ok());
      CHECK(r->status == 200);
      REQUIRE(server.requests().size() == 1);
      auto req = ParseRaw(server.requests()[0]);
      CHECK(req.method == c.method);
      CHECK(req.body == c.body);
      geysir::net::sigv4::VerifyError err{geysir::net::sigv4::Failure::kMissingAuthentication, ""};
      auto cred = geysir::net::sigv4::ParseCredential(req, &err);
      INFO(server.requests()[0]);
      INFO(err.message);
      REQUIRE(cred.has_value());
      CHECK(cred->access_key_id == "AKIDGEYSIRCLI");
      CHECK(cred->service == "lambda");
      auto bad = geysir::net::sigv4::Verify(req, *cred, "cli/secret+KEY", NowS());
      CHECK_FALSE(bad.has_value());
      if (bad) FAIL(bad->message);
    }
  }
}

TEST_CASE("connection refused reads as 'is geysir server running?'", "[cli][client]") {
  // Bind a port, then close it, so nothing listens there.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  ClientConfig cfg;
  cfg.endpoint = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  cfg.region = "us-east-1";
  cfg.key = {"A", "B"};
  ControlClient client(cfg);
  auto r = client.Call("GET", "/2015-03-31/functions/");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "cannot reach Geysir control at " + cfg.endpoint + ": is `geysir server` running?");
}

TEST_CASE("invoke prints the payload and exits 1 on a function error", "[cli][commands]") {
  OneShotServer server(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Amz-Function-Error: Unhandled\r\n"
      "X-Amz-Log-Result: U1RBUlQgUmVxdWVzdElkOiAxCg==\r\nContent-Length: 44\r\nConnection: close\r\n\r\n"
      R"({"errorMessage":"boom","errorType":"Error"})"
      "\n");
  ClientConfig cfg;
  cfg.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
  cfg.region = "us-east-1";
  cfg.key = {"A", "B"};
  ControlClient client(cfg);
  std::ostringstream out, err;
  std::istringstream in("");
  Io io{out, err, in, true};
  InvokeOptions o;
  o.name = "hello";
  o.payload = R"({"x":1})";
  o.log = true;
  CHECK(Invoke(client, o, io) == 1);
  CHECK(out.str() == "{\"errorMessage\":\"boom\",\"errorType\":\"Error\"}\n");
  CHECK(err.str().find("START RequestId: 1") != std::string::npos);
  CHECK(err.str().find("Unhandled") != std::string::npos);
  auto req = ParseRaw(server.requests()[0]);
  CHECK(req.path == "/2015-03-31/functions/hello/invocations");
  CHECK(req.body == R"({"x":1})");
  CHECK(*req.Header("X-Amz-Log-Type") == "Tail");
}

namespace {

std::string Reply(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

ClientConfig ConfigFor(int port) {
  ClientConfig cfg;
  cfg.endpoint = "http://127.0.0.1:" + std::to_string(port);
  cfg.region = "us-east-1";
  cfg.key = {"AKIDGEYSIRCLI", "cli/secret+KEY"};
  return cfg;
}

std::string RequestLine(const std::string& raw) { return raw.substr(0, raw.find(" HTTP/1.1")); }

}  // namespace

TEST_CASE("deploy creates a missing function, waits for it and adds a URL", "[cli][commands]") {
  TempDir dir;
  dir.Write("app.py", "def handler(e, c):\n    return 1\n");
  const std::string not_found = Reply(404, R"({"Type":"User","Message":"Function not found: x"})",
                                      "x-amzn-ErrorType: ResourceNotFoundException\r\n");
  const std::string cfg = R"({"FunctionName":"hello","Runtime":"python3.11","Handler":"app.handler",)"
                          R"("MemorySize":128,"Timeout":3,"State":"Active","LastUpdateStatus":"Successful"})";
  const std::string pending = R"({"FunctionName":"hello","State":"Pending","LastUpdateStatus":"InProgress"})";
  OneShotServer server({not_found, Reply(201, cfg), Reply(200, pending), Reply(200, cfg), not_found,
                        Reply(201, R"({"FunctionUrl":"http://abc.lambda-url.localhost:8080/","AuthType":"NONE"})")});
  ControlClient client(ConfigFor(server.port()));
  std::ostringstream out, err;
  std::istringstream in("");
  Io io{out, err, in, true};
  DeployOptions o;
  o.path = dir.path();
  o.name = "hello";
  o.handler = "app.handler";
  o.url = true;
  CHECK(Deploy(client, o, io) == 0);
  INFO(err.str());
  CHECK(out.str() == "http://abc.lambda-url.localhost:8080/\n");
  CHECK(err.str().find("Packaging " + dir.path() + ": 1 file, ") != std::string::npos);
  CHECK(err.str().find("Creating function hello") != std::string::npos);
  CHECK(err.str().find("Function hello is ready (python3.11, app.handler, 128 MB, 3 s)") != std::string::npos);
  const auto& reqs = server.requests();
  REQUIRE(reqs.size() == 6);
  CHECK(RequestLine(reqs[0]) == "GET /2015-03-31/functions/hello/configuration");
  CHECK(RequestLine(reqs[1]) == "POST /2015-03-31/functions");
  CHECK(RequestLine(reqs[2]) == "GET /2015-03-31/functions/hello/configuration");
  CHECK(RequestLine(reqs[3]) == "GET /2015-03-31/functions/hello/configuration");
  CHECK(RequestLine(reqs[4]) == "GET /2021-10-31/functions/hello/url");
  CHECK(RequestLine(reqs[5]) == "POST /2021-10-31/functions/hello/url");
  auto create = nlohmann::json::parse(ParseRaw(reqs[1]).body);
  CHECK(create["Handler"] == "app.handler");
  CHECK(ParseRaw(reqs[5]).body == R"({"AuthType":"NONE"})");
}

TEST_CASE("deploy updates an existing function: code, then only the given configuration", "[cli][commands]") {
  TempDir dir;
  dir.Write("app.py", "x = 1\n");
  const std::string cfg = R"({"FunctionName":"hello","Runtime":"python3.11","Handler":"app.handler",)"
                          R"("MemorySize":512,"Timeout":3,"State":"Active","LastUpdateStatus":"Successful"})";
  OneShotServer server({Reply(200, cfg), Reply(200, cfg), Reply(200, cfg), Reply(200, cfg), Reply(200, cfg)});
  ControlClient client(ConfigFor(server.port()));
  std::ostringstream out, err;
  std::istringstream in("");
  Io io{out, err, in, true};
  DeployOptions o;
  o.path = dir.path();
  o.name = "hello";
  o.memory_mb = 512;
  CHECK(Deploy(client, o, io) == 0);
  INFO(err.str());
  const auto& reqs = server.requests();
  REQUIRE(reqs.size() == 5);
  CHECK(RequestLine(reqs[1]) == "PUT /2015-03-31/functions/hello/code");
  CHECK(nlohmann::json::parse(ParseRaw(reqs[1]).body).contains("ZipFile"));
  CHECK(RequestLine(reqs[2]) == "GET /2015-03-31/functions/hello/configuration");
  CHECK(RequestLine(reqs[3]) == "PUT /2015-03-31/functions/hello/configuration");
  CHECK(ParseRaw(reqs[3]).body == R"({"MemorySize":512})");
  CHECK(err.str().find("Updating code of hello") != std::string::npos);
}

TEST_CASE("an API error is shown with its type and message, exit 1", "[cli][commands]") {
  OneShotServer server(Reply(409, R"({"Type":"User","message":"Function already exist: hello"})",
                             "x-amzn-ErrorType: ResourceConflictException\r\n"));
  ControlClient client(ConfigFor(server.port()));
  std::ostringstream out, err;
  std::istringstream in("");
  Io io{out, err, in, true};
  CHECK(Delete(client, NameOptions{"hello"}, io) == 1);
  CHECK(err.str() == "error: ResourceConflictException: Function already exist: hello\n");
}

TEST_CASE("logs pages through control's native API and prints each line once", "[cli][commands]") {
  nlohmann::json page1 = {{"events",
                           {{{"timestamp", 1795757400000}, {"message", "START RequestId: r1\n"}, {"requestId", "r1"}},
                            {{"timestamp", 1795757400001}, {"message", "hello\n"}, {"requestId", "r1"}}}},
                          {"nextStartTime", 1795757400002},
                          {"more", true}};
  // The second page repeats the last line (an inclusive cursor must not print it twice).
  nlohmann::json page2 = {{"events",
                           {{{"timestamp", 1795757400001}, {"message", "hello\n"}, {"requestId", "r1"}},
                            {{"timestamp", 1795757400005}, {"message", "END RequestId: r1"}, {"requestId", "r1"}}}},
                          {"nextStartTime", 1795757400006},
                          {"more", false}};
  OneShotServer server({Reply(200, page1.dump()), Reply(200, page2.dump())});
  ControlClient client(ConfigFor(server.port()));
  std::ostringstream out, err;
  std::istringstream in("");
  Io io{out, err, in, true};
  LogsOptions o;
  o.name = "hello";
  o.limit = 2;
  o.since_ms = int64_t{1000} * 86400 * 365 * 20;  // start well before the fixed timestamps
  CHECK(Logs(client, o, io) == 0);
  CHECK(out.str() ==
        "2026-11-27T05:30:00.000Z  START RequestId: r1\n"
        "2026-11-27T05:30:00.001Z  hello\n"
        "2026-11-27T05:30:00.005Z  END RequestId: r1\n");
  const auto& reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(RequestLine(reqs[0]).rfind("GET /geysir/v1/functions/hello/logs?limit=2&start_time=", 0) == 0);
  CHECK(RequestLine(reqs[1]) == "GET /geysir/v1/functions/hello/logs?limit=2&start_time=1795757400002");
}

TEST_CASE("invoke reads the event from stdin when it is not a terminal, and checks it is JSON", "[cli][commands]") {
  OneShotServer server(Reply(200, R"({"ok":true})"));
  ControlClient client(ConfigFor(server.port()));
  std::ostringstream out, err;
  std::istringstream in(R"({"from":"stdin"})");
  Io io{out, err, in, false};
  InvokeOptions o;
  o.name = "hello";
  CHECK(Invoke(client, o, io) == 0);
  CHECK(out.str() == "{\"ok\":true}\n");
  CHECK(ParseRaw(server.requests()[0]).body == R"({"from":"stdin"})");

  std::ostringstream out2, err2;
  std::istringstream in2("");
  Io io2{out2, err2, in2, true};
  o.payload = "{not json";
  CHECK(Invoke(client, o, io2) == 1);  // refused before anything is sent
  CHECK(err2.str().find("not valid JSON") != std::string::npos);
}

TEST_CASE("ScanSubcommandArgs: positionals, flags, --x v and --x=v, globals, refusals", "[cli][args]") {
  auto scan = [](std::vector<std::string> words, GlobalOptions& global, std::map<std::string, std::string>& seen) {
    words.insert(words.begin(), "geysir-sub");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    return ScanSubcommandArgs(static_cast<int>(argv.size()), argv.data(), {"--all"}, global,
                              [&seen](const std::string& name, const std::string& value) -> geysir::Status {
                                if (name != "--function") return geysir::Status::Invalid("unknown option " + name);
                                seen[name] = value;
                                return geysir::Status::Ok();
                              });
  };
  GlobalOptions global;
  std::map<std::string, std::string> seen;
  auto r = scan({"failed", "--function", "f1", "--all", "--region=eu-west-1", "7"}, global, seen);
  REQUIRE(r.ok());
  CHECK(r->positional == std::vector<std::string>{"failed", "7"});
  CHECK(r->flags_seen == std::vector<std::string>{"--all"});
  CHECK_FALSE(r->help);
  CHECK(seen["--function"] == "f1");
  CHECK(global.region == "eu-west-1");

  CHECK(scan({"x", "--help", "--nope"}, global, seen)->help);  // help wins where it stands
  auto missing = scan({"x", "--function"}, global, seen);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == "--function needs a value");
  auto unknown = scan({"--nope=1"}, global, seen);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().message() == "unknown option --nope");
}
