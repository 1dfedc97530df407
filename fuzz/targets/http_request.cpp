// The HTTP request path (net/http_server.h) that both the gateway and control serve with:
// the input is what a client writes on a TCP connection, byte for byte, sent over loopback to
// a real HttpServer on its own libuv loop. The server must parse, answer or refuse, and close
// by itself once the client has finished writing: no crash, no hang, no leak.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "net/http_server.h"

namespace {

using geysir::net::HttpLimits;
using geysir::net::HttpRequest;
using geysir::net::HttpResponder;
using geysir::net::HttpResponse;
using geysir::net::HttpServer;

struct Harness {
  uv_loop_t loop;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;

  Harness() {
    if (uv_loop_init(&loop) != 0) std::abort();
    HttpLimits limits;
    limits.max_header_bytes = 4096;
    limits.max_body_bytes = 64 * 1024;
    limits.header_timeout_ms = 2000;
    limits.body_timeout_ms = 2000;
    server = std::make_unique<HttpServer>(&loop, limits, [](HttpRequest&& request, std::shared_ptr<HttpResponder> r) {
      // A request handed to a handler is always well formed.
      if (request.method.empty() || request.target.empty()) __builtin_trap();
      HttpResponse response;
      response.body = std::to_string(request.body.size());
      r->Send(std::move(response));
    });
    if (!server->Listen("127.0.0.1", 0).ok()) std::abort();
    port = server->port();
  }
};

// Runs the loop until `done` or for at most `timeout_ms`; returns whether `done` became true.
template <typename Pred>
bool RunUntil(uv_loop_t* loop, Pred done, uint64_t timeout_ms) {
  uv_update_time(loop);
  const uint64_t deadline = uv_now(loop) + timeout_ms;
  while (!done()) {
    uv_run(loop, UV_RUN_NOWAIT);
    uv_update_time(loop);
    if (uv_now(loop) >= deadline) return done();
    pollfd loop_fd{uv_backend_fd(loop), POLLIN, 0};
    poll(&loop_fd, 1, 1);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) std::abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(h.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) std::abort();

  // Write everything while the server reads, then half-close, then read until the server closes.
  size_t sent = 0;
  RunUntil(&h.loop, [&] {
    if (sent == size) return true;
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sent = size;  // server closed early
    return sent == size;
  }, 5000);
  shutdown(fd, SHUT_WR);
  bool closed = RunUntil(&h.loop, [&] {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }, 5000);
  close(fd);
  if (!closed) __builtin_trap();  // the server kept a finished client's connection open
  // Let the server see the close and free the connection before the next input.
  RunUntil(&h.loop, [&] { return h.server->open_connections() == 0; }, 1000);
  return 0;
}
