// The Python runtime (bootstrap.py) through the real protocol: Lambda's init errors, handler
// errors, the environment and context a handler sees, and what the child is allowed to do.
#include <catch2/catch.hpp>
#include <dirent.h>
#include <sys/uio.h>

#include <cstring>
#include <vector>

#include "template_harness.h"

using namespace geysir;
using namespace geysir::worker;
using namespace geysir::worker::testing;

namespace {

// Starts a template for `handler` over `code` and returns it ready, or fails the test.
std::unique_ptr<Template> Ready(const TempDir& code, const std::string& handler) {
  auto t = Spawn(MakeSpec(code.path(), handler));
  REQUIRE(t);
  auto m = t->Next();
  REQUIRE(m);
  INFO((*m).dump());
  REQUIRE((*m)["type"] == "ready");
  return t;
}

json InitError(const TempDir& code, const std::string& handler, std::string* log = nullptr) {
  auto t = Spawn(MakeSpec(code.path(), handler));
  REQUIRE(t);
  auto m = t->Next();
  REQUIRE(m);
  REQUIRE((*m)["type"] == "init_error");
  CHECK((*m)["init_ms"].get<double>() > 0);
  if (log) *log = ReadToEof(t->proc.init_log.get(), 5000);
  return (*m)["error"];
}

// Runs one invocation in a fresh child; returns {status, body}.
std::pair<std::string, json> RunOnce(Template& t, const json& header, const std::string& event,
                                     std::string* log = nullptr) {
  static int n = 0;
  auto c = Fork(t, ++n);
  REQUIRE(c);
  auto r = Invoke(*c, header, event);
  REQUIRE(r);
  if (log) *log = ReadToEof(c->log.get(), 5000);
  return {r->header["status"].get<std::string>(), json::parse(r->body)};
}

}  // namespace

TEST_CASE("init errors have Lambda's types and messages", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", "def handler(event, context):\n    return 1\n");
  code.Write("broken.py", "def handler(event, context)\n    return 1\n");
  code.Write("raises.py", "raise RuntimeError('no config')\n");

  SECTION("missing module") {
    std::string log;
    json e = InitError(code, "nosuch.handler", &log);
    CHECK(e["errorType"] == "Runtime.ImportModuleError");
    CHECK(e["errorMessage"] == "Unable to import module 'nosuch': No module named 'nosuch'");
    CHECK(e["stackTrace"] == json::array());
    CHECK(log.find("[ERROR] Runtime.ImportModuleError: Unable to import module 'nosuch'") != std::string::npos);
  }
  SECTION("missing function") {
    json e = InitError(code, "app.nosuch");
    CHECK(e["errorType"] == "Runtime.HandlerNotFound");
    CHECK(e["errorMessage"] == "Handler 'nosuch' missing on module 'app'");
  }
  SECTION("malformed handler name") {
    json e = InitError(code, "app");
    CHECK(e["errorType"] == "Runtime.MalformedHandlerName");
    CHECK(e["errorMessage"].get<std::string>().rfind("Bad handler 'app'", 0) == 0);
  }
  SECTION("syntax error") {
    json e = InitError(code, "broken.handler");
    CHECK(e["errorType"] == "Runtime.UserCodeSyntaxError");
    CHECK(e["errorMessage"].get<std::string>().rfind("Syntax error in module 'broken'", 0) == 0);
    REQUIRE(e["stackTrace"].size() == 1);
    CHECK(e["stackTrace"][0].get<std::string>().find("broken.py") != std::string::npos);
  }
  SECTION("module code that raises") {
    json e = InitError(code, "raises.handler");
    CHECK(e["errorType"] == "RuntimeError");
    CHECK(e["errorMessage"] == "no config");
    REQUIRE(e["stackTrace"].size() >= 1);
    CHECK(e["stackTrace"].back().get<std::string>().find("raises.py") != std::string::npos);
  }
}

