// SpawnTemplate and geysir-worker: descriptors, stage reporting through the error pipe, the
// control-socket protocol and the template's life cycle.
#include "worker/launcher.h"

#include <catch2/catch.hpp>

#include "template_harness.h"

using namespace geysir;
using namespace geysir::worker;
using namespace geysir::worker::testing;

namespace {

const char* kHello = R"(
import os
def handler(event, context):
    print("hello from the handler")
    return {"hello": event.get("name", "world"), "pid": os.getpid()}
)";

// Reads the LaunchFailure record, or nullopt at EOF (the runtime was exec'd).
std::optional<LaunchFailure> ReadFailure(Template& t) {
  std::string bytes = ReadToEof(t.proc.error_pipe.get(), 10000);
  if (bytes.size() != sizeof(LaunchFailure)) return std::nullopt;
  LaunchFailure f;
  std::memcpy(&f, bytes.data(), sizeof f);
  return f;
}

}  // namespace

TEST_CASE("a template runs a hello handler end to end", "[launcher]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", kHello);
  auto t = Spawn(MakeSpec(code.path(), "app.handler"));
  REQUIRE(t);
  auto ready = t->Next();
  REQUIRE(ready);
  CHECK((*ready)["type"] == "ready");
  CHECK((*ready)["init_ms"].get<double>() > 0);
  // The runtime was exec'd: the error pipe reads EOF with no record.
  CHECK_FALSE(ReadFailure(*t));

  auto child = Fork(*t, 1);
  REQUIRE(child);
  CHECK(child->pid > 0);
  auto result = Invoke(*child, InvokeHeader("req-1"), R"({"name":"geysir"})");
  REQUIRE(result);
  CHECK(result->header["type"] == "result");
  CHECK(result->header["status"] == "ok");
  json body = json::parse(result->body);
  CHECK(body["hello"] == "geysir");
  CHECK(body["pid"] == child->pid);
  CHECK(ReadToEof(child->log.get(), 5000) == "hello from the handler\n");

  auto exited = t->NextOfType("exited");
  REQUIRE(exited);
  CHECK((*exited)["pid"] == child->pid);
  CHECK((*exited)["code"] == 0);
  CHECK((*exited)["signal"] == 0);
}

TEST_CASE("two children of one template are different processes", "[launcher]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", R"(
import os
counter = 0
def handler(event, context):
    global counter
    counter += 1
    return {"pid": os.getpid(), "counter": counter}
)");
  auto t = Spawn(MakeSpec(code.path(), "app.handler"));
  REQUIRE(t);
  REQUIRE((*t->Next())["type"] == "ready");
  auto a = Fork(*t, 1);
  auto b = Fork(*t, 2);
  REQUIRE(a);
  REQUIRE(b);
  auto ra = Invoke(*a, InvokeHeader("a"), "{}");
  auto rb = Invoke(*b, InvokeHeader("b"), "{}");
  REQUIRE(ra);
  REQUIRE(rb);
  json ja = json::parse(ra->body), jb = json::parse(rb->body);
  CHECK(ja["pid"] != jb["pid"]);
  // No shared globals: each child starts from the template's state.
  CHECK(ja["counter"] == 1);
  CHECK(jb["counter"] == 1);
}

TEST_CASE("the template exits when the control socket closes", "[launcher]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", kHello);
  auto t = Spawn(MakeSpec(code.path(), "app.handler"));
  REQUIRE(t);
  REQUIRE((*t->Next())["type"] == "ready");
  t->proc.control.Reset();
  int status = 0;
  int64_t deadline = NowMs() + 5000;
  pid_t got = 0;
  while ((got = waitpid(t->proc.pid, &status, WNOHANG)) == 0 && NowMs() < deadline) usleep(2000);
  REQUIRE(got == t->proc.pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  t->proc.pid = -1;
}

