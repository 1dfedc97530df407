// Cgroup drivers against the real kernel (v1 on this machine; v2 where the host has it).
#include "worker/cgroup.h"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <catch2/catch.hpp>

#include "template_harness.h"
#include "worker/cgroup_drivers.h"
#include "worker/cgroup_fs.h"

using namespace geysir;
using namespace geysir::worker;
using namespace geysir::worker::testing;

namespace {

// A base per test process, so concurrent runs (and other engineers' tests) never collide.
std::string TestBase() { return "geysir-test-" + std::to_string(getpid()); }

std::unique_ptr<CgroupDriver> Driver() {
  auto d = CgroupDriver::Detect(TestBase());
  if (!d.ok()) return nullptr;
  return std::move(d).value();
}

// A process that sleeps until killed, already in `cg` when it starts sleeping.
pid_t Sleeper(Cgroup& cg) {
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    char c;
    (void)!read(p[0], &c, 1);
    execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[0]);
  REQUIRE(cg.AddProcess(pid).ok());
  close(p[1]);
  return pid;
}

bool ReapWithin(pid_t pid, int ms) {
  int64_t deadline = NowMs() + ms;
  int status;
  while (NowMs() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return true;
    usleep(1000);
  }
  return false;
}

}  // namespace

TEST_CASE("Detect picks the host's cgroup version", "[cgroup]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  struct statfs fs;
  REQUIRE(statfs("/sys/fs/cgroup", &fs) == 0);
  CHECK(std::string(d->version()) == (fs.f_type == CGROUP2_SUPER_MAGIC ? "v2" : "v1"));
  CHECK_FALSE(CgroupDriver::Detect("/abs").ok());
  CHECK_FALSE(CgroupDriver::Detect("../up").ok());
}

TEST_CASE("Create writes the limits and Remove leaves no directory", "[cgroup]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  CgroupLimits limits;
  limits.memory_bytes = 64ull << 20;
  limits.pids_max = 16;
  limits.cpu_weight = 50;
  auto cg = d->Create("pool-a/child-1", limits);
  REQUIRE(cg.ok());
  std::string dir = (*cg)->dir();
  REQUIRE(!dir.empty());
  CHECK((*cg)->name() == "pool-a/child-1");
  std::vector<std::string> dirs;
  if (std::string(d->version()) == "v1") {
    CHECK(dir == "/sys/fs/cgroup/memory/" + TestBase() + "/pool-a/child-1");
    CHECK(*cgroupfs::ReadNumber(dir + "/memory.limit_in_bytes") == 64ull << 20);
    if (cgroupfs::Exists(dir + "/memory.memsw.limit_in_bytes")) {
      CHECK(*cgroupfs::ReadNumber(dir + "/memory.memsw.limit_in_bytes") == 64ull << 20);
    }
    std::string pids = "/sys/fs/cgroup/pids/" + TestBase() + "/pool-a/child-1";
    CHECK(*cgroupfs::ReadNumber(pids + "/pids.max") == 16);
    std::string cpu = "/sys/fs/cgroup/cpu/" + TestBase() + "/pool-a/child-1";
    CHECK(*cgroupfs::ReadNumber(cpu + "/cpu.shares") == 512);
    dirs = {dir, pids, cpu, "/sys/fs/cgroup/freezer/" + TestBase() + "/pool-a/child-1"};
  } else {
    CHECK(*cgroupfs::ReadNumber(dir + "/memory.max") == 64ull << 20);
    CHECK(*cgroupfs::ReadNumber(dir + "/pids.max") == 16);
    dirs = {dir};
  }
  for (const auto& x : dirs) CHECK(cgroupfs::Exists(x));
  pid_t pid = Sleeper(**cg);
  CHECK((*cg)->Processes() == std::vector<pid_t>{pid});
  REQUIRE((*cg)->Remove().ok());
  CHECK(ReapWithin(pid, 2000));
  for (const auto& x : dirs) CHECK_FALSE(cgroupfs::Exists(x));
  CHECK(d->CleanupStale().ok());
  CHECK_FALSE(cgroupfs::Exists("/sys/fs/cgroup/memory/" + TestBase()));
}

TEST_CASE("KillAll leaves no process", "[cgroup]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  auto cg = d->Create("killall", CgroupLimits{});
  REQUIRE(cg.ok());
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i) pids.push_back(Sleeper(**cg));
  CHECK((*cg)->Processes().size() == 4);
  REQUIRE((*cg)->KillAll().ok());
  for (pid_t p : pids) CHECK(ReapWithin(p, 2000));
  CHECK((*cg)->Processes().empty());
  CHECK((*cg)->Remove().ok());
  CHECK(d->CleanupStale().ok());
}

TEST_CASE("CleanupStale removes what a crashed run left", "[cgroup]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  auto cg = d->Create("stale/one", CgroupLimits{});
  REQUIRE(cg.ok());
  std::string dir = (*cg)->dir();
  pid_t pid = Sleeper(**cg);
  // Clean up while the owner still exists and has removed nothing, as after a crash; its
  // destructor later finds nothing to remove. (Not release()d: the sanitizer build would
  // report the owner as a leak.)
  REQUIRE(d->CleanupStale().ok());
  CHECK(ReapWithin(pid, 2000));
  CHECK_FALSE(cgroupfs::Exists(dir));
}

