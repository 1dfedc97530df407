/* libgeysir_child.so: what a freshly forked child of a Python template does before any of the
 * function's code runs in it, in C, run by glibc's fork itself. bootstrap.py loads it once in the
 * template and calls geysir_child_arm(flags); from then on every fork() the template makes runs
 * geysir_child_enter(flags) in the new child (a pthread_atfork child handler) before Python's
 * os.fork() even returns there, and leaves the outcome in geysir_child_error/geysir_child_stage,
 * which the child reads before it announces itself. No ctypes call is made in the child: each
 * costs a new child ~0.7 ms of copy-on-write faults on the CI VM (the steps themselves through
 * ctypes took 2-3.5 ms per child; in C they take ~0.25 ms, Landlock included).
 *
 * Only forks made by the process that armed it count (the atfork prepare handler checks the pid
 * in the parent): a fork inside an invocation (subprocess, multiprocessing) runs none of this.
 *
 *   geysir_child_enter(flags, &stage) -> 0, or an errno with `stage` naming the step:
 *
 *   GEYSIR_CHILD_PRIVATE_TMP   unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC): a user
 *                              namespace of its own owning a copy of the template's mount table,
 *                              on whose /tmp the scheduler mounts the invocation's tmpfs
 *                              (worker/private_tmp.h), and an empty IPC namespace (System V
 *                              shared memory, semaphores and message queues, POSIX message
 *                              queues): nothing one invocation creates there is seen by the
 *                              next, and it is all freed when the invocation's last process
 *                              exits, not when the template does;
 *                              then, while it still holds the capabilities that gave it, it sets
 *                              its user namespace's user.max_user_namespaces to 0 (no user
 *                              namespace can be made below it: bubblewrap's --disable-userns),
 *                              and drops every capability (capset to empty), so the limit can
 *                              never be raised again. A refused unshare (a host without
 *                              unprivileged user namespaces) is not an error: the child keeps the
 *                              template's /tmp (the scheduler sees it and logs it), and can make
 *                              no user namespace either.
 *   GEYSIR_CHILD_LANDLOCK      a Landlock domain of its own scoping signals and abstract unix
 *                              sockets (ABI 6): it cannot signal or connect to its siblings or
 *                              the template.
 *
 * Async-signal-safe (raw syscalls, no allocation): callable right after fork().
 * Thread safety: acts on the calling thread (process, for seccomp and unshare) only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define GEYSIR_CHILD_PRIVATE_TMP 1
#define GEYSIR_CHILD_LANDLOCK 2

enum { kStageUnshare = 1, kStageCapset, kStageUserNamespaceLimit, kStageLandlockCreate, kStageLandlockRestrict };

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_restrict_self 446
#endif

/* struct landlock_ruleset_attr as of ABI 6 (older headers lack `scoped`). */
struct geysir_landlock_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
#define GEYSIR_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET 1ULL
#define GEYSIR_LANDLOCK_SCOPE_SIGNAL 2ULL

/* No user namespace below this one, ever: user.max_user_namespaces is a per-user-namespace limit
 * that every creation checks at each ancestor, so 0 here refuses unshare(CLONE_NEWUSER) and
 * clone(CLONE_NEWUSER) to this process and to everything it starts (ENOSPC). Writing it takes
 * CAP_SYS_RESOURCE in this namespace, which the child holds only until drop_capabilities(): from
 * then on nothing can raise it. /proc/sys/user resolves to the *writer's* user namespace, hence
 * after the unshare. (This replaced a stacked one-rule seccomp filter, which did the same at
 * ~0.15-0.3 ms a child: the kernel JIT-compiles every filter it attaches; this is ~20 us.) */
static int limit_user_namespaces(void) {
  int fd = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, "0", 1);
  int err = errno;
  close(fd);
  if (n != 1) {
    errno = n < 0 ? err : EIO;
    return -1;
  }
  return 0;
}

static int drop_capabilities(void) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
  return (int)syscall(SYS_capset, &header, data);
}

static int landlock_scope(int* stage) {
  struct geysir_landlock_attr attr = {0, 0, GEYSIR_LANDLOCK_SCOPE_SIGNAL | GEYSIR_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET};
  int fd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (fd < 0) {
    *stage = kStageLandlockCreate;
    return errno;
  }
  int rc = (int)syscall(__NR_landlock_restrict_self, fd, 0);
  int err = errno;
  close(fd);
  if (rc != 0) {
    *stage = kStageLandlockRestrict;
    return err;
  }
  return 0;
}

