/* The template's fork loop, in C (part of libgeysir_child.so; bootstrap.py's _serve calls it).
 *
 * Why not Python: every fork makes every page of the template copy-on-write again, so each page
 * the template writes before the next fork is copied (a page fault and a TLB flush). A Python
 * loop writes ~140 pages between two forks (its frames, the objects poll, recvmsg and json
 * allocate); on the CI VM, where a fault costs ~45 us, that was ~11 ms of template CPU per
 * request, a fifth of the whole request. This loop touches its stack and one buffer.
 *
 *   int geysir_fork_server(int ctrl_fd, int landlock, int64_t* out)
 *
 * Serves the scheduler's control socket (docs/wire-formats.md, "Scheduler <-> template"):
 *   in:  {"type":"fork","child":N,"private_tmp":bool,"restore":bool} with the child's channel and log fds
 *        (SCM_RIGHTS); anything else is ignored (its fds closed);
 *   out: {"type":"exited","pid":P,"code":C,"signal":S} for every process the template reaps,
 *        {"type":"fork_failed","child":N,"errno":E,"message":"..."} when fork() fails.
 * Each fork's child takes the steps of child_enter.c (inside fork): `landlock` (0 or
 * GEYSIR_CHILD_LANDLOCK, what this kernel supports) always, its own /tmp when the message asks.
 * Returns 1 in each new child, with out[0] = its channel fd, out[1] = its log fd, out[2] = N,
 * out[3] = 1 when the message said "restore":true (the child is restored after each invocation
 * instead of exiting: worker/restore/restore.h);
 * 0 in the template when the
 * scheduler closed the socket; -errno on an error of its own.
 *
 * Must be called through ctypes.PyDLL (with the GIL held): it releases the GIL while it waits,
 * so threads the function's init code started keep running, and forks the way os.fork() does
 * (PyOS_BeforeFork / PyOS_AfterFork_Parent / PyOS_AfterFork_Child: Python's at-fork hooks run,
 * and the child's interpreter is re-initialised). Those symbols come from the python3
 * executable; they are weak here so that the library also loads where there is no Python (the
 * unit tests), where this function returns -ENOSYS.
 *
 * SIGCHLD is blocked in the template and read from a signalfd; each child gets the template's
 * original signal mask back before it returns. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct _ts PyThreadState;
extern PyThreadState* PyEval_SaveThread(void) __attribute__((weak));
extern void PyEval_RestoreThread(PyThreadState*) __attribute__((weak));
extern void PyOS_BeforeFork(void) __attribute__((weak));
extern void PyOS_AfterFork_Parent(void) __attribute__((weak));
extern void PyOS_AfterFork_Child(void) __attribute__((weak));

/* child_enter.c: what the next fork's child does (its own /tmp or not; Landlock is decided once,
 * when bootstrap.py arms it). */
int geysir_child_arm(int flags);
#define GEYSIR_CHILD_PRIVATE_TMP 1

enum { kMaxMessage = 64 * 1024, kMaxFds = 8 };

/* --- the fork message: a flat JSON object; only "type", "child" and "private_tmp" matter -------- */

struct fork_message {
  int is_fork;
  long long child;
  int private_tmp;
  int restore;
};

static const char* skip_space(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  return p;
}

/* A JSON string at p (p at its opening quote): its raw contents in [*s, *s + *n), escapes left
 * as they are (the keys and values we compare have none). Returns the position after it. */
static const char* scan_string(const char* p, const char* end, const char** s, size_t* n) {
  if (p >= end || *p != '"') return NULL;
  const char* start = ++p;
  while (p < end && *p != '"') p += (*p == '\\' && p + 1 < end) ? 2 : 1;
  if (p >= end) return NULL;
  *s = start;
  *n = (size_t)(p - start);
  return p + 1;
}

/* Any JSON value at p; returns the position after it (nested values are skipped whole). */
static const char* skip_value(const char* p, const char* end) {
  if (p >= end) return NULL;
  if (*p == '"') {
    const char* s;
    size_t n;
    return scan_string(p, end, &s, &n);
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        const char* s;
        size_t n;
        p = scan_string(p, end, &s, &n);
        if (p == NULL) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') ++depth;
      if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      ++p;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ' ' && *p != '\n') ++p;
  return p;
}

