// worker::restore against a real process: a forked child that hands over its userfaultfd, parks
// in read(2), and on command changes its memory the ways an invocation can (globals, heap, a
// page dropped with MADV_DONTNEED, a new mapping, the program break, part of a mapping unmapped,
// a protection changed, vector registers). After each Restore() it must report exactly what it
// reported before any change; state a restore cannot undo (a thread, a child process, an open
// descriptor, a System V segment, a POSIX message queue) must make Restore() fail. SKIP()s where the kernel lacks
// asynchronous userfaultfd write-protect or PAGEMAP_SCAN.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <signal.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "template_harness.h"
#include "worker/restore/kernel_abi.h"
#include "worker/restore/restore.h"

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// Why these tests cannot run here, if they cannot: a kernel without the interfaces, or a
// sanitizer's build, whose shadow memory (terabytes of reserved address space) is more than a
// snapshot tracks (the restorer refuses such a process, which then forks: that refusal is
// checked by "a process with more address space than restore mode tracks is refused"). Neither
// is something CI can promise (tests/support/skip.h), so both are GEYSIR_SKIP_UNSUPPORTED; what a
// server does without the kernel's support (it forks per request, "auto" resolves to fork) is
// checked by tests/unit/cli/supervisor_test.cpp and tests/integration/test_isolation_mode.py.
std::optional<std::string> WhyNotRestorable() {
  const geysir::worker::restore::Support support = geysir::worker::restore::Probe();
  if (!support.available) return support.detail;
  if (kSanitized) return std::string("an address-sanitized process maps more than restore mode tracks");
  return std::nullopt;
}

using geysir::Code;
using geysir::UniqueFd;
namespace restore = geysir::worker::restore;

constexpr size_t kPage = 4096;
constexpr size_t kAnonPages = 8;

// What the child reports for 'r'.
struct Report {
  long counter;
  char heap_first, heap_last;
  char anon[kAnonPages];  // first byte of each page ('-' where it is not readable)
  uintptr_t brk;
  double vector;          // a value kept in xmm registers across the loop
};

long g_counter;

