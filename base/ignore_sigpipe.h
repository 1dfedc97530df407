// IgnoreSigpipeOnce: makes writes to a closed socket fail with EPIPE instead of killing the
// process. libuv writes with plain write/writev, so a client that disconnects mid-response (TCP)
// or a peer process that dies (Unix socket) would otherwise raise SIGPIPE. Only a default
// disposition is changed: a process that installed its own handler keeps it.
//
// Thread safety: the first call wins (a function-local static); later calls do nothing.
#pragma once

#include <signal.h>

namespace geysir {

inline void IgnoreSigpipeOnce() {
  static const bool done = [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

}  // namespace geysir
