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
#include <sys/syscall.h>
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
