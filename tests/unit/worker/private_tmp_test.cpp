// worker::MountPrivateTmp against real processes: a forked child that drops to an unprivileged
// uid and unshares a user and a mount namespace, as bootstrap.py's children do, gets a fresh,
// size-limited /tmp that the host never sees; a child that made no namespace is told apart.
// And libgeysir_child.so's own steps (worker/runtime/child_enter.c), run in a real child: after
// them it can make no user namespace and cannot lift that limit.
// Needs root (the mount, the uid switch): SKIP() otherwise.
#include <catch2/catch.hpp>
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "base/loop_worker.h"
#include "template_harness.h"
#include "worker/private_tmp.h"

namespace {

constexpr uid_t kUid = 61917;  // an id no account on a test host uses
constexpr long kTmpfsMagic = 0x01021994;

struct Report {
  int unshare_errno;   // 0: unshared
  long fs_type;        // statfs("/tmp").f_type after the mount
  int created_errno;   // creating /tmp/<marker>
  int fill_errno;      // writing 2 MB into the 1 MB /tmp
  uid_t uid_inside;    // getuid() once the maps are written
};

// The child: no allocation, no Catch2; talks over two pipes.
[[noreturn]] void Child(int report_w, int go_r, const char* marker, int namespaces) {
  Report r{};
  if (setgroups(0, nullptr) < 0 || setresgid(kUid, kUid, kUid) < 0 || setresuid(kUid, kUid, kUid) < 0) _exit(2);
  if (namespaces != 0 && unshare(namespaces) < 0) r.unshare_errno = errno;
  char c = 0;
  if (write(report_w, &c, 1) != 1) _exit(3);           // "forked"
  if (read(go_r, &c, 1) != 1) _exit(4);                // the parent has mounted (or not)
  struct statfs fs;
  r.fs_type = statfs("/tmp", &fs) == 0 ? static_cast<long>(fs.f_type) : -1;
  int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  r.created_errno = fd < 0 ? errno : 0;
  static char block[64 * 1024];
  std::memset(block, 0xa5, sizeof block);
  for (int i = 0; fd >= 0 && i < 32; ++i) {
    if (write(fd, block, sizeof block) < 0) {
      r.fill_errno = errno;
      break;
    }
  }
  if (fd >= 0) close(fd);
  r.uid_inside = getuid();
  if (write(report_w, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) _exit(5);
  _exit(0);
}

struct Run {
  geysir::Status mounted;
  Report report{};
  bool marker_on_host = false;
};

// What libgeysir_child.so's private-/tmp step makes.
constexpr int kChildNamespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC;

Run RunChild(int namespaces, geysir::worker::NamespaceIds template_ns = {}) {
  const std::string marker = "/tmp/geysir-private-tmp-test-" + std::to_string(getpid());
  int rep[2], go[2];
  REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
  REQUIRE(pipe2(go, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) Child(rep[1], go[0], marker.c_str(), namespaces);
  close(rep[1]);
  close(go[0]);
  Run run;
  char c;
  REQUIRE(read(rep[0], &c, 1) == 1);
  run.mounted = geysir::worker::MountPrivateTmp(
      {.child = pid, .template_pid = getpid(), .template_ns = template_ns, .uid = kUid, .gid = kUid, .size_mb = 1});
  REQUIRE(write(go[1], "g", 1) == 1);
  REQUIRE(read(rep[0], &run.report, sizeof run.report) == static_cast<ssize_t>(sizeof run.report));
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  close(rep[0]);
  close(go[1]);
  struct stat st;
  run.marker_on_host = stat(marker.c_str(), &st) == 0;
  unlink(marker.c_str());
  return run;
}

}  // namespace

TEST_CASE("a child with its own user and mount namespaces gets a private, bounded /tmp", "[private_tmp]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  Run run = RunChild(kChildNamespaces);
  if (run.report.unshare_errno != 0) {
    GEYSIR_SKIP(std::string("this kernel refuses unprivileged user namespaces: ") + strerror(run.report.unshare_errno));
  }
  INFO(run.mounted.ToString());
  REQUIRE(run.mounted.ok());
  CHECK(run.report.fs_type == kTmpfsMagic);
  CHECK(run.report.created_errno == 0);
  CHECK(run.report.fill_errno == ENOSPC);  // 2 MB into the 1 MB tmpfs
  CHECK(run.report.uid_inside == kUid);    // mapped to itself, not to root
  CHECK_FALSE(run.marker_on_host);         // written in the child's tmpfs, not the host's /tmp
}

TEST_CASE("a child still in its template's namespaces is reported as such, and nothing is mounted", "[private_tmp]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  Run run = RunChild(0);
  CHECK(run.mounted.code() == geysir::Code::kUnavailable);
  CHECK(run.mounted.sys_errno() == 0);
  // It wrote into the host's /tmp (the process shares our mount namespace): proof nothing was
  // mounted there on its behalf.
  CHECK(run.report.created_errno == 0);
  CHECK(run.marker_on_host);
}

TEST_CASE("a child whose user namespace is not right below its template's is refused, and nothing is mounted", "[private_tmp]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  // The template's namespaces as the scheduler cached them, but with a user namespace the child's
  // is not below (ours, off by one: no namespace above the child has that id).
  auto ours = geysir::worker::TemplateNamespaces(getpid());
  INFO(ours.status().ToString());
  REQUIRE(ours.ok());
  geysir::worker::NamespaceIds elsewhere = *ours;
  elsewhere.user += 1;
  Run run = RunChild(kChildNamespaces, elsewhere);
  if (run.report.unshare_errno != 0) GEYSIR_SKIP("this kernel refuses unprivileged user namespaces");
  CHECK(run.mounted.sys_errno() == EPERM);
  CHECK(run.report.fs_type != kTmpfsMagic);  // its /tmp is still the host's (not mounted)
  CHECK(run.report.uid_inside != kUid);      // and no maps were written
}

TEST_CASE("a child that kept its template's IPC namespace is refused, and nothing is mounted", "[private_tmp]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  // Its own user and mount namespaces, but System V and POSIX IPC still shared with its template
  // (and so with every later invocation).
  Run run = RunChild(CLONE_NEWUSER | CLONE_NEWNS);
  if (run.report.unshare_errno != 0) GEYSIR_SKIP("this kernel refuses unprivileged user namespaces");
  INFO(run.mounted.ToString());
  CHECK(run.mounted.sys_errno() == EPERM);
  CHECK(run.report.fs_type != kTmpfsMagic);
  CHECK(run.report.uid_inside != kUid);
}

// libgeysir_child.so's private-/tmp steps in a real child of an unprivileged, no_new_privs
// process (what a template is): its own user+mount namespaces, then no user namespace below
// them (user.max_user_namespaces = 0 there) and no capability left to change that.
TEST_CASE("after the child's steps it can make no user namespace, and cannot lift the limit", "[private_tmp]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  void* lib = dlopen(GEYSIR_BINARY_DIR "/share/geysir/runtime/python/libgeysir_child.so", RTLD_NOW | RTLD_LOCAL);
  INFO((lib == nullptr ? dlerror() : "loaded"));
  REQUIRE(lib != nullptr);
  using Enter = int (*)(int, int*);
  auto enter = reinterpret_cast<Enter>(dlsym(lib, "geysir_child_enter"));
  REQUIRE(enter != nullptr);
  struct Outcome {
    int enter_error, stage;     // geysir_child_enter's result
    int nested_user, nested_user_mount;  // errno of unshare(CLONE_NEWUSER[|CLONE_NEWNS]) after it
    int raise_errno;            // errno of writing 1000 to its max_user_namespaces
    int limit;                  // what the limit reads in its namespace
    uint64_t effective_caps;    // from /proc/self/status
  };
  int rep[2];
  REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    Outcome o{};
    if (setgroups(0, nullptr) < 0 || setresgid(kUid, kUid, kUid) < 0 || setresuid(kUid, kUid, kUid) < 0) _exit(2);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) _exit(3);
    o.enter_error = enter(/*GEYSIR_CHILD_PRIVATE_TMP*/ 1, &o.stage);
    o.nested_user = unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
    o.nested_user_mount = unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 ? 0 : errno;
    int fd = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
    o.raise_errno = fd < 0 ? errno : (write(fd, "1000", 4) == 4 ? 0 : errno);
    if (fd >= 0) close(fd);
    char buf[4096];
    fd = open("/proc/sys/user/max_user_namespaces", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    o.limit = n > 0 ? (buf[n] = 0, std::atoi(buf)) : -1;
    if (fd >= 0) close(fd);
    fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    o.effective_caps = ~0ULL;
    if (n > 0) {
      buf[n] = 0;
      if (const char* p = std::strstr(buf, "CapEff:\t")) o.effective_caps = std::strtoull(p + 8, nullptr, 16);
    }
    if (write(rep[1], &o, sizeof o) != static_cast<ssize_t>(sizeof o)) _exit(4);
    _exit(0);
  }
  close(rep[1]);
  Outcome o{};
  const ssize_t got = read(rep[0], &o, sizeof o);
  close(rep[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(got == static_cast<ssize_t>(sizeof o));
  INFO("stage " << o.stage << ", error " << strerror(o.enter_error));
  CHECK(o.enter_error == 0);
  CHECK(o.nested_user == ENOSPC);        // the limit, not seccomp (there is no filter here)
  CHECK(o.nested_user_mount == ENOSPC);
  CHECK(o.raise_errno == EACCES);        // no CAP_SYS_RESOURCE left in its namespace
  CHECK(o.limit == 0);
  CHECK(o.effective_caps == 0);
  dlclose(lib);
}

namespace {

// A child as the bench needs it: unprivileged, in namespaces of its own, waiting to be told to go.
struct BenchChild {
  pid_t pid = -1;
  int rep = -1, go = -1;
};

BenchChild ForkBenchChild() {
  int rep[2], go[2];
  REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
  REQUIRE(pipe2(go, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (setgroups(0, nullptr) < 0 || setresgid(kUid, kUid, kUid) < 0 || setresuid(kUid, kUid, kUid) < 0) _exit(2);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) < 0) _exit(3);
    char c = 0;
    if (write(rep[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) _exit(4);
    _exit(0);
  }
  close(rep[1]);
  close(go[0]);
  char c;
  REQUIRE(read(rep[0], &c, 1) == 1);
  return {pid, rep[0], go[1]};
}

void ReleaseBenchChild(const BenchChild& c) {
  REQUIRE(write(c.go, "g", 1) == 1);
  int status = 0;
  REQUIRE(waitpid(c.pid, &status, 0) == c.pid);
  close(c.rep);
  close(c.go);
}

double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void PrintPercentiles(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  std::printf("%s, %zu children: p50 %.3f ms, p90 %.3f ms, max %.3f ms\n", what, ms.size(), ms[ms.size() / 2],
              ms[ms.size() * 9 / 10], ms.back());
}

}  // namespace

// On demand: `GEYSIR_BENCH_N=50 worker_tests "bench: MountPrivateTmp"` (hidden from the normal
// run). What the scheduler spends per child on its /tmp: the namespace checks, the maps and the
// mount, (a) as the scheduler does it, on its LoopWorker thread, from Submit() to the
// continuation on the loop (wall time, and the CPU time of the job and of Submit: on this VM a
// thread wake-up can cost more wall time than the work), and (b) from a short-lived thread per
// child (what it did before).
// The child's own steps are timed by bench/sandbox.py.
TEST_CASE("bench: MountPrivateTmp", "[.bench]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  const char* e = std::getenv("GEYSIR_BENCH_N");
  const int n = e != nullptr ? std::max(1, std::atoi(e)) : 20;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    auto worker = geysir::LoopWorker::Start(&loop, "bench_tmp_mount");
    REQUIRE(worker.ok());
    std::vector<double> on_worker, job_cpu, submit_cpu, short_lived;
    const auto self_ns = geysir::worker::TemplateNamespaces(getpid()).value();  // as the scheduler caches them
    for (int i = 0; i < n; ++i) {
      BenchChild c = ForkBenchChild();
      geysir::Status st = geysir::Status::Internal("not run");
      double cpu_ms = 0;
      const geysir::worker::PrivateTmpRequest r{.child = c.pid, .template_pid = getpid(), .template_ns = self_ns,
                                                .uid = kUid, .gid = kUid, .size_mb = 512};
      auto t0 = std::chrono::steady_clock::now();
      const double submit0 = ThreadCpuMs();
      (*worker)->Submit([&st, &loop, &cpu_ms, r]() -> geysir::LoopWorker::Continuation {
        const double job0 = ThreadCpuMs();
        geysir::Status result = geysir::worker::MountPrivateTmpOnThisThread(r);
        const double job_ms = ThreadCpuMs() - job0;
        return [&st, &loop, &cpu_ms, result, job_ms] {
          st = result;
          cpu_ms = job_ms;
          uv_stop(&loop);
        };
      });
      submit_cpu.push_back(ThreadCpuMs() - submit0);
      uv_run(&loop, UV_RUN_DEFAULT);
      on_worker.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      job_cpu.push_back(cpu_ms);
      ReleaseBenchChild(c);
      INFO(st.ToString());
      REQUIRE(st.ok());

      BenchChild d = ForkBenchChild();
      auto t2 = std::chrono::steady_clock::now();
      st = geysir::worker::MountPrivateTmp({.child = d.pid, .template_pid = getpid(), .uid = kUid, .gid = kUid, .size_mb = 512});
      short_lived.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t2).count());
      ReleaseBenchChild(d);
      REQUIRE(st.ok());
    }
    PrintPercentiles("MountPrivateTmp on the LoopWorker thread, Submit to continuation (wall)", on_worker);
    PrintPercentiles("  CPU of the job on the worker thread", job_cpu);
    PrintPercentiles("  CPU of Submit on the loop thread", submit_cpu);
    PrintPercentiles("MountPrivateTmp from a short-lived thread per child", short_lived);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the worker's handle closes
  REQUIRE(uv_loop_close(&loop) == 0);
}
