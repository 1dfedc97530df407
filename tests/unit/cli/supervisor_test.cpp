// The supervisor (cli/supervisor.h): its flags, its isolation choice, and what it does with real
// child processes. The daemons are fakes (a short Python program under each daemon's name in a
// directory of their own) that listen where the real ones would and write what happens to them
// to a log: started, stopped by SIGTERM. The supervisor runs in a forked child of the test,
// since it owns its process's signals; the test talks to it with signals, as an operator does.
#include "cli/supervisor.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

using namespace geysir::cli;
using geysir::testing::TempDir;

namespace {

// argv for ParseServerOptions: "server" and then `args`.
int Parse(std::vector<std::string> args, ServerOptions* o, bool* help) {
  args.insert(args.begin(), "server");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return ParseServerOptions(static_cast<int>(args.size()), argv.data(), o, help);
}

// One fake daemon for every name the supervisor starts. control and the scheduler accept on
// their --socket; the gateway answers every request on the HTTP socket it is handed as fd 3
// with 200 (the supervisor's /healthz probe). SIGTERM ends it, unless GEYSIR_FAKE_STUBBORN names
// it: then only SIGKILL does.
const char* kFakeDaemon = R"PY(#!/usr/bin/python3
import os, signal, socket, sys
name = os.path.basename(sys.argv[0])[len("geysir-"):]
def note(what):
    with open(os.environ["GEYSIR_FAKE_LOG"], "a") as f:
        f.write(f"{what} {name} {os.getpid()}\n")
def on_term(sig, frame):
    note("term")
    if os.environ.get("GEYSIR_FAKE_STUBBORN") != name:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
args = sys.argv[1:]
with open(os.path.join(os.path.dirname(os.environ["GEYSIR_FAKE_LOG"]), name + ".args"), "w") as f:
    f.write("\n".join(args))
note("start")
if "--socket" in args:
    path = args[args.index("--socket") + 1]
    if os.path.exists(path):
        os.unlink(path)  # a restarted daemon replaces the socket of the one that died
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
else:
    server = socket.socket(fileno=3)
while True:
    conn, _ = server.accept()
    if "--socket" not in args:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    conn.close()
)PY";

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// "start control 123", ... in the fake log: the pids of `what` events of daemon `name`.
std::vector<pid_t> Pids(const std::vector<std::string>& log, const std::string& what, const std::string& name) {
  std::vector<pid_t> pids;
  for (const auto& line : log) {
    std::istringstream in(line);
    std::string w, n;
    pid_t pid = 0;
    if (in >> w >> n >> pid && w == what && n == name) pids.push_back(pid);
  }
  return pids;
}