TEST_CASE("handler exceptions have Lambda's error shape", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", R"(
def helper():
    raise ValueError("bad thing")
def handler(event, context):
    helper()
def unserialisable(event, context):
    return {"s": {1, 2}}
def echo(event, context):
    return event
)");
  auto t = Ready(code, "app.handler");
  std::string log;
  auto [status, err] = RunOnce(*t, InvokeHeader("req-err"), "{}", &log);
  CHECK(status == "error");
  CHECK(err["errorType"] == "ValueError");
  CHECK(err["errorMessage"] == "bad thing");
  CHECK(err["requestId"] == "req-err");
  REQUIRE(err["stackTrace"].size() == 2);
  CHECK(err["stackTrace"][0].get<std::string>().find("app.py\", line 5, in handler") != std::string::npos);
  CHECK(err["stackTrace"][1].get<std::string>().find("line 3, in helper\n    raise ValueError(\"bad thing\")") !=
        std::string::npos);
  CHECK(log.rfind("[ERROR] ValueError: bad thing\nTraceback (most recent call last):\n", 0) == 0);

  SECTION("an unserialisable result is Runtime.MarshalError") {
    auto t2 = Ready(code, "app.unserialisable");
    auto [st, e] = RunOnce(*t2, InvokeHeader("req-m"), "{}");
    CHECK(st == "error");
    CHECK(e["errorType"] == "Runtime.MarshalError");
    CHECK(e["errorMessage"].get<std::string>().find("not JSON serializable") != std::string::npos);
  }
  SECTION("an event that is not JSON is an error") {
    auto t2 = Ready(code, "app.echo");
    auto [st, e] = RunOnce(*t2, InvokeHeader("req-u"), "{not json");
    CHECK(st == "error");
    CHECK(e["errorType"] == "Runtime.UnmarshalError");
  }
  SECTION("any JSON value is an event") {
    auto t2 = Ready(code, "app.echo");
    auto [st, v] = RunOnce(*t2, InvokeHeader("req-v"), "[1, \"two\", null]");
    CHECK(st == "ok");
    CHECK(v == json::array({1, "two", nullptr}));
  }
}