__attribute__((visibility("default"))) int geysir_child_enter(int flags, int* stage) {
  *stage = 0;
  if (flags & GEYSIR_CHILD_PRIVATE_TMP) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) == 0) {
      if (limit_user_namespaces() != 0) {
        *stage = kStageUserNamespaceLimit;
        return errno;
      }
      if (drop_capabilities() != 0) {
        *stage = kStageCapset;
        return errno;
      }
    }
  }
  if (flags & GEYSIR_CHILD_LANDLOCK) return landlock_scope(stage);
  return 0;
}

/* Set by geysir_child_arm in the template; read (copied by fork) in the child. */
static int armed_flags;
static pid_t armed_process;
static int atfork_registered;
/* Set in the parent right before each fork: the child inherits it. Forks of other processes
 * (the template's children and what they start) leave it 0. */
static int forking_template;

/* The outcome in the child: 0, or the errno of the failed step and the step. */
__attribute__((visibility("default"))) int geysir_child_error;
__attribute__((visibility("default"))) int geysir_child_stage;
/* How long the steps took in this child, in ns (bench/sandbox.py reads it: the steps run inside
 * fork(), where nothing in Python can time them). */
__attribute__((visibility("default"))) int64_t geysir_child_enter_ns;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void before_fork(void) { forking_template = armed_flags != 0 && getpid() == armed_process; }

static void in_child(void) {
  if (!forking_template) return;
  forking_template = 0;
  int64_t t0 = now_ns();
  geysir_child_error = geysir_child_enter(armed_flags, &geysir_child_stage);
  geysir_child_enter_ns = now_ns() - t0;
}

/* In the template: what every child it forks from now on does first. Returns 0 or an errno. */
__attribute__((visibility("default"))) int geysir_child_arm(int flags) {
  if (!atfork_registered) {
    int rc = pthread_atfork(before_fork, NULL, in_child);
    if (rc != 0) return rc;
    atfork_registered = 1;
  }
  armed_process = getpid();
  armed_flags = flags;
  return 0;
}

/* --- restore mode ------------------------------------------------------------------------------ */

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* A filter of the child's own, on top of the sandbox's: no userfaultfd after the one handed to
 * the restorer (with one of its own, a request could fiddle with the tracking of its pages), and
 * no PAGEMAP_SCAN ioctl (its PM_SCAN_WP_MATCHING would write-protect pages the request wrote,
 * hiding them from the restore). Both fail with EPERM, like the sandbox's refusals. */
static int forbid_tracking_calls(void) {
#if defined(__x86_64__)
  /* _IOWR('f', 16, struct pm_scan_arg): 96 bytes of argument. */
  const unsigned int pagemap_scan = 0xc0606610u;
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
      /* the request number: the low 32 bits of the second argument (little-endian) */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, pagemap_scan, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
  return 0;
#else
  return ENOSYS;
#endif
}

/* Restore mode (worker/restore/restore.h), in a new child before any of the function's code
 * runs in it: makes the userfaultfd through which the scheduler's restorer tracks every page this
 * process writes (UFFD_USER_MODE_ONLY: it can never stall the kernel), forbids itself any other
 * (forbid_tracking_calls), and sends `message` (its "forked") with the descriptor on `ctrl_fd`,
 * then closes its own copy. Returns 0 or an errno. */
__attribute__((visibility("default"))) int geysir_restore_announce(int ctrl_fd, const char* message, size_t len) {
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (uffd < 0) return errno;
  int err = forbid_tracking_calls();
  if (err == 0) {
    struct iovec iov = {(void*)message, len};
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    memset(&control, 0, sizeof control);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &uffd, sizeof uffd);
    ssize_t n;
    do {
      n = sendmsg(ctrl_fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) err = errno;
  }
  close(uffd);
  return err;
}

/* Restore mode, in the runtime right after a restored child resumes, before the next
 * invocation's code runs: what a fork never inherits, so what every snapshot holds as zero, and
 * what the restorer does not put back itself (each call it makes in the stopped child costs a
 * ptrace single step, ~10 us): the interval timers that count CPU time, the parent-death signal
 * and the subreaper flag. (A pending alarm, which runs while the child waits, the restorer
 * cancels.) */
__attribute__((visibility("default"))) int geysir_restore_reset(void) {
  struct itimerval zero;
  memset(&zero, 0, sizeof zero);
  int err = 0;
  if (setitimer(ITIMER_VIRTUAL, &zero, NULL) != 0) err = errno;
  if (setitimer(ITIMER_PROF, &zero, NULL) != 0) err = errno;
  if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) != 0) err = errno;
  if (prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) != 0) err = errno;
  return err;
}
