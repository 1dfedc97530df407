// Test harness for the worker: temp code directories, spawning a template with SpawnTemplate,
// and the scheduler's side of the control and channel protocols (docs/wire-formats.md).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "proto/frame.h"
#include "base/unique_fd.h"
#include "worker/launcher.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

namespace geysir::worker::testing {

using nlohmann::json;

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A directory under /tmp readable by the function's uid (tests/support/temp_dir.h).
using geysir::testing::TempDir;

inline TemplateSpec MakeSpec(const std::string& code_dir, const std::string& handler) {
  TemplateSpec spec;
  spec.function.name = "hello";
  spec.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:hello";
  spec.function.handler = handler;
  spec.function.code_dir = code_dir;
  spec.function.log_group = "/aws/lambda/hello";
  spec.template_id = "t0123";
  spec.worker_binary = GEYSIR_BINARY_DIR "/bin/geysir-worker";
  spec.runtime_dir = GEYSIR_BINARY_DIR "/share/geysir/runtime/python";
  spec.python = "/usr/bin/python3.11";
  return spec;
}

inline bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) > 0;
}

// Drains what is readable from a non-blocking fd now (or until EOF).
inline std::string ReadAvailable(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads until EOF, bounded in time.
inline std::string ReadToEof(int fd, int timeout_ms) {
  std::string out;
  int64_t deadline = NowMs() + timeout_ms;
  char buf[4096];
  while (NowMs() < deadline) {
    if (!WaitReadable(fd, static_cast<int>(deadline - NowMs()))) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A running template that the test reaps: closing the control socket makes it exit.
struct Template {
  TemplateProcess proc;
  std::string init_log;
  pid_t last_sender = 0;  // the kernel-attached sender pid of the last message Next() returned

  ~Template() {
    if (proc.pid > 0) {
      proc.control.Reset();
      int64_t deadline = NowMs() + 2000;
      int status;
      while (waitpid(proc.pid, &status, WNOHANG) == 0) {
        if (NowMs() > deadline) {
          kill(proc.pid, SIGKILL);
          waitpid(proc.pid, &status, 0);
          break;
        }
        usleep(1000);
      }
    }
  }

  // The next control message, or nullopt on timeout / EOF.
  std::optional<json> Next(int timeout_ms = 10000) {
    int64_t deadline = NowMs() + timeout_ms;
    while (NowMs() < deadline) {
      if (!WaitReadable(proc.control.get(), static_cast<int>(deadline - NowMs()))) break;
      auto m = ReceiveControlMessage(proc.control.get());
      if (m.ok()) {
        last_sender = m->sender_pid;
        return m->message;
      }
      if (m.status().sys_errno() == EAGAIN) continue;
      return std::nullopt;
    }
    return std::nullopt;
  }

  // The next message of one type, skipping others (e.g. "exited" of earlier children).
  std::optional<json> NextOfType(const std::string& type, int timeout_ms = 10000) {
    int64_t deadline = NowMs() + timeout_ms;
    while (NowMs() < deadline) {
      auto m = Next(static_cast<int>(deadline - NowMs()));
      if (!m) return std::nullopt;
      if ((*m)["type"] == type) return m;
    }
    return std::nullopt;
  }
};

inline std::unique_ptr<Template> Spawn(const TemplateSpec& spec) {
  auto t = SpawnTemplate(spec);
  if (!t.ok()) return nullptr;
  auto out = std::make_unique<Template>();
  out->proc = std::move(t).value();
  return out;
}

// One pre-forked child, from the scheduler's side.
struct Child {
  UniqueFd channel;  // SOCK_STREAM, frames
  UniqueFd log;      // read end of the child's stdout/stderr
  pid_t pid = 0;       // as the child sees itself (its template's PID namespace)
  pid_t host_pid = 0;  // as the test sees it (SCM_CREDENTIALS of its "forked")
};

inline std::optional<Child> Fork(Template& t, int n) {
  int sv[2], p[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return std::nullopt;
  if (pipe2(p, O_CLOEXEC) < 0) return std::nullopt;
  Child c;
  c.channel.Reset(sv[0]);
  UniqueFd child_end(sv[1]);
  c.log.Reset(p[0]);
  UniqueFd log_w(p[1]);
  int fds[2] = {child_end.get(), log_w.get()};
  if (!SendControlMessage(t.proc.control.get(), json{{"type", "fork"}, {"child", n}}, fds, 2).ok()) return std::nullopt;
  child_end.Reset();
  log_w.Reset();
  auto m = t.NextOfType("forked");
  if (!m || (*m)["child"] != n) return std::nullopt;
  c.pid = (*m)["pid"].get<pid_t>();
  c.host_pid = t.last_sender;
  return c;
}

inline json InvokeHeader(const std::string& request_id, int64_t timeout_ms = 3000) {
  return json{{"type", "invoke"},
              {"request_id", request_id},
              {"deadline_ms", UnixMs() + timeout_ms},
              {"function_arn", "arn:aws:lambda:us-east-1:000000000000:function:hello"},
              {"client_context_b64", ""}};
}

// Sends one invoke frame and reads the result frame (nullopt if the child closed without one).
inline std::optional<proto::Frame> Invoke(Child& c, const json& header, const std::string& body,
                                          int timeout_ms = 10000) {
  proto::Frame f;
  f.header = header;
  f.body = body;
  std::string wire = proto::EncodeFrame(f);
  if (write(c.channel.get(), wire.data(), wire.size()) != static_cast<ssize_t>(wire.size())) return std::nullopt;
  proto::FrameDecoder decoder;
  int64_t deadline = NowMs() + timeout_ms;
  char buf[65536];
  while (NowMs() < deadline) {
    if (!WaitReadable(c.channel.get(), static_cast<int>(deadline - NowMs()))) break;
    ssize_t n = read(c.channel.get(), buf, sizeof buf);
    if (n <= 0) break;
    decoder.Feed(buf, static_cast<size_t>(n));
    auto next = decoder.Next();
    if (!next.ok()) return std::nullopt;
    if (next->has_value()) return std::move(**next);
  }
  return std::nullopt;
}

inline bool IsRoot() { return geteuid() == 0; }

}  // namespace geysir::worker::testing