TEST_CASE("a handler over its memory limit is OOM-killed", "[cgroup][runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  TempDir code;
  code.Write("app.py", R"(
def handler(event, context):
    hog = b"x" * (200 << 20)
    return len(hog)
)");
  CgroupLimits limits;
  limits.memory_bytes = 64ull << 20;
  limits.pids_max = 64;
  auto cg = d->Create("oom", limits);
  REQUIRE(cg.ok());
  auto spec = MakeSpec(code.path(), "app.handler");
  spec.cgroup_dir = (*cg)->dir();
  auto t = Spawn(spec);
  REQUIRE(t);
  REQUIRE((*t->Next())["type"] == "ready");
  // The launcher joined every hierarchy before exec'ing the runtime.
  auto procs = (*cg)->Processes();
  CHECK(std::find(procs.begin(), procs.end(), t->proc.pid) != procs.end());
  if (std::string(d->version()) == "v1") {
    auto in_pids = cgroupfs::ReadPids("/sys/fs/cgroup/pids/" + TestBase() + "/oom/cgroup.procs");
    CHECK(std::find(in_pids.begin(), in_pids.end(), t->proc.pid) != in_pids.end());
  }
  auto c = Fork(*t, 1);
  REQUIRE(c);
  CHECK_FALSE(Invoke(*c, InvokeHeader("req-oom"), "{}", 20000));
  auto exited = t->NextOfType("exited", 20000);
  REQUIRE(exited);
  CHECK((*exited)["pid"] == c->pid);
  CHECK((*exited)["signal"] == SIGKILL);
  CHECK((*cg)->OomKilled());
  CHECK((*cg)->PeakMemoryBytes() >= 60ull << 20);
  CHECK((*cg)->PeakMemoryBytes() <= 64ull << 20);
  t.reset();
  CHECK((*cg)->Remove().ok());
  CHECK(d->CleanupStale().ok());
}

TEST_CASE("a pids limit stops a fork loop", "[cgroup][runtime]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto d = Driver();
  REQUIRE(d);
  TempDir code;
  code.Write("app.py", R"(
import os, time
def handler(event, context):
    started, error = 0, None
    for _ in range(100):
        try:
            pid = os.fork()
        except OSError as e:
            error = e.errno
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
    return {"started": started, "errno": error}
)");
  CgroupLimits limits;
  limits.pids_max = 16;
  auto cg = d->Create("forkbomb", limits);
  REQUIRE(cg.ok());
  auto spec = MakeSpec(code.path(), "app.handler");
  spec.cgroup_dir = (*cg)->dir();
  auto t = Spawn(spec);
  REQUIRE(t);
  REQUIRE((*t->Next())["type"] == "ready");
  auto c = Fork(*t, 1);
  REQUIRE(c);
  auto r = Invoke(*c, InvokeHeader("req-fork"), "{}", 20000);
  REQUIRE(r);
  json v = json::parse(r->body);
  // 16 in total: the template and the child take two.
  CHECK(v["started"] == 14);
  CHECK(v["errno"] == EAGAIN);
  t.reset();
  REQUIRE((*cg)->Remove().ok());
  CHECK((*cg)->Processes().empty());
  CHECK(d->CleanupStale().ok());
}

// This machine mounts v1 with a controller-less v2 hierarchy beside it (/sys/fs/cgroup/unified):
// enough to run the v2 driver's directory handling, cgroup.kill and the launcher's v2 join.
// Limits (memory.max, pids.max) need a host where v2 has the controllers.
TEST_CASE("v2 driver without controllers: create, join, kill, remove", "[cgroup][v2]") {
  if (!IsRoot()) GEYSIR_SKIP("cgroups need root");
  auto mount = cgroupfs::FindV2Mount();
  if (!mount) GEYSIR_SKIP("no cgroup2 hierarchy mounted");
  auto d = MakeCgroupV2Driver(mount->mount, TestBase());
  REQUIRE(d.ok());
  CHECK(std::string((*d)->version()) == "v2");
  auto cg = (*d)->Create("pool/leaf", CgroupLimits{});
  REQUIRE(cg.ok());
  std::string dir = (*cg)->dir();
  CHECK(dir == mount->mount + "/" + TestBase() + "/pool/leaf");
  CHECK(cgroupfs::IsCgroup2(dir));
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) pids.push_back(Sleeper(**cg));
  CHECK((*cg)->Processes().size() == 3);
  REQUIRE((*cg)->KillAll().ok());
  for (pid_t p : pids) CHECK(ReapWithin(p, 2000));
  CHECK((*cg)->Processes().empty());

  SECTION("the launcher joins a v2 cgroup") {
    TempDir code;
    code.Write("app.py", "def handler(e, c):\n    return 1\n");
    auto spec = MakeSpec(code.path(), "app.handler");
    spec.cgroup_dir = dir;
    auto t = Spawn(spec);
    REQUIRE(t);
    REQUIRE((*t->Next())["type"] == "ready");
    CHECK((*cg)->Processes() == std::vector<pid_t>{t->proc.pid});
  }
  REQUIRE((*cg)->Remove().ok());
  CHECK_FALSE(cgroupfs::Exists(dir));
  // Stale leftovers with a process inside are killed and removed.
  auto stale = (*d)->Create("stale", CgroupLimits{});
  REQUIRE(stale.ok());
  pid_t p = Sleeper(**stale);
  // The owner lives on unremoved, as after a crash (see "CleanupStale removes what a crashed run left").
  REQUIRE((*d)->CleanupStale().ok());
  CHECK(ReapWithin(p, 2000));
  CHECK_FALSE(cgroupfs::Exists(mount->mount + "/" + TestBase()));
}