// A supervisor over the fake daemons, in a forked child of the test.
class FakePlatform {
 public:
  explicit FakePlatform(int grace_s = 5, const std::string& stubborn = "") {
    for (const char* name : {"geysir-control", "geysir-scheduler", "geysir-gateway"}) {
      dir_.Write(std::string("bin/") + name, kFakeDaemon, 0755);
    }
    dir_.Write("bin/geysir-worker", "#!/bin/sh\nexit 0\n", 0755);
    dir_.Write("share/geysir/runtime/python/bootstrap.py", "");
    log_ = dir_ / "fake.log";
    ServerOptions o;
    o.data_dir = dir_ / "data";
    o.http_port = 0;
    o.control_port = 0;
    o.user = "nobody";
    o.grace_s = grace_s;
    o.isolation = "fork";
    const std::string bin_dir = dir_ / "bin";
    const std::string out = dir_ / "supervisor.log";
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // The supervisor's log (one JSON line per event) goes to a file the test can read.
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("GEYSIR_FAKE_LOG", log_.c_str(), 1);
      if (stubborn.empty()) unsetenv("GEYSIR_FAKE_STUBBORN");
      else setenv("GEYSIR_FAKE_STUBBORN", stubborn.c_str(), 1);
      geysir::log::Init("supervisor");
      _exit(RunSupervisor(o, bin_dir));
    }
  }
  ~FakePlatform() {
    if (pid_ <= 0 || reaped_) return;
    // A failed test left the supervisor running. Its fakes die with it (PR_SET_PDEATHSIG sends
    // them SIGTERM), except a stubborn one: SIGKILL those still running our fake's code first.
    for (const char* name : {"control", "scheduler", "gateway"}) {
      for (pid_t pid : Pids(log(), "start", name)) {
        std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
        const std::string args(std::istreambuf_iterator<char>(cmdline), {});
        if (args.find(dir_.path()) != std::string::npos) kill(pid, SIGKILL);
      }
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  std::vector<std::string> log() const { return Lines(log_); }
  std::string supervisor_log() const {
    std::ifstream in(dir_ / "supervisor.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string server_json() const { return dir_ / "data/run/server.json"; }
  std::string args_of(const std::string& name) const {
    std::ifstream in(dir_ / (name + ".args"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  pid_t pid() const { return pid_; }

  bool Up(int timeout_ms = 15000) const {
    return WaitFor([&] { return access(server_json().c_str(), F_OK) == 0; }, timeout_ms);
  }

  // SIGTERM, then the supervisor's exit status (-1 if it did not exit within `timeout_ms`).
  int Stop(int timeout_ms = 15000) {
    kill(pid_, SIGTERM);
    int status = 0;
    const bool exited = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout_ms);
    if (!exited) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  TempDir dir_{"geysir-supervisor-test"};
  std::string log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

bool Python3Available() { return access("/usr/bin/python3", X_OK) == 0; }

}  // namespace

TEST_CASE("server flags: defaults, both value forms, and what is refused", "[supervisor][flags]") {
  ServerOptions o;
  bool help = false;
  REQUIRE(Parse({}, &o, &help) == 0);
  CHECK_FALSE(help);
  CHECK(o.data_dir == "/var/lib/geysir");
  CHECK(o.http_port == 8080);
  CHECK(o.control_port == 9000);
  CHECK(o.isolation == "auto");
  CHECK(o.https_port == -1);

  REQUIRE(Parse({"--http-port=0", "--control-port", "9123", "--data-dir", "/srv/g", "--isolation=fork",
                 "--grace-s", "0", "--https-port", "8443", "--https-redirect", "--max-pools", "12"},
                &o, &help) == 0);
  CHECK(o.http_port == 0);
  CHECK(o.control_port == 9123);
  CHECK(o.data_dir == "/srv/g");
  CHECK(o.isolation == "fork");
  CHECK(o.grace_s == 1);  // at least a second to stop
  CHECK(o.https_port == 8443);
  CHECK(o.https_redirect);
  CHECK(o.max_pools == "12");

  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--http-port", "65536"}, {"--http-port", "x"}, {"--control-port"},
        {"--isolation", "always"}, {"--no-such-flag"}, {"--data-dir="}, {"--grace-s", "-1"},
        {"--max-connections-per-client", "1234567"}, {"--hsts-max-age", "1d"}}) {
    ServerOptions fresh;
    INFO(bad.front());
    CHECK(Parse(bad, &fresh, &help) == 2);
  }

  ServerOptions h;
  REQUIRE(Parse({"--http-port", "1", "--help"}, &h, &help) == 0);
  CHECK(help);
}

TEST_CASE("isolation: auto takes restore only where the kernel and root allow it", "[supervisor][isolation]") {
  auto auto_here = ChooseIsolation("auto", true, "uffd-wp and PAGEMAP_SCAN", true);
  REQUIRE(auto_here.ok());
  CHECK(auto_here->mode == "restore");
  CHECK(auto_here->detail == "uffd-wp and PAGEMAP_SCAN");

  // The fallback: a kernel without restore mode's interfaces, or no root, runs fork.
  auto no_kernel = ChooseIsolation("auto", false, "userfaultfd has no asynchronous write-protect mode", true);
  REQUIRE(no_kernel.ok());
  CHECK(no_kernel->mode == "fork");
  CHECK(no_kernel->detail == "userfaultfd has no asynchronous write-protect mode");
  auto no_root = ChooseIsolation("auto", true, "ok", false);
  REQUIRE(no_root.ok());
  CHECK(no_root->mode == "fork");
  CHECK(no_root->detail.find("root") != std::string::npos);

  // Asked for explicitly: restore is had or refused, never quietly replaced by fork.
  auto refused = ChooseIsolation("restore", false, "no PAGEMAP_SCAN ioctl", true);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == geysir::Code::kInvalidArgument);
  CHECK(refused.status().message() == "--isolation restore is not available here: no PAGEMAP_SCAN ioctl");
  auto fork_anyway = ChooseIsolation("fork", true, "ok", true);
  REQUIRE(fork_anyway.ok());
  CHECK(fork_anyway->mode == "fork");
}

TEST_CASE("the supervisor starts control, scheduler and gateway in order, restarts one that dies, "
          "and stops them gateway first", "[supervisor][processes]") {
  if (!Python3Available()) GEYSIR_SKIP("the fake daemons need /usr/bin/python3");
  FakePlatform p;
  if (!p.Up()) FAIL("not up:\n" << p.supervisor_log());

  auto log = p.log();
  REQUIRE(log.size() == 3);
  CHECK(log[0].rfind("start control ", 0) == 0);
  CHECK(log[1].rfind("start scheduler ", 0) == 0);
  CHECK(log[2].rfind("start gateway ", 0) == 0);
  auto info = nlohmann::json::parse(std::ifstream(p.server_json()));
  CHECK(info["pid"] == p.pid());
  CHECK(info["http_port"].get<int>() > 0);
  CHECK(info["control_port"].get<int>() > 0);
  // What each daemon was told: the resolved isolation mode, and the sockets of the others.
  CHECK(p.args_of("control").find("--isolation\nfork") != std::string::npos);
  CHECK(p.args_of("scheduler").find("--isolation\nfork") != std::string::npos);
  CHECK(p.args_of("gateway").find("--user\nnobody") != std::string::npos);

  // A daemon that dies is started again, and the others are left alone.
  const pid_t scheduler = Pids(log, "start", "scheduler").at(0);
  REQUIRE(kill(scheduler, SIGKILL) == 0);
  REQUIRE(WaitFor([&] { return Pids(p.log(), "start", "scheduler").size() == 2; }, 10000));
  CHECK(Pids(p.log(), "start", "scheduler")[1] != scheduler);
  CHECK(Pids(p.log(), "start", "control").size() == 1);
  CHECK(Pids(p.log(), "start", "gateway").size() == 1);
  CHECK(p.supervisor_log().find("\"event\":\"child_exited\"") != std::string::npos);

  REQUIRE(p.Stop() == 0);
  std::vector<std::string> stops;
  for (const auto& line : p.log()) {
    if (line.rfind("term ", 0) == 0) stops.push_back(line.substr(5, line.find(' ', 5) - 5));
  }
  CHECK(stops == std::vector<std::string>{"gateway", "scheduler", "control"});
  CHECK(access(p.server_json().c_str(), F_OK) != 0);  // removed on the way out
}

TEST_CASE("a daemon that ignores SIGTERM is killed after the grace period", "[supervisor][processes]") {
  if (!Python3Available()) GEYSIR_SKIP("the fake daemons need /usr/bin/python3");
  FakePlatform p(/*grace_s=*/1, /*stubborn=*/"gateway");
  if (!p.Up()) FAIL("not up:\n" << p.supervisor_log());
  const pid_t gateway = Pids(p.log(), "start", "gateway").at(0);
  const auto stop_started = std::chrono::steady_clock::now();
  REQUIRE(p.Stop() == 0);
  const auto took = std::chrono::steady_clock::now() - stop_started;
  CHECK(took >= std::chrono::milliseconds(900));  // the gateway had its grace period
  CHECK(took < std::chrono::seconds(8));
  CHECK(kill(gateway, 0) != 0);  // and then it was gone
  CHECK(p.supervisor_log().find("\"event\":\"stop_timeout_sigkill\"") != std::string::npos);
  CHECK(Pids(p.log(), "term", "control").size() == 1);  // the rest still stopped in order
}

TEST_CASE("a missing daemon binary stops the start with an error naming it", "[supervisor][processes]") {
  TempDir bin("geysir-supervisor-bin");
  for (const char* name : {"geysir-control", "geysir-scheduler", "geysir-worker"}) {
    bin.Write(name, "#!/bin/sh\nexit 0\n", 0755);
  }
  TempDir data("geysir-supervisor-data");
  ServerOptions o;
  o.data_dir = data.path();
  o.http_port = 0;
  o.control_port = 0;
  o.isolation = "fork";
  const std::string out = data / "supervisor.log";
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    _exit(RunSupervisor(o, bin.path()));
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::ifstream in(out);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  CHECK(text.find("geysir-gateway") != std::string::npos);
  CHECK(text.find("it belongs next to the geysir binary") != std::string::npos);
}
