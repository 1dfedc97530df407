// RawClient: a blocking TCP client over loopback with a receive timeout, for tests that speak
// HTTP (or garbage) to a server byte by byte; BodyOf and StatusOf read its responses.
//
// Thread behaviour: one owner thread (a LoopRunner's client thread, typically); it never touches
// the loop under test.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <string>

namespace geysir::testing {

// A blocking TCP client with a receive timeout.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeout_ms = 3000) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }
  // Closes with a reset (SO_LINGER 0), as a client that vanishes does.
  void Abort() {
    struct linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd_);
    fd_ = -1;
  }

  // Reads until EOF, error or timeout; returns everything received (including earlier leftovers).
  std::string ReadAll() {
    std::string out = std::move(pending_);
    pending_.clear();
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = (n == 0);
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // Reads exactly one response (headers + Content-Length body, no body for HEAD when told).
  // Returns "" on timeout/EOF before a full response.
  std::string ReadResponse(bool head_request = false) {
    for (int guard = 0; guard < 10000; ++guard) {
      size_t end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t body_len = 0;
        std::string lower;
        lower.reserve(end);
        for (size_t i = 0; i < end; ++i) lower.push_back(static_cast<char>(tolower(pending_[i])));
        size_t cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos && !head_request) body_len = std::stoul(pending_.substr(cl + 17));
        if (lower.rfind("http/1.1 1", 0) == 0) body_len = 0;  // interim response
        if (pending_.size() >= end + 4 + body_len) {
          std::string resp = pending_.substr(0, end + 4 + body_len);
          pending_.erase(0, end + 4 + body_len);
          return resp;
        }
      }
      char buf[16384];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = (n == 0);
        return "";
      }
      pending_.append(buf, static_cast<size_t>(n));
    }
    return "";
  }

  // True if the peer closed the connection (reads EOF within the timeout).
  bool WaitClosed() {
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
    return false;
  }

  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string pending_;
};

inline std::string BodyOf(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

inline int StatusOf(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

}  // namespace geysir::testing
