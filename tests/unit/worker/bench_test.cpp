// Timings of the worker's hot paths, run on demand: worker_tests "[.bench]". Not pass/fail:
// they print medians for docs/benchmarks.md.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <vector>

#include "template_harness.h"
#include "worker/cgroup.h"

using namespace geysir;
using namespace geysir::worker;
using namespace geysir::worker::testing;

namespace {

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int Iterations(int dflt) {
  const char* e = std::getenv("GEYSIR_BENCH_N");
  return e ? std::max(1, std::atoi(e)) : dflt;
}

void StartToReady(const std::string& name, const std::string& app, const std::string& handler, bool isolate = false) {
  TempDir code;
  code.Write("app.py", app);
  std::vector<double> times, init;
  for (int i = 0; i < Iterations(20) / 2 + 1; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto spec = MakeSpec(code.path(), handler);
    spec.isolate = isolate;
    auto t = Spawn(spec);
    REQUIRE(t);
    auto m = t->Next(30000);
    auto t1 = std::chrono::steady_clock::now();
    REQUIRE(m);
    REQUIRE((*m)["type"] == "ready");
    times.push_back(Ms(t0, t1));
    init.push_back((*m)["init_ms"].get<double>());
  }
  std::printf("%-28s start->ready p50 %7.2f ms  p90 %7.2f ms  (init_ms reported p50 %.2f)\n", name.c_str(),
              Percentile(times, 0.5), Percentile(times, 0.9), Percentile(init, 0.5));
}

}  // namespace

TEST_CASE("bench: template start to ready", "[.bench]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root");
  StartToReady("hello", "def handler(e, c):\n    return 'hi'\n", "app.handler");
  StartToReady("hello, sandboxed", "def handler(e, c):\n    return 'hi'\n", "app.handler", /*isolate=*/true);
  if (system("/usr/bin/python3.11 -c 'import flask' 2>/dev/null") == 0) {
    StartToReady("flask app import",
                 "from flask import Flask\napp = Flask(__name__)\n@app.route('/')\ndef index():\n    return 'hi'\n"
                 "def handler(e, c):\n    return 'hi'\n",
                 "app.handler");
  }
}

namespace {

// Fork and invoke round trips against one template, with or without the namespace sandbox.
void BenchRoundTrips(bool isolate) {
  TempDir code;
  code.Write("app.py", "def handler(event, context):\n    return {'hello': 'world'}\n");
  auto spec = MakeSpec(code.path(), "app.handler");
  spec.isolate = isolate;
  auto t0_spawn = std::chrono::steady_clock::now();
  auto t = Spawn(spec);
  REQUIRE(t);
  REQUIRE((*t->Next(30000))["type"] == "ready");
  std::printf("sandbox %-3s  spawn->ready %7.3f ms\n", isolate ? "on" : "off",
              Ms(t0_spawn, std::chrono::steady_clock::now()));
  std::vector<double> fork_ms, invoke_ms;
  int n = Iterations(1000);
  // As the scheduler does: one child is always forked ahead, so an invocation goes to a child
  // that is already waiting on its channel and the fork is off the measured round trip.
  auto ahead = Fork(*t, 0);
  REQUIRE(ahead);
  for (int i = 1; i <= n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto next = Fork(*t, i);
    auto t1 = std::chrono::steady_clock::now();
    REQUIRE(next);
    auto r = Invoke(*ahead, InvokeHeader("bench"), "{}");
    auto t2 = std::chrono::steady_clock::now();
    REQUIRE(r);
    fork_ms.push_back(Ms(t0, t1));
    invoke_ms.push_back(Ms(t1, t2));
    ahead = std::move(next);
    // Take the "exited" report so the control socket does not fill up.
    t->NextOfType("exited", 5000);
  }
  std::printf("fork->forked      n=%d p50 %6.3f ms  p90 %6.3f ms  p99 %6.3f ms\n", n, Percentile(fork_ms, 0.5),
              Percentile(fork_ms, 0.9), Percentile(fork_ms, 0.99));
  std::printf("invoke->result    n=%d p50 %6.3f ms  p90 %6.3f ms  p99 %6.3f ms\n", n, Percentile(invoke_ms, 0.5),
              Percentile(invoke_ms, 0.9), Percentile(invoke_ms, 0.99));
}

}  // namespace

TEST_CASE("bench: fork and invoke round trips", "[.bench]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root");
  BenchRoundTrips(false);
}

TEST_CASE("bench: fork and invoke round trips in the sandbox", "[.bench]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root");
  BenchRoundTrips(true);
}

TEST_CASE("bench: cgroup create + AddProcess + Remove", "[.bench]") {
  if (!IsRoot()) GEYSIR_SKIP("needs root");
  auto d = CgroupDriver::Detect("geysir-bench-" + std::to_string(getpid()));
  REQUIRE(d.ok());
  CgroupLimits limits;
  limits.memory_bytes = 128ull << 20;
  limits.pids_max = 64;
  limits.cpu_weight = 100;
  std::vector<double> create_ms, add_ms, remove_ms, remove_empty_ms;
  int n = Iterations(200);
  for (int i = 0; i < n; ++i) {
    // The common case first: the child already exited (and was reaped) when the cgroup goes.
    {
      auto cg = (*d)->Create("pool/e" + std::to_string(i), limits);
      REQUIRE(cg.ok());
      pid_t pid = fork();
      if (pid == 0) {
        pause();
        _exit(0);
      }
      REQUIRE((*cg)->AddProcess(pid).ok());
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      auto t0 = std::chrono::steady_clock::now();
      REQUIRE((*cg)->Remove().ok());
      remove_empty_ms.push_back(Ms(t0, std::chrono::steady_clock::now()));
    }
    pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    auto t0 = std::chrono::steady_clock::now();
    auto cg = (*d)->Create("pool/c" + std::to_string(i), limits);
    auto t1 = std::chrono::steady_clock::now();
    REQUIRE(cg.ok());
    REQUIRE((*cg)->AddProcess(pid).ok());
    auto t2 = std::chrono::steady_clock::now();
    REQUIRE((*cg)->Remove().ok());
    auto t3 = std::chrono::steady_clock::now();
    waitpid(pid, nullptr, 0);
    create_ms.push_back(Ms(t0, t1));
    add_ms.push_back(Ms(t1, t2));
    remove_ms.push_back(Ms(t2, t3));
  }
  std::printf("cgroup %s n=%d: create p50 %.3f ms, AddProcess p50 %.3f ms, Remove with a live process"
              " (kill+wait+rmdir) p50 %.3f ms p90 %.3f ms, Remove of an emptied cgroup p50 %.3f ms p90 %.3f ms\n",
              (*d)->version(), n, Percentile(create_ms, 0.5), Percentile(add_ms, 0.5), Percentile(remove_ms, 0.5),
              Percentile(remove_ms, 0.9), Percentile(remove_empty_ms, 0.5), Percentile(remove_empty_ms, 0.9));
  CHECK((*d)->CleanupStale().ok());
}