TEST_CASE("the handler sees Lambda's environment and context", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("pkg/__init__.py", "");
  code.Write("pkg/handlers.py", R"(
import os, logging
logging.getLogger().setLevel(logging.INFO)
def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
def handler(event, context):
    logging.info("logged %s", "line")
    print("printed")
    cc = context.client_context
    return {
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
        "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
        "inheritable": [fd for fd in range(3, 64) if _is_open(fd) and os.get_inheritable(fd)],
        "ctx": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
            "client_custom": cc.custom if cc else None,
            "client_app_title": cc.client.app_title if cc and cc.client else None,
        },
    }
)");
  auto spec = MakeSpec(code.path(), "pkg.handlers.handler");
  spec.function.memory_mb = 256;
  spec.function.environment = {{"GREETING", "hi"}, {"AWS_REGION", "eu-evil-1"}, {"TZ", "Europe/Oslo"}};
  auto t = Spawn(spec);
  REQUIRE(t);
  REQUIRE((*t->Next())["type"] == "ready");
  json header = InvokeHeader("11111111-2222-3333-4444-555555555555", 3000);
  // {"custom":{"k":"v"},"client":{"app_title":"app"}}
  header["client_context_b64"] = "eyJjdXN0b20iOnsiayI6InYifSwiY2xpZW50Ijp7ImFwcF90aXRsZSI6ImFwcCJ9fQ==";
  std::string log;
  auto [status, v] = RunOnce(*t, header, "{}", &log);
  REQUIRE(status == "ok");

  json env = v["env"];
  CHECK(env["AWS_LAMBDA_FUNCTION_NAME"] == "hello");
  CHECK(env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST");
  CHECK(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256");
  CHECK(env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/hello");
  std::string stream = env["AWS_LAMBDA_LOG_STREAM_NAME"];
  CHECK(stream.size() == std::string("YYYY/MM/DD/[$LATEST]t0123").size());
  CHECK(stream.substr(10) == "/[$LATEST]t0123");
  CHECK(env["AWS_REGION"] == "us-east-1");  // reserved: the function's value is ignored
  CHECK(env["AWS_DEFAULT_REGION"] == "us-east-1");
  CHECK(env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11");
  CHECK(env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand");
  CHECK(env["LAMBDA_TASK_ROOT"] == code.path());
  CHECK(env["LAMBDA_RUNTIME_DIR"] == GEYSIR_BINARY_DIR "/share/geysir/runtime/python");
  CHECK(env["_HANDLER"] == "pkg.handlers.handler");
  CHECK(env["TZ"] == "Europe/Oslo");  // unreserved: the function may override
  CHECK(env["LANG"] == "en_US.UTF-8");
  CHECK(env["PYTHONPATH"] == code.path());
  CHECK(env["GREETING"] == "hi");
  CHECK(env["_X_AMZN_TRACE_ID"].get<std::string>().rfind("Root=1-", 0) == 0);
  // Nothing leaks from the scheduler's environment.
  for (const char* leaked : {"USER", "SHELL", "PWD", "OLDPWD", "SSH_AUTH_SOCK", "LD_PRELOAD"}) {
    CHECK_FALSE(env.contains(leaked));
  }

  CHECK(v["cwd"] == code.path());
  CHECK(v["ids"] == json::array({65534, 65534, 65534, 65534, json::array()}));
  // 0..2 and the channel (plus the fd listdir itself opened); never the control socket (3)
  // or anything inherited from the scheduler.
  json fds = v["fds"];
  INFO(fds.dump());
  CHECK(fds.size() == 5);
  CHECK(fds[0] == 0);
  CHECK(fds[1] == 1);
  CHECK(fds[2] == 2);
  // Nothing beyond stdio would reach a program the handler exec's.
  CHECK(v["inheritable"] == json::array());

  json ctx = v["ctx"];
  CHECK(ctx["aws_request_id"] == "11111111-2222-3333-4444-555555555555");
  CHECK(ctx["function_name"] == "hello");
  CHECK(ctx["function_version"] == "$LATEST");
  CHECK(ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:hello");
  CHECK(ctx["memory_limit_in_mb"] == "256");  // a string, as on Lambda
  CHECK(ctx["log_group_name"] == "/aws/lambda/hello");
  CHECK(ctx["log_stream_name"] == stream);
  CHECK(ctx["remaining"].get<int>() > 0);
  CHECK(ctx["remaining"].get<int>() <= 3000);
  CHECK(ctx["identity"] == json::array({nullptr, nullptr}));
  CHECK(ctx["client_custom"] == json{{"k", "v"}});
  CHECK(ctx["client_app_title"] == "app");

  // Lambda's log line format for the logging module, and print() as is.
  CHECK(log.find("[INFO]\t") != std::string::npos);
  CHECK(log.find("Z\t11111111-2222-3333-4444-555555555555\tlogged line\n") != std::string::npos);
  CHECK(log.find("printed\n") != std::string::npos);
}

TEST_CASE("a child cannot regain root", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", R"(
import os
def handler(event, context):
    out = {}
    for name, call in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                       ("setgroups", lambda: os.setgroups([0]))):
        try:
            call()
            out[name] = "succeeded"
        except PermissionError:
            out[name] = "denied"
    with open("/proc/self/status") as f:
        out["nnp"] = [l.split()[1] for l in f if l.startswith("NoNewPrivs")][0]
    import resource
    out["core"] = resource.getrlimit(resource.RLIMIT_CORE)[1]
    out["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    out["fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    return out
)");
  auto t = Ready(code, "app.handler");
  auto [status, v] = RunOnce(*t, InvokeHeader("req-root"), "{}");
  REQUIRE(status == "ok");
  CHECK(v["setuid"] == "denied");
  CHECK(v["setgid"] == "denied");
  CHECK(v["setgroups"] == "denied");
  CHECK(v["nnp"] == "1");
  CHECK(v["core"] == 0);
  CHECK(v["nofile"] == 1024);
  CHECK(v["fsize"] == 512ull << 20);
}

TEST_CASE("what the module prints at import goes to the init log", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", "print('init line')\ndef handler(e, c):\n    return 1\n");
  auto t = Ready(code, "app.handler");
  CHECK(ReadAvailable(t->proc.init_log.get()) == "init line\n");
}

TEST_CASE("a handler that exits the process produces no result", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", "import sys\ndef handler(event, context):\n    sys.exit(3)\n");
  auto t = Ready(code, "app.handler");
  auto c = Fork(*t, 1);
  REQUIRE(c);
  CHECK_FALSE(Invoke(*c, InvokeHeader("req-exit"), "{}"));
  auto exited = t->NextOfType("exited");
  REQUIRE(exited);
  CHECK((*exited)["code"] == 3);
}

namespace {

// One datagram with `text` and `nfds` fresh descriptors (pipe ends) attached, as the scheduler's
// messages are sent; returns false if it could not be sent.
bool SendRaw(int control, const std::string& text, int nfds) {
  std::vector<UniqueFd> keep;
  std::vector<int> fds;
  for (int i = 0; i < nfds; i += 2) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return false;
    keep.emplace_back(p[0]);
    keep.emplace_back(p[1]);
    fds.push_back(p[0]);
    if (i + 1 < nfds) fds.push_back(p[1]);
  }
  struct iovec iov = {const_cast<char*>(text.data()), text.size()};
  alignas(struct cmsghdr) char space[CMSG_SPACE(8 * sizeof(int))] = {};
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = space;
    msg.msg_controllen = CMSG_SPACE(static_cast<size_t>(nfds) * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(static_cast<size_t>(nfds) * sizeof(int));
    memcpy(CMSG_DATA(c), fds.data(), static_cast<size_t>(nfds) * sizeof(int));
  }
  return sendmsg(control, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

size_t OpenFds(pid_t pid) {
  size_t n = 0;
  if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (struct dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

}  // namespace

// The template's fork loop (worker/runtime/fork_server.c) takes only what the scheduler sends:
// anything else is dropped, its descriptors closed, and the loop keeps serving.
TEST_CASE("the template's fork loop drops what is not a fork message and keeps serving", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py", "def handler(event, context):\n    return {'n': event['n']}\n");
  auto t = Ready(code, "app.handler");
  const int control = t->proc.control.get();
  // One fork first: the loop (and its signalfd) is then surely running.
  auto first = Fork(*t, 1);
  REQUIRE(first);
  REQUIRE(Invoke(*first, InvokeHeader("req-first"), R"({"n":1})"));
  const size_t fds_before = OpenFds(t->proc.pid);
  REQUIRE(fds_before > 0);
  CHECK(SendRaw(control, "not json at all", 2));
  CHECK(SendRaw(control, "[1,2,3]", 2));
  CHECK(SendRaw(control, R"({"type":"fork","child":5})", 1));              // one descriptor only
  CHECK(SendRaw(control, R"({"type":"other","child":6})", 2));             // not a fork
  CHECK(SendRaw(control, R"({"x":{"type":"fork"},"child":7})", 2));        // "type" only nested
  CHECK(SendRaw(control, R"({"type":"fork","child":"eight"})", 2));        // child not a number
  CHECK(SendRaw(control, R"({"type":"fork","child":9,"s":"a\"}b")", 3));  // unterminated
  CHECK(SendRaw(control, std::string(100, '{'), 2));
  // None of them forked: the next "forked" is the real fork's, and the template holds no
  // descriptor of those messages.
  auto c = Fork(*t, 10);
  REQUIRE(c);
  auto result = Invoke(*c, InvokeHeader("req-after-garbage"), R"({"n":42})");
  REQUIRE(result);
  CHECK(json::parse(result->body) == json{{"n", 42}});
  // The template closes its copies of a child's descriptors right after fork() returns, which
  // can be a moment after the child has already answered: allow it that moment.
  size_t fds_after = OpenFds(t->proc.pid);
  for (int i = 0; i < 100 && fds_after != fds_before; ++i) {
    usleep(10000);
    fds_after = OpenFds(t->proc.pid);
  }
  CHECK(fds_after == fds_before);
}

// Init code that ignores SIGCHLD (some libraries do) must not make the kernel reap the template's
// children behind its back: the scheduler learns of every exit from "exited".
TEST_CASE("the template reports its children's exits even if the init code ignored SIGCHLD", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py",
             "import signal\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
             "def handler(event, context):\n    return 'ok'\n");
  auto t = Ready(code, "app.handler");
  auto c = Fork(*t, 1);
  REQUIRE(c);
  REQUIRE(Invoke(*c, InvokeHeader("req-sigchld"), "{}"));
  auto exited = t->NextOfType("exited");
  REQUIRE(exited);
  CHECK((*exited)["pid"] == c->pid);
  CHECK((*exited)["code"] == 0);
}

// The fork loop releases the GIL while it waits: a thread the init code started keeps running in
// the template between invocations (each child gets a copy of its state at its fork), and the
// children are forked cleanly although that thread exists.
TEST_CASE("a thread started by the init code keeps running in the template between forks", "[runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root to switch to the function's uid");
  TempDir code;
  code.Write("app.py",
             "import threading, time\n"
             "ticks = [0]\n"
             "def tick():\n"
             "    while True:\n"
             "        ticks[0] += 1\n"
             "        time.sleep(0.01)\n"
             "threading.Thread(target=tick, daemon=True).start()\n"
             "def handler(event, context):\n"
             "    return {'ticks': ticks[0], 'threads': threading.active_count()}\n");
  auto t = Ready(code, "app.handler");
  auto first = Fork(*t, 1);
  REQUIRE(first);
  auto r1 = Invoke(*first, InvokeHeader("req-tick-1"), "{}");
  REQUIRE(r1);
  usleep(300 * 1000);  // the template's thread ticks ~30 times meanwhile, if it can run
  auto second = Fork(*t, 2);
  REQUIRE(second);
  auto r2 = Invoke(*second, InvokeHeader("req-tick-2"), "{}");
  REQUIRE(r2);
  const json a = json::parse(r1->body), b = json::parse(r2->body);
  INFO(a.dump() << " then " << b.dump());
  CHECK(b["ticks"].get<int>() >= a["ticks"].get<int>() + 10);
  CHECK(b["threads"] == 1);  // a child has only the thread that forked it
}