TEST_CASE("a failing launcher stage is reported with its errno", "[launcher]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  SECTION("chdir into a code directory that does not exist") {
    auto t = Spawn(MakeSpec("/nonexistent/geysir-code", "app.handler"));
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageChdir);
    CHECK(f->err == ENOENT);
    CHECK(std::string(LaunchStageName(f->stage)) == "chdir");
    int status;
    REQUIRE(waitpid(t->proc.pid, &status, 0) == t->proc.pid);
    CHECK(WEXITSTATUS(status) == 127);
    t->proc.pid = -1;
    // The init log says what happened, for the operator.
    CHECK(ReadToEof(t->proc.init_log.get(), 2000).find("chdir /nonexistent/geysir-code") != std::string::npos);
  }
  SECTION("code the function's uid cannot read") {
    TempDir code;
    code.Write("app.py", kHello);
    chmod(code.path().c_str(), 0700);
    auto t = Spawn(MakeSpec(code.path(), "app.handler"));
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageChdir);
    CHECK(f->err == EACCES);
  }
  SECTION("an interpreter that does not exist") {
    TempDir code;
    code.Write("app.py", kHello);
    auto spec = MakeSpec(code.path(), "app.handler");
    spec.python = "/nonexistent/python3.11";
    auto t = Spawn(spec);
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageExecRuntime);
    CHECK(f->err == ENOENT);
  }
  SECTION("uid 0 is refused") {
    TempDir code;
    auto spec = MakeSpec(code.path(), "app.handler");
    spec.uid = 0;
    auto t = Spawn(spec);
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageDropPrivileges);
    CHECK(f->err == EPERM);
  }
  SECTION("uid -1 (\"unchanged\" to setresuid) is refused") {
    TempDir code;
    auto spec = MakeSpec(code.path(), "app.handler");
    spec.uid = static_cast<uid_t>(-1);
    auto t = Spawn(spec);
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageDropPrivileges);
    CHECK(f->err == EINVAL);
  }
  SECTION("a cgroup that does not exist") {
    TempDir code;
    auto spec = MakeSpec(code.path(), "app.handler");
    spec.cgroup_dir = "/sys/fs/cgroup/memory/geysir-does-not-exist/x";
    auto t = Spawn(spec);
    REQUIRE(t);
    auto f = ReadFailure(*t);
    REQUIRE(f);
    CHECK(f->stage == kStageCgroup);
    CHECK(f->err == ENOENT);
  }
}

TEST_CASE("exec of a missing launcher binary reports kStageExecLauncher", "[launcher]") {
  TempDir code;
  auto spec = MakeSpec(code.path(), "app.handler");
  spec.worker_binary = "/nonexistent/geysir-worker";
  auto t = Spawn(spec);
  REQUIRE(t);
  auto f = ReadFailure(*t);
  REQUIRE(f);
  CHECK(f->stage == kStageExecLauncher);
  CHECK(f->err == ENOENT);
}

TEST_CASE("the template's fds are non-blocking and close-on-exec in the scheduler", "[launcher]") {
  TempDir code;
  auto spec = MakeSpec(code.path(), "app.handler");
  spec.worker_binary = "/nonexistent/geysir-worker";
  auto t = Spawn(spec);
  REQUIRE(t);
  for (int fd : {t->proc.control.get(), t->proc.init_log.get(), t->proc.error_pipe.get()}) {
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  }
  // Nothing to receive yet is EAGAIN, not an error.
  auto m = ReceiveControlMessage(t->proc.control.get());
  if (!m.ok()) CHECK((m.status().sys_errno() == EAGAIN || m.status().sys_errno() == 0));
}

TEST_CASE("control messages: fds travel, EOF and garbage are told apart", "[launcher]") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  auto none = ReceiveControlMessage(b.get());
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().sys_errno() == EAGAIN);

  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  UniqueFd r(p[0]), w(p[1]);
  int fds[2] = {r.get(), w.get()};
  REQUIRE(SendControlMessage(a.get(), json{{"type", "fork"}, {"child", 7}}, fds, 2).ok());
  auto got = ReceiveControlMessage(b.get());
  REQUIRE(got.ok());
  CHECK(got->message["child"] == 7);

  REQUIRE(write(a.get(), "not json", 8) == 8);
  auto bad = ReceiveControlMessage(b.get());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);

  a.Reset();
  auto eof = ReceiveControlMessage(b.get());
  REQUIRE_FALSE(eof.ok());
  CHECK(eof.status().code() == Code::kUnavailable);
  CHECK(eof.status().sys_errno() == 0);
}