// A one-byte message with room for one descriptor (SCM_RIGHTS).
struct FdMessage {
  char byte = 'u';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  FdMessage() {
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
};

void SendFd(int sock, int fd) {
  FdMessage msg;
  cmsghdr* c = CMSG_FIRSTHDR(&msg.m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(sock, &msg.m, 0) != 1) _exit(10);
}

int ReceiveFd(int sock) {
  FdMessage msg;
  if (recvmsg(sock, &msg.m, MSG_CMSG_CLOEXEC) != 1) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg.m);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

void* Sleeper(void*) {
  for (;;) pause();
}

// The worker: no Catch2 here, only system calls and its own memory.
[[noreturn]] void Worker(int sock, size_t reserve_bytes) {
  setpgid(0, 0);  // its own process group: the test kills whatever it forked with it
  // Only the descriptors a sandboxed child has. One inherited from what started the test (ctest
  // hands every test its open Testing/Temporary/LastTest.log.tmp, whose offset moves whenever
  // another test beside this one finishes) would change under the restorer and fail a restore
  // for that instead of what the case checks.
  const unsigned keep = static_cast<unsigned>(sock);
  if ((keep > 3 && close_range(3, keep - 1, 0) != 0) || close_range(keep + 1, ~0U, 0) != 0) _exit(19);
  // An IPC namespace and a /tmp of its own, as a sandboxed child has (root only): the restorer
  // looks for the System V objects, POSIX message queues and files left there (the host's /tmp
  // changes under it as other tests run beside this one).
  if (geteuid() == 0) {
    if (unshare(CLONE_NEWIPC | CLONE_NEWNS) != 0) _exit(15);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(15);
    if (mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m") != 0) _exit(15);
  }
  if (reserve_bytes > 0 &&
      mmap(nullptr, reserve_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
    _exit(18);
  }
  const int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
  if (uffd < 0) _exit(11);
  SendFd(sock, uffd);
  close(uffd);
  char* heap = static_cast<char*>(malloc(64 * 1024));
  std::memset(heap, 'S', 64 * 1024);
  char* anon = static_cast<char*>(mmap(nullptr, kAnonPages * kPage, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  for (size_t i = 0; i < kAnonPages; ++i) anon[i * kPage] = static_cast<char>('A' + i);
  __m128d vector = _mm_set1_pd(1.5);
  for (;;) {
    char cmd = 0;
    if (read(sock, &cmd, 1) != 1) _exit(0);  // parked here between commands
    if (cmd == 'r') {
      Report r{};
      r.counter = g_counter;
      r.heap_first = heap[0];
      r.heap_last = heap[64 * 1024 - 1];
      for (size_t i = 0; i < kAnonPages; ++i) {
        unsigned char vec = 0;
        r.anon[i] = mincore(anon + i * kPage, kPage, &vec) == 0 ? anon[i * kPage] : '-';
      }
      r.brk = reinterpret_cast<uintptr_t>(sbrk(0));
      r.vector = _mm_cvtsd_f64(vector);
      if (write(sock, &r, sizeof r) != sizeof r) _exit(12);
    } else if (cmd == 'w') {
      ++g_counter;
      std::memset(heap, 'X', 64 * 1024);
      anon[0] = 'x';
      madvise(anon + 2 * kPage, kPage, MADV_DONTNEED);
      mprotect(anon + 4 * kPage, kPage, PROT_READ);
      munmap(anon + 6 * kPage, 2 * kPage);
      char* extra = static_cast<char*>(mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      std::memset(extra, 'E', 1 << 20);
      char* grown = static_cast<char*>(sbrk(1 << 20));
      std::memset(grown, 'B', 1 << 20);
      vector = _mm_set1_pd(-7.25);
      __asm__ volatile("" : "+x"(vector));
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 'd') {
      madvise(anon + 3 * kPage, kPage, MADV_DONTNEED);  // and not read again before the restore
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 't') {
      pthread_t t;
      pthread_create(&t, nullptr, Sleeper, nullptr);
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 'f') {
      if (fork() == 0) {
        pause();
        _exit(0);
      }
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 'q') {
      const mqd_t queue = mq_open("/geysir-restore-test", O_CREAT | O_RDWR, 0600, nullptr);
      if (queue < 0) _exit(16);
      mq_close(queue);  // the queue stays, with no descriptor to give it away
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 's') {
      if (shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) < 0) _exit(17);
      if (write(sock, "k", 1) != 1) _exit(13);
    } else if (cmd == 'o') {
      if (open("/dev/null", O_RDONLY) < 0) _exit(14);
      if (write(sock, "k", 1) != 1) _exit(13);
    }
  }
}

struct Running {
  pid_t pid = -1;
  UniqueFd sock;
  UniqueFd uffd;
  int child_sock = -1;

  ~Running() {
    if (pid > 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  Report Ask() {
    Report r{};
    REQUIRE(write(sock.get(), "r", 1) == 1);
    REQUIRE(read(sock.get(), &r, sizeof r) == sizeof r);
    return r;
  }
  void Command(char c) {
    char k = 0;
    REQUIRE(write(sock.get(), &c, 1) == 1);
    REQUIRE(read(sock.get(), &k, 1) == 1);
  }
};

void Start(Running* w, size_t reserve_bytes = 0) {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  w->pid = fork();
  REQUIRE(w->pid >= 0);
  if (w->pid == 0) {
    close(sv[0]);
    Worker(sv[1], reserve_bytes);
  }
  close(sv[1]);
  w->sock = UniqueFd(sv[0]);
  w->child_sock = sv[1];  // the same number in the child: the descriptor it parks on
  w->uffd = UniqueFd(ReceiveFd(sv[0]));
  REQUIRE(w->uffd.valid());
}

std::unique_ptr<restore::Snapshot> TakeWhenParked(Running* w) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    restore::SnapshotRequest req;
    req.pid = w->pid;
    req.uffd = UniqueFd(dup(w->uffd.get()));
    req.pidfd = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, w->pid, 0)));
    req.channel_fd = w->child_sock;
    auto snap = restore::Snapshot::Take(std::move(req));
    if (snap.ok()) return std::move(snap).value();
    INFO(snap.status().ToString());
    REQUIRE(snap.status().code() == Code::kUnavailable);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool Same(const Report& a, const Report& b) {
  return a.counter == b.counter && a.heap_first == b.heap_first && a.heap_last == b.heap_last &&
         std::memcmp(a.anon, b.anon, sizeof a.anon) == 0 && a.brk == b.brk && a.vector == b.vector;
}

}  // namespace

TEST_CASE("a restored worker finds the memory, layout and registers of its snapshot", "[restore]") {
  if (auto why = WhyNotRestorable()) GEYSIR_SKIP_UNSUPPORTED(*why);
  Running w;
  Start(&w);
  auto snap = TakeWhenParked(&w);
  REQUIRE(snap->bytes() > 64 * 1024);
  const Report before = w.Ask();
  CHECK(before.counter == 0);
  CHECK(before.heap_first == 'S');
  CHECK(std::string(before.anon, kAnonPages) == "ABCDEFGH");
  CHECK(before.vector == 1.5);
  auto first = snap->Restore(nullptr);
  INFO(first.ToString());
  REQUIRE(first.ok());

  for (int round = 0; round < 20; ++round) {
    w.Command('w');
    const Report dirty = w.Ask();
    REQUIRE(dirty.counter == 1);  // the change happened (and would be seen without a restore)
    REQUIRE(dirty.anon[6] == '-');
    REQUIRE(dirty.vector == -7.25);
    restore::RestoreStats stats;
    auto st = snap->Restore(&stats);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(stats.pages_written > 16);    // the 64 KiB heap block at least
    CHECK(stats.mappings_fixed >= 4);   // brk, the new mapping, mprotect, the unmapped pages
    const Report after = w.Ask();
    INFO("round " << round << ": counter " << after.counter << " anon " << std::string(after.anon, kAnonPages));
    REQUIRE(Same(after, before));
    auto again = snap->Restore(nullptr);
    INFO(again.ToString());
    REQUIRE(again.ok());
    // A page dropped and not touched again is missing: refilled from the snapshot.
    w.Command('d');
    REQUIRE(snap->Restore(&stats).ok());
    CHECK(stats.pages_refilled >= 1);
    REQUIRE(Same(w.Ask(), before));
    auto last = snap->Restore(nullptr);
    INFO(last.ToString());
    REQUIRE(last.ok());
  }
}

TEST_CASE("state a restore cannot undo fails the restore, and the worker is killed", "[restore]") {
  if (auto why = WhyNotRestorable()) GEYSIR_SKIP_UNSUPPORTED(*why);
  std::string commands = "tfo";
  if (geteuid() == 0) commands += "qs";  // the worker has an IPC namespace of its own
  for (char cmd : commands) {
    DYNAMIC_SECTION("command " << cmd) {
      Running w;
      Start(&w);
      auto snap = TakeWhenParked(&w);
      w.Command(cmd);
      auto st = snap->Restore(nullptr);
      INFO(st.ToString());
      REQUIRE_FALSE(st.ok());
      if (cmd == 'q') CHECK_THAT(st.message(), Catch::Contains("message queues"));
      if (cmd == 's') CHECK_THAT(st.message(), Catch::Contains("System V"));
      // Killed, and reaped by the restore as its tracer (here also its parent): no zombie left.
      int status = 0;
      const pid_t reaped = waitpid(w.pid, &status, WNOHANG);
      CHECK((reaped == -1 && errno == ECHILD));
      CHECK((kill(w.pid, 0) == -1 && errno == ESRCH));
      kill(-w.pid, SIGKILL);  // what it forked
      w.pid = -1;
    }
  }
}

TEST_CASE("a worker that is not parked yet is reported as such", "[restore]") {
  if (auto why = WhyNotRestorable()) GEYSIR_SKIP_UNSUPPORTED(*why);
  Running w;
  Start(&w);
  restore::SnapshotRequest req;
  req.pid = w.pid;
  req.uffd = UniqueFd(dup(w.uffd.get()));
  req.channel_fd = w.child_sock + 100;  // not the descriptor it reads
  auto snap = restore::Snapshot::Take(std::move(req));
  REQUIRE_FALSE(snap.ok());
  CHECK(snap.status().code() == Code::kUnavailable);
}

TEST_CASE("a pidfd that no longer names the process stops the restorer before it touches the pid", "[restore]") {
  if (auto why = WhyNotRestorable()) GEYSIR_SKIP_UNSUPPORTED(*why);
  Running w;
  Start(&w);
  // The pidfd of a process that has exited: as if the worker had died and its pid been reused.
  const pid_t other = fork();
  REQUIRE(other >= 0);
  if (other == 0) _exit(0);
  UniqueFd stale(static_cast<int>(syscall(SYS_pidfd_open, other, 0)));
  REQUIRE(stale.valid());
  REQUIRE(waitpid(other, nullptr, 0) == other);
  restore::SnapshotRequest req;
  req.pid = w.pid;
  req.uffd = UniqueFd(dup(w.uffd.get()));
  req.pidfd = std::move(stale);
  req.channel_fd = w.child_sock;
  auto snap = restore::Snapshot::Take(std::move(req));
  REQUIRE_FALSE(snap.ok());
  CHECK_THAT(snap.status().message(), Catch::Contains("gone"));
  CHECK(kill(w.pid, 0) == 0);  // the process behind the pid was left alone
  CHECK(w.Ask().counter == 0);
}

TEST_CASE("a process with more address space than restore mode tracks is refused, not tracked", "[restore]") {
  const restore::Support support = restore::Probe();
  if (!support.available) GEYSIR_SKIP_UNSUPPORTED(support.detail);
  Running w;
  Start(&w, size_t{256} << 30);  // 256 GiB reserved, never touched (a sanitizer reserves terabytes)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    restore::SnapshotRequest req;
    req.pid = w.pid;
    req.uffd = UniqueFd(dup(w.uffd.get()));
    req.channel_fd = w.child_sock;
    auto snap = restore::Snapshot::Take(std::move(req));
    REQUIRE_FALSE(snap.ok());
    if (snap.status().code() == Code::kUnavailable) {  // not parked yet
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    CHECK_THAT(snap.status().message(), Catch::Contains("more than restore mode tracks"));
    break;
  }
  CHECK(w.Ask().counter == 0);  // left running, untouched
}
