// worker::MountPrivateTmp against real processes: a forked child that drops to an unprivileged
// uid and unshares a user and a mount namespace, as bootstrap.py's children do, gets a fresh,
// size-limited /tmp that the host never sees; a child that made no namespace is told apart.
// Needs root (the mount, the uid switch): SKIP() otherwise.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
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
#include <string>
#include <vector>

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
[[noreturn]] void Child(int report_w, int go_r, const char* marker, bool make_namespaces) {
  Report r{};
  if (setgroups(0, nullptr) < 0 || setresgid(kUid, kUid, kUid) < 0 || setresuid(kUid, kUid, kUid) < 0) _exit(2);
  if (make_namespaces && unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) r.unshare_errno = errno;
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

Run RunChild(bool make_namespaces) {
  const std::string marker = "/tmp/geysir-private-tmp-test-" + std::to_string(getpid());
  int rep[2], go[2];
  REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
  REQUIRE(pipe2(go, O_CLOEXEC) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) Child(rep[1], go[0], marker.c_str(), make_namespaces);
  close(rep[1]);
  close(go[0]);
  Run run;
  char c;
  REQUIRE(read(rep[0], &c, 1) == 1);
  run.mounted = geysir::worker::MountPrivateTmp(pid, getpid(), kUid, kUid, /*size_mb=*/1);
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
  Run run = RunChild(/*make_namespaces=*/true);
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
  Run run = RunChild(/*make_namespaces=*/false);
  CHECK(run.mounted.code() == geysir::Code::kUnavailable);
  CHECK(run.mounted.sys_errno() == 0);
  // It wrote into the host's /tmp (the process shares our mount namespace): proof nothing was
  // mounted there on its behalf.
  CHECK(run.report.created_errno == 0);
  CHECK(run.marker_on_host);
}

// On demand: `GEYSIR_BENCH_N=50 worker_tests "bench: MountPrivateTmp"` (hidden from the normal
// run). What the scheduler spends per child on its /tmp: the namespace checks, the maps, the
// thread and the mount (the child's own steps are timed by bench/sandbox.py).
TEST_CASE("bench: MountPrivateTmp", "[.bench]") {
  if (geteuid() != 0) GEYSIR_SKIP("needs root");
  const char* e = std::getenv("GEYSIR_BENCH_N");
  const int n = e != nullptr ? std::max(1, std::atoi(e)) : 20;
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    int rep[2], go[2];
    REQUIRE(pipe2(rep, O_CLOEXEC) == 0);
    REQUIRE(pipe2(go, O_CLOEXEC) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (setgroups(0, nullptr) < 0 || setresgid(kUid, kUid, kUid) < 0 || setresuid(kUid, kUid, kUid) < 0) _exit(2);
      if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) _exit(3);
      char c = 0;
      if (write(rep[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) _exit(4);
      _exit(0);
    }
    close(rep[1]);
    close(go[0]);
    char c;
    REQUIRE(read(rep[0], &c, 1) == 1);
    auto t0 = std::chrono::steady_clock::now();
    geysir::Status st = geysir::worker::MountPrivateTmp(pid, getpid(), kUid, kUid, 512);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(write(go[1], "g", 1) == 1);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    close(rep[0]);
    close(go[1]);
    REQUIRE(st.ok());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("MountPrivateTmp, %d children: p50 %.3f ms, p90 %.3f ms, max %.3f ms\n", n, ms[ms.size() / 2],
              ms[ms.size() * 9 / 10], ms.back());
}
