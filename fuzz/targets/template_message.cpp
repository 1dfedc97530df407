// The scheduler's receive path for messages from a template and its children (worker/launcher.h
// ReceiveControlMessage over the control socket, a SOCK_SEQPACKET pair as in production): the
// template runs the function's init code, which holds this socket and may write anything to
// it. Every accepted message is then used as the scheduler uses it: fields read by type, and
// the init error object serialised again for the invocation's result.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "worker/launcher.h"

namespace {

struct SocketPair {
  int send_fd = -1;
  int recv_fd = -1;
  SocketPair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) std::abort();
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    send_fd = sv[0];
    recv_fd = sv[1];
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static SocketPair pair;
  if (send(pair.send_fd, data, size, MSG_NOSIGNAL) < 0) return 0;  // over the socket's limit
  auto msg = geysir::worker::ReceiveControlMessage(pair.recv_fd);
  if (!msg.ok()) return 0;
  const nlohmann::json& m = msg->message;
  (void)m.dump();
  for (const char* key : {"init_ms", "child", "pid", "code", "signal", "errno"}) {
    auto it = m.find(key);
    if (it != m.end() && it->is_number()) (void)it->get<double>();
  }
  auto error = m.find("error");
  if (error != m.end() && error->is_object()) {
    (void)error->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return 0;
}