static int literal_is(const char* s, size_t n, const char* lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

/* 0 when `data` is a JSON object (what the scheduler sends), -1 otherwise. */
static int parse_fork_message(const char* data, size_t len, struct fork_message* m) {
  const char* p = data;
  const char* end = data + len;
  memset(m, 0, sizeof *m);
  m->child = -1;
  p = skip_space(p, end);
  if (p >= end || *p != '{') return -1;
  p = skip_space(p + 1, end);
  if (p < end && *p == '}') return 0;
  while (p < end) {
    const char* key;
    size_t key_len;
    p = scan_string(p, end, &key, &key_len);
    if (p == NULL) return -1;
    p = skip_space(p, end);
    if (p >= end || *p != ':') return -1;
    p = skip_space(p + 1, end);
    const char* value = p;
    p = skip_value(p, end);
    if (p == NULL) return -1;
    size_t value_len = (size_t)(p - value);
    if (literal_is(key, key_len, "type")) {
      m->is_fork = literal_is(value, value_len, "\"fork\"");
    } else if (literal_is(key, key_len, "child")) {
      char number[32];
      if (value_len == 0 || value_len >= sizeof number) return -1;
      memcpy(number, value, value_len);
      number[value_len] = '\0';
      char* stop;
      errno = 0;
      long long v = strtoll(number, &stop, 10);
      if (errno != 0 || *stop != '\0') return -1;
      m->child = v;
    } else if (literal_is(key, key_len, "private_tmp")) {
      m->private_tmp = literal_is(value, value_len, "true");
    } else if (literal_is(key, key_len, "restore")) {
      m->restore = literal_is(value, value_len, "true");
    }
    p = skip_space(p, end);
    if (p < end && *p == ',') {
      p = skip_space(p + 1, end);
      continue;
    }
    return (p < end && *p == '}') ? 0 : -1;
  }
  return -1;
}

/* --- messages out ----------------------------------------------------------------------------- */

static void send_message(int ctrl_fd, const char* text, int len) {
  if (len <= 0) return;
  /* One datagram a message (SOCK_SEQPACKET). A scheduler that is gone shows as EOF on the
   * next receive, which ends the loop; nothing to do about it here. */
  while (send(ctrl_fd, text, (size_t)len, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

/* The exit of every child (and orphan) the template can reap, as "exited". */
static void reap(int ctrl_fd) {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    char text[128];
    int len = snprintf(text, sizeof text, "{\"type\":\"exited\",\"pid\":%d,\"code\":%d,\"signal\":%d}", (int)pid, code,
                       sig);
    send_message(ctrl_fd, text, len);
  }
}

static void send_fork_failed(int ctrl_fd, long long child, int err) {
  char text[256];
  int len = snprintf(text, sizeof text, "{\"type\":\"fork_failed\",\"child\":%lld,\"errno\":%d,\"message\":\"fork: %s\"}",
                     child, err, strerror(err));
  send_message(ctrl_fd, text, len);
}

/* --- the loop ------------------------------------------------------------------------------------ */

/* Receives one message and its descriptors. Returns its length, 0 at EOF, -errno on error. */
static ssize_t receive(int ctrl_fd, char* buf, size_t size, int* fds, int* nfds) {
  union {
    char space[CMSG_SPACE(kMaxFds * sizeof(int))];
    struct cmsghdr align;
  } control;
  struct iovec iov = {buf, size};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.space;
  msg.msg_controllen = sizeof control.space;
  *nfds = 0;
  ssize_t n = recvmsg(ctrl_fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return -errno;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && *nfds < kMaxFds; ++i) memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  if (n == 0 && *nfds == 0) return 0;
  return n == 0 ? 1 : n; /* descriptors without bytes: a message, not EOF */
}

static void close_all(const int* fds, int nfds) {
  for (int i = 0; i < nfds; ++i) close(fds[i]);
}

__attribute__((visibility("default"))) int geysir_fork_server(int ctrl_fd, int landlock, int64_t* out) {
  if (!PyEval_SaveThread || !PyEval_RestoreThread || !PyOS_BeforeFork || !PyOS_AfterFork_Parent ||
      !PyOS_AfterFork_Child) {
    return -ENOSYS;
  }
  /* SIGCHLD at its default whatever the init code chose: ignored, the kernel would reap the
   * children itself and no "exited" would be sent. (Each child sets its own disposition.) */
  struct sigaction default_action;
  memset(&default_action, 0, sizeof default_action);
  default_action.sa_handler = SIG_DFL;
  if (sigaction(SIGCHLD, &default_action, NULL) != 0) return -errno;
  sigset_t chld, original;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &original) != 0) return -errno;
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &original, NULL);
    return -err;
  }
  /* Static: the buffer is written by every message; on the stack it would be 64 KiB of pages
   * copied after each fork. */
  static char buf[kMaxMessage];
  int result = 0;
  reap(ctrl_fd); /* children that ended before the loop started */
  for (;;) {
    struct pollfd pfd[2] = {{ctrl_fd, POLLIN, 0}, {sfd, POLLIN, 0}};
    PyThreadState* ts = PyEval_SaveThread();
    int ready = poll(pfd, 2, -1);
    int poll_errno = errno;
    PyEval_RestoreThread(ts);
    if (ready < 0) {
      if (poll_errno == EINTR) continue;
      result = -poll_errno;
      break;
    }
    if (pfd[1].revents & POLLIN) {
      struct signalfd_siginfo info[8];
      while (read(sfd, info, sizeof info) > 0) {
      }
      reap(ctrl_fd);
    }
    if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    int fds[kMaxFds];
    int nfds = 0;
    ssize_t n = receive(ctrl_fd, buf, sizeof buf, fds, &nfds);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n == 0 || n == -ECONNRESET) break; /* the scheduler closed the control socket */
    if (n < 0) {
      result = (int)n;
      break;
    }
    struct fork_message m;
    if (parse_fork_message(buf, (size_t)n, &m) != 0 || !m.is_fork || nfds < 2) {
      close_all(fds, nfds);
      continue;
    }
    close_all(fds + 2, nfds - 2);
    int armed = geysir_child_arm(landlock | (m.private_tmp ? GEYSIR_CHILD_PRIVATE_TMP : 0));
    if (armed != 0) {
      close_all(fds, 2);
      send_fork_failed(ctrl_fd, m.child, armed);
      continue;
    }
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
      PyOS_AfterFork_Child();
      close(sfd);
      sigprocmask(SIG_SETMASK, &original, NULL);
      out[0] = fds[0];
      out[1] = fds[1];
      out[2] = m.child;
      out[3] = m.restore;
      return 1;
    }
    int fork_errno = errno;
    PyOS_AfterFork_Parent();
    close_all(fds, 2);
    if (pid < 0) send_fork_failed(ctrl_fd, m.child, fork_errno);
  }
  close(sfd);
  sigprocmask(SIG_SETMASK, &original, NULL);
  return result;
}
