// HttpServer on libuv + llhttp. See http_server.h for the behaviour; this file explains how.
//
// Per connection:
//  - Bytes are read into a buffer borrowed from a server-wide pool (idle connections hold none).
//    llhttp reports the request-target and header fields/values as spans; we keep them as
//    offsets into that buffer (views), and copy them once into the HttpRequest when the header
//    block is complete. A header block split across reads stays in the buffer (compacted to its
//    front when needed), so the views stay valid without copying.
//  - Each parsed request gets a Pending (which is also its HttpResponder) appended to a queue.
//    Responses are written strictly from the queue's front: a later request answered first waits
//    until every earlier one is written. Ready responses are gathered into one writev, tried
//    with uv_try_write first and queued with uv_write only for what the kernel did not take.
//  - One timer per connection carries whichever deadline applies now: headers (408), body
//    (408), keep-alive idle (silent close), or the lingering close after the last response.
//  - A connection that must close (error response, "Connection: close", shutdown) first writes
//    what it owes, then half-closes (FIN) and discards input briefly before closing, so the
//    client reads our response instead of a reset.
//  - With TLS (SetTls), a TlsSession sits between the socket and the same machinery: socket
//    reads land in a server-wide scratch buffer and are fed to the session, whose plaintext is
//    read into the connection's buffer and parsed as above (PumpTls); every write is encrypted
//    and its records sent instead (SendTlsOutput); the lingering close sends close_notify first.
#include "net/http_server.h"

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdlib>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "base/ignore_sigpipe.h"
#include "base/strings.h"
#include "base/uv_handle.h"
#include "base/log.h"
#include "net/tls.h"

namespace geysir::net {
namespace {

constexpr size_t kMinReadRoom = 4096;        // compact the read buffer when less room is left
constexpr size_t kMaxPooledBuffers = 64;     // read buffers kept for reuse
constexpr uint32_t kLingerMs = 500;          // how long we drain input after our final response
constexpr int kBacklog = 511;
constexpr size_t kMaxBatch = 8;              // responses gathered into one writev

void AppendNumber(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

uint64_t WallClockMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}


std::string ErrorBody(const std::string& message) {
  return nlohmann::json{{"message", message}}.dump();
}

struct Span {
  size_t off = 0;
  size_t len = 0;
};

class Connection;

// One request's place in its connection's response queue, and the handler's way to answer it.
class Pending final : public HttpResponder {
 public:
  void Send(HttpResponse response) override;
  bool alive() const override { return conn != nullptr && !answered; }

  Connection* conn = nullptr;     // null once the connection closed
  HttpResponse response;
  bool answered = false;          // Send() was called (or this is a server-made error)
  bool counted = false;           // counted in the server's in-flight total
  bool keep_alive = true;         // the client allows another request after this one
  bool http10 = false;
  bool head = false;              // HEAD: Content-Length as for GET, no body bytes
};

// A uv_write_t that owns the bytes it writes.
struct WriteReq {
  uv_write_t req;
  std::vector<std::string> owned;
};

// The server's state; HttpServer::Impl is this (Connection cannot name the private Impl).
struct ServerCore {
  ServerCore(uv_loop_t* l, HttpLimits lim, HttpHandler h, std::string name)
      : loop(l), limits(lim), handler(std::move(h)), server_name(std::move(name)) {
    IgnoreSigpipeOnce();
    buffer_size = std::max<size_t>(64 * 1024, limits.max_header_bytes + 16 * 1024);
    if (limits.max_pipelined == 0) limits.max_pipelined = 1;
  }
  ~ServerCore();

  Status StartListening();
  static void OnConnection(uv_stream_t* server, int status);
  static void OnListenerClosed(uv_handle_t* h);
  static void OnIdle(uv_idle_t* idle);

  char* TakeBuffer() {
    if (!free_buffers.empty()) {
      char* b = free_buffers.back();
      free_buffers.pop_back();
      return b;
    }
    return new char[buffer_size];
  }
  void GiveBuffer(char* b) {
    if (free_buffers.size() < kMaxPooledBuffers) {
      free_buffers.push_back(b);
    } else {
      delete[] b;
    }
  }

  // "Date: ...\r\n", formatted at most once per second.
  const std::string& DateLine() {
    time_t now = time(nullptr);
    if (now != date_second) {
      date_second = now;
      struct tm tm;
      gmtime_r(&now, &tm);
      char buf[64];
      size_t n = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
      date_line.assign(buf, n);
    }
    return date_line;
  }

  void ScheduleResume(Connection* c);
  void Unlink(Connection* c);
  void MaybeFinishShutdown();

  uv_loop_t* loop;
  HttpLimits limits;
  HttpHandler handler;
  HttpErrorFormatter error_formatter;
  const TlsContext* tls = nullptr;
  // Where TLS connections' socket reads land: each read is fed to its session at once, so one
  // buffer serves every connection of the loop.
  std::unique_ptr<char[]> tls_scratch;
  static constexpr size_t kTlsScratch = 64 * 1024;
  std::string server_name;
  std::string server_line;
  size_t buffer_size;
  std::vector<char*> free_buffers;

  uv_tcp_t* listener = nullptr;      // freed in its close callback
  bool listener_closing = false;
  UvHandle<uv_idle_t> idle;          // runs deferred resumes of paused connections
  std::vector<Connection*> resume_list;
  uint16_t bound_port = 0;

  // Open connections per client address, when limits.max_connections_per_client is set: one
  // client must not hold every slot of max_connections. Refusals are counted, and logged at
  // most once a second (a refused flood must not become a log flood).
  std::unordered_map<std::string, uint32_t> per_client;
  uint64_t refused_per_client = 0;
  uint64_t refused_unlogged = 0;
  uint64_t refused_logged_at_ms = 0;
  void NoteRefusedClient(const std::string& remote);

  Connection* conns_head = nullptr;  // every connection not yet freed
  size_t open_count = 0;             // connections not yet closing
  size_t inflight = 0;
  bool shutting_down = false;
  bool closed = false;
  std::function<void()> shutdown_done;

  time_t date_second = 0;
  std::string date_line;
};

// One accepted TCP connection: parser, read buffer, response queue, timer.
class Connection {
 public:
  enum class TimerMode { kNone, kFirstByte, kHeaders, kBody, kIdle, kWrite, kLinger };

  explicit Connection(ServerCore* server) : server_(server) {
    tcp_.data = this;
    timer_.data = this;
    llhttp_init(&parser_, HTTP_REQUEST, &Settings());
    parser_.data = this;
  }

  static const llhttp_settings_t& Settings();

  bool Init(uv_stream_t* listener) {
    uv_tcp_init(server_->loop, &tcp_);
    uv_timer_init(server_->loop, &timer_);
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) return false;
    uv_tcp_nodelay(&tcp_, 1);
    if (server_->tls != nullptr) {
      tls_ = std::make_unique<TlsSession>(*server_->tls);
      if (tls_->failed()) {
        log::Warn("tls_session_failed", {{"error", tls_->error()}});
        return false;
      }
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      char ip[64] = {0};
      if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        uv_ip4_name(sin, ip, sizeof ip);
        remote_port_ = ntohs(sin->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        uv_ip6_name(sin6, ip, sizeof ip);
        remote_port_ = ntohs(sin6->sin6_port);
      }
      remote_addr_ = ip;
    }
    return true;
  }

  // Takes one of this client's connection slots; false when it holds them all already.
  bool CountClient() {
    const uint32_t limit = server_->limits.max_connections_per_client;
    if (limit == 0 || remote_addr_.empty()) return true;
    uint32_t& n = server_->per_client[remote_addr_];
    if (n >= limit) return false;
    ++n;
    client_counted_ = true;
    return true;
  }

  // Answers 429 without reading a request, then closes (as any error response does). Over TLS,
  // where an answer would first cost a handshake, the connection is just closed.
  void RefuseTooMany() {
    if (tls_) {
      CloseNow();
      return;
    }
    QueueError(429, "too many open connections from " + remote_addr_ + " (limit " +
                        std::to_string(server_->limits.max_connections_per_client) + ")");
    Flush();
  }

  const std::string& remote_addr() const { return remote_addr_; }

  void StartReading() {
    SetTimer(TimerMode::kFirstByte);
    ReadStart();
  }

  // Immediate close: pending responders go inert, handles are closed, memory freed later.
  void CloseNow() {
    if (closing_) return;
    closing_ = true;
    for (auto& p : queue_) Detach(*p);
    queue_.clear();
    if (server_ != nullptr) {
      --server_->open_count;
      if (client_counted_) {
        auto it = server_->per_client.find(remote_addr_);
        if (it != server_->per_client.end() && --it->second == 0) server_->per_client.erase(it);
      }
      auto& rl = server_->resume_list;
      rl.erase(std::remove(rl.begin(), rl.end(), this), rl.end());
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
  }

  // Graceful: called by Shutdown(). Idle connections close now; busy ones close after the
  // response to the last request already received.
  void Drain() {
    draining_ = true;
    if (closing_ || final_queued_ || in_message_) return;  // a message in progress ends the connection when complete
    final_queued_ = true;
    ReadStop();
    if (queue_.empty()) {
      BeginLingerClose();
    } else {
      Flush();  // the last queued response now carries "Connection: close"
    }
  }

  void Resume() {
    if (closing_ || !paused_ || final_queued_) return;
    paused_ = false;
    llhttp_resume(&parser_);
    Parse();
    if (tls_ && !closing_) PumpTls();  // plaintext may still wait inside the session
    if (!closing_ && !paused_ && !final_queued_) ReadStart();
  }

  void OnSend(Pending* p) {
    if (p->counted) {
      p->counted = false;
      --server_->inflight;
    }
    Flush();
  }

  bool closing() const { return closing_; }

  Connection* next = nullptr;
  Connection* prev = nullptr;
  ServerCore* server_;

 private:
  template <auto Method, typename... Args>
  static int Trampoline(llhttp_t* parser, Args... args) {
    return (static_cast<Connection*>(parser->data)->*Method)(args...);
  }

  // --- llhttp callbacks -------------------------------------------------------------------

  int OnMessageBegin() {
    in_message_ = true;
    headers_done_ = false;
    header_bytes_ = 0;
    url_ = Span{};
    headers_.clear();
    last_was_value_ = true;
    keep_from_ = SIZE_MAX;
    req_ = HttpRequest{};
    SetTimer(TimerMode::kHeaders);
    return 0;
  }

  size_t OffsetOf(const char* at) const { return static_cast<size_t>(at - buf_); }

  // Extends `s` with [at, at+len); spans only ever continue contiguously (see the file comment).
  void Extend(Span& s, const char* at, size_t len) {
    if (s.len == 0) {
      s.off = OffsetOf(at);
      keep_from_ = std::min(keep_from_, s.off);
    }
    s.len += len;
  }

  int CountHeaderBytes(size_t len) {
    header_bytes_ += len;
    if (header_bytes_ > server_->limits.max_header_bytes) {
      return Fail(431, "request header block exceeds " + std::to_string(server_->limits.max_header_bytes) +
                           " bytes");
    }
    return 0;
  }

  int OnUrl(const char* at, size_t len) {
    Extend(url_, at, len);
    return CountHeaderBytes(len);
  }

  int OnHeaderField(const char* at, size_t len) {
    if (last_was_value_) {
      headers_.emplace_back();
      last_was_value_ = false;
      header_bytes_ += 4;  // ": " and CRLF
    }
    Extend(headers_.back().first, at, len);
    return CountHeaderBytes(len);
  }

  int OnHeaderValue(const char* at, size_t len) {
    last_was_value_ = true;
    if (len == 0) return 0;  // llhttp reports an empty value as an empty span, possibly on the next line
    const Span& name = headers_.back().first;
    Span& value = headers_.back().second;
    // Obsolete line folding (a line starting with whitespace continues the previous value):
    // llhttp accepts it and hands the folded line on as more of the same value. RFC 9112 lets
    // a server reject it, and we must: a proxy in front that does not unfold would see two
    // headers where we see one (request smuggling), so we answer 400 as AWS's front ends do.
    // A fold shows as a line break inside the value, a value that does not continue where it
    // left off, or one that starts on a later line than its name (an empty first line).
    bool folded = std::memchr(at, '\n', len) != nullptr || std::memchr(at, '\r', len) != nullptr ||
                  (value.len > 0 && OffsetOf(at) != value.off + value.len);
    if (value.len == 0 && name.len > 0 && OffsetOf(at) >= name.off + name.len) {
      const size_t from = name.off + name.len;
      folded = folded || std::memchr(buf_ + from, '\n', OffsetOf(at) - from) != nullptr;
    }
    if (folded) {
      return Fail(400, "malformed request: obsolete line folding (a header line starting with whitespace) is not "
                       "accepted");
    }
    Extend(value, at, len);
    return CountHeaderBytes(len);
  }

  std::string Str(Span s) const { return std::string(buf_ + s.off, s.len); }
  // Header values lose trailing whitespace (leading whitespace never reaches the span).
  std::string Value(Span s) const {
    while (s.len > 0 && (buf_[s.off + s.len - 1] == ' ' || buf_[s.off + s.len - 1] == '\t')) --s.len;
    return Str(s);
  }

  // Header shapes llhttp lets through that two parsers could read differently: whitespace
  // between a field name and its colon (RFC 9112 section 5.1: must be rejected with 400), and a
  // second Host (RFC 9112 section 3.2: 400), which we would route by one and a proxy by another.
  int CheckHeaderShapes() {
    size_t hosts = 0;
    for (const auto& [name, value] : headers_) {
      if (name.len > 0 && (buf_[name.off + name.len - 1] == ' ' || buf_[name.off + name.len - 1] == '\t')) {
        return Fail(400, "malformed request: whitespace between a header field name and its colon");
      }
      if (EqualsIgnoreCase(std::string_view(buf_ + name.off, name.len), "host")) ++hosts;
    }
    if (hosts > 1) return Fail(400, "malformed request: more than one Host header");
    // RFC 9112 section 3.2: an HTTP/1.1 request without Host is answered 400. Routing here is
    // by Host; a request without one would be read by whatever default a proxy in front picks.
    if (hosts == 0 && parser_.http_major == 1 && parser_.http_minor >= 1) {
      return Fail(400, "malformed request: an HTTP/1.1 request needs a Host header");
    }
    // Absolute form ("GET http://a.example/ HTTP/1.1"): RFC 9112 section 3.2.2 has the
    // target's authority win over Host, while we route by Host; a request naming two different
    // hosts is refused rather than read one way here and the other way in front.
    std::string_view target(buf_ + url_.off, url_.len);
    size_t scheme = target.find("://");
    if (url_.len > 0 && target[0] != '/' && scheme != std::string_view::npos) {
      std::string_view authority = target.substr(scheme + 3);
      authority = authority.substr(0, std::min(authority.find('/'), authority.find('?')));
      bool same = false;
      for (const auto& [name, value] : headers_) {
        if (!EqualsIgnoreCase(std::string_view(buf_ + name.off, name.len), "host")) continue;
        Span v = value;
        while (v.len > 0 && (buf_[v.off + v.len - 1] == ' ' || buf_[v.off + v.len - 1] == '\t')) --v.len;
        same = EqualsIgnoreCase(std::string_view(buf_ + v.off, v.len), authority);
      }
      if (hosts == 1 && !same) return Fail(400, "malformed request: the request target's host differs from Host");
    }
    return 0;
  }

  int OnHeadersComplete() {
    if (int rc = CheckHeaderShapes(); rc != 0) return rc;
    headers_done_ = true;
    keep_from_ = SIZE_MAX;
    HttpRequest& r = req_;
    r.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    r.target = Str(url_);
    size_t q = r.target.find('?');
    // Absolute-form ("GET http://host/p?q", as proxies send) keeps its raw target; the path
    // starts at the first '/' after the authority.
    size_t path_start = 0;
    if (!r.target.empty() && r.target[0] != '/') {
      size_t scheme = r.target.find("://");
      if (scheme != std::string::npos && scheme < q) {
        path_start = r.target.find('/', scheme + 3);
        if (path_start == std::string::npos || path_start > q) path_start = std::min(q, r.target.size());
      }
    }
    if (q == std::string::npos) {
      r.path = r.target.substr(path_start);
    } else {
      r.path = r.target.substr(path_start, q - path_start);
      r.query = r.target.substr(q + 1);
    }
    if (r.path.empty()) r.path = "/";
    r.headers.reserve(headers_.size());
    for (const auto& [name, value] : headers_) r.headers.emplace_back(Str(name), Value(value));
    r.http_major = parser_.http_major;
    r.http_minor = parser_.http_minor;
    r.remote_addr = remote_addr_;
    r.remote_port = remote_port_;
    r.received_at_ms = WallClockMs();
    if (tls_) {
      r.tls = true;
      r.tls_server_name = tls_->server_name();
    }

    const size_t max_body = server_->limits.max_body_bytes;
    const bool has_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
    const bool chunked = (parser_.flags & F_CHUNKED) != 0;
    if (has_length && parser_.content_length > max_body) {
      return Fail(413, "request body of " + std::to_string(parser_.content_length) + " bytes exceeds the limit of " +
                           std::to_string(max_body) + " bytes");
    }
    if (has_length) r.body.reserve(parser_.content_length);
    const bool expects_body = chunked || (has_length && parser_.content_length > 0);
    if (expects_body) {
      const std::string* expect = r.Header("Expect");
      if (expect != nullptr && EqualsIgnoreCase(*expect, "100-continue") && r.http_minor >= 1) {
        // Only when nothing is queued ahead: a 100 must not overtake earlier responses. A client
        // that gets no 100 sends the body after its own short wait anyway.
        if (queue_.empty() && !final_queued_) WriteStatic("HTTP/1.1 100 Continue\r\n\r\n");
      }
      SetTimer(TimerMode::kBody);
    } else {
      SetTimer(TimerMode::kNone);
    }
    return 0;
  }

  int OnBody(const char* at, size_t len) {
    if (req_.body.size() + len > server_->limits.max_body_bytes) {
      return Fail(413, "request body exceeds the limit of " + std::to_string(server_->limits.max_body_bytes) +
                           " bytes");
    }
    req_.body.append(at, len);
    return 0;
  }

  int OnMessageComplete() {
    in_message_ = false;
    SetTimer(TimerMode::kNone);
    auto p = std::make_shared<Pending>();
    p->conn = this;
    p->keep_alive = llhttp_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0;
    p->http10 = req_.http_major == 1 && req_.http_minor == 0;
    p->head = parser_.method == HTTP_HEAD;
    p->counted = true;
    ++server_->inflight;
    queue_.push_back(p);
    const bool last = !p->keep_alive || draining_;
    if (last) final_queued_ = true;
    server_->handler(std::move(req_), p);
    if (closing_ || last) return HPE_PAUSED;
    if (queue_.size() >= server_->limits.max_pipelined) {
      pipeline_full_ = true;
      return HPE_PAUSED;
    }
    return 0;
  }

  // Records why parsing must stop; the error response is queued once llhttp_execute returns.
  int Fail(int status, std::string message) {
    fail_status_ = status;
    fail_message_ = std::move(message);
    llhttp_set_error_reason(&parser_, "geysir limit");
    return HPE_USER;
  }

  // --- reading -----------------------------------------------------------------------------

  void ReadStart() {
    if (reading_) return;
    reading_ = true;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), OnAlloc, OnRead);
  }
  void ReadStop() {
    if (!reading_) return;
    reading_ = false;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* out) {
    auto* c = static_cast<Connection*>(h->data);
    if (c->tls_ && c->server_ != nullptr) {
      if (!c->server_->tls_scratch) c->server_->tls_scratch.reset(new char[ServerCore::kTlsScratch]);
      *out = uv_buf_init(c->server_->tls_scratch.get(), static_cast<unsigned>(ServerCore::kTlsScratch));
      return;
    }
    if (c->buf_ == nullptr) {
      c->buf_ = c->server_ != nullptr ? c->server_->TakeBuffer() : nullptr;
      c->data_end_ = c->parse_pos_ = 0;
    }
    if (c->buf_ == nullptr) {
      *out = uv_buf_init(nullptr, 0);
      return;
    }
    size_t cap = c->server_->buffer_size;
    *out = uv_buf_init(c->buf_ + c->data_end_, static_cast<unsigned>(cap - c->data_end_));
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(s->data);
    if (c->closing_) return;
    if (nread < 0) {
      c->OnReadEnd(static_cast<int>(nread));
      return;
    }
    if (c->tls_) {
      if (nread == 0 || c->lingering_) return;
      c->tls_->Feed(buf->base, static_cast<size_t>(nread));
      c->PumpTls();
      return;
    }
    if (nread == 0) {
      c->MaybeReleaseBuffer();
      return;
    }
    if (c->lingering_) {  // discarding input while our final response drains
      c->data_end_ = c->parse_pos_ = 0;
      return;
    }
    c->data_end_ += static_cast<size_t>(nread);
    c->Parse();
  }

  // Decrypts what the session can give into the read buffer and parses it, until the session
  // wants more ciphertext or parsing must wait (pipeline full, final response queued); then
  // sends whatever records (handshake, alerts) the session produced.
  void PumpTls() {
    while (!closing_ && !lingering_ && !paused_ && !final_queued_) {
      if (buf_ == nullptr) {
        if (server_ == nullptr) return;
        buf_ = server_->TakeBuffer();
        data_end_ = parse_pos_ = 0;
      }
      const size_t room = server_->buffer_size - data_end_;
      if (room == 0) break;  // cannot happen: the header limit is below the buffer size
      size_t n = 0;
      TlsSession::ReadResult r = tls_->Read(buf_ + data_end_, room, &n);
      if (r == TlsSession::ReadResult::kData) {
        data_end_ += n;
        Parse();
        continue;
      }
      if (r == TlsSession::ReadResult::kWant) break;
      if (r == TlsSession::ReadResult::kClosed) {
        if (!SendTlsOutput()) return;
        OnReadEnd(UV_EOF);
        return;
      }
      log::Debug("tls_failed", {{"error", tls_->error()}, {"remote", remote_addr_}, {"sni", tls_->server_name()}});
      ReadStop();
      if (SendTlsOutput()) BeginLingerClose();  // the alert goes out before the FIN
      return;
    }
    if (closing_) return;
    MaybeReleaseBuffer();
    if (tls_->acme_alpn() && tls_->handshake_done() && !lingering_) {
      // TLS-ALPN-01 (RFC 8737): the validator only looks at the certificate and closes.
      ReadStop();
      final_queued_ = true;
      BeginLingerClose();
      return;
    }
    SendTlsOutput();
  }

  // Sends the session's pending records; false when the connection closed on a write error.
  bool SendTlsOutput() {
    if (!tls_->has_output()) return true;
    auto* w = new WriteReq;
    w->req.data = this;
    w->owned.emplace_back();
    std::string& out = w->owned.back();
    tls_->TakeOutput(out);
    int written = 0;
    if (outstanding_writes_ == 0) {
      uv_buf_t b = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
      written = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1);
      if (written < 0 && written != UV_EAGAIN && written != UV_ENOSYS) {
        delete w;
        CloseNow();
        return false;
      }
      if (written < 0) written = 0;
    }
    if (static_cast<size_t>(written) == out.size()) {
      delete w;
      return true;
    }
    uv_buf_t rest = uv_buf_init(out.data() + written, static_cast<unsigned>(out.size() - static_cast<size_t>(written)));
    ++outstanding_writes_;
    if (timer_mode_ == TimerMode::kNone) SetTimer(TimerMode::kWrite);
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &rest, 1, OnWritten) != 0) {
      --outstanding_writes_;
      delete w;
      CloseNow();
      return false;
    }
    return true;
  }

  void OnReadEnd(int err) {
    ReadStop();
    if (lingering_ || err != UV_EOF) {
      CloseNow();
      return;
    }
    // EOF: the client sent all it will. Answer what was received, then close.
    peer_eof_ = true;
    if (in_message_ || (queue_.empty() && outstanding_writes_ == 0)) {
      CloseNow();
      return;
    }
    final_queued_ = true;
    if (!queue_.empty() && queue_.back()->keep_alive) queue_.back()->keep_alive = false;
    Flush();
  }

  void Parse() {
    if (parse_pos_ >= data_end_) {
      Compact();
      return;
    }
    corked_ = true;
    llhttp_errno_t err = llhttp_execute(&parser_, buf_ + parse_pos_, data_end_ - parse_pos_);
    corked_ = false;
    if (closing_) return;
    if (err == HPE_OK) {
      parse_pos_ = data_end_;
    } else if (err == HPE_PAUSED) {
      parse_pos_ = OffsetOf(llhttp_get_error_pos(&parser_));
      if (final_queued_) {
        ReadStop();
        parse_pos_ = data_end_;  // nothing after the last request is read
      } else if (pipeline_full_) {
        pipeline_full_ = false;
        paused_ = true;
        ReadStop();
      }
    } else if (err == HPE_PAUSED_UPGRADE) {
      // Upgrades (WebSocket, h2c) are not supported: the request was answered as a plain one
      // and marked last.
      ReadStop();
      final_queued_ = true;
      parse_pos_ = data_end_;
    } else {
      int status = 400;
      std::string message;
      if (fail_status_ != 0) {  // one of our limits (llhttp may report it as a callback error)
        status = fail_status_;
        message = fail_message_;
      } else {
        message = std::string("malformed request: ") + llhttp_get_error_reason(&parser_);
      }
      parse_pos_ = data_end_;
      QueueError(status, message);
    }
    Compact();
    Flush();
  }

  // Keeps only what is still needed (unparsed bytes, an incomplete header block) and moves it to
  // the buffer's front when room runs short; returns the buffer to the pool when nothing is kept.
  void Compact() {
    if (buf_ == nullptr) return;
    size_t keep = parse_pos_;
    if (in_message_ && !headers_done_) keep = std::min(keep, keep_from_);
    if (keep >= data_end_) {
      data_end_ = parse_pos_ = 0;
      MaybeReleaseBuffer();
      return;
    }
    const size_t cap = server_->buffer_size;
    if (keep == 0 || (cap - data_end_ >= kMinReadRoom && keep < cap / 2)) return;
    std::memmove(buf_, buf_ + keep, data_end_ - keep);
    data_end_ -= keep;
    parse_pos_ -= keep;
    if (keep_from_ != SIZE_MAX) keep_from_ -= keep;
    if (url_.len > 0) url_.off -= keep;
    for (auto& [name, value] : headers_) {
      if (name.len > 0) name.off -= keep;
      if (value.len > 0) value.off -= keep;
    }
  }

  void MaybeReleaseBuffer() {
    if (buf_ == nullptr || data_end_ != 0) return;
    if (in_message_ && !headers_done_ && keep_from_ != SIZE_MAX) return;
    if (server_ != nullptr) {
      server_->GiveBuffer(buf_);
    } else {
      delete[] buf_;
    }
    buf_ = nullptr;
  }

  // What was parsed of a request refused before its handler saw it (nothing, a request line,
  // some headers, or all of them), for the error formatter. Views are still valid here: an
  // unfinished header block keeps its bytes in the buffer.
  HttpRequest PartialRequest() const {
    HttpRequest r;
    r.remote_addr = remote_addr_;
    r.remote_port = remote_port_;
    if (headers_done_) {
      r.method = req_.method;
      r.target = req_.target;
      r.path = req_.path;
      r.query = req_.query;
      r.headers = req_.headers;
      return r;
    }
    // Nothing of this request seen yet: earlier bytes in the buffer are other requests'.
    if (!in_message_ || buf_ == nullptr || url_.len == 0) return r;
    r.target = Str(url_);
    size_t q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) r.query = r.target.substr(q + 1);
    size_t scanned_to = url_.off + url_.len;
    for (const auto& [name, value] : headers_) {
      if (name.len == 0) continue;
      r.headers.emplace_back(Str(name), value.len > 0 ? Value(value) : std::string());
      scanned_to = std::max(scanned_to, std::max(name.off + name.len, value.off + value.len));
    }
    // A header block refused for its size stops parsing at the limit, often before the
    // Authorization line that says which service the request is for (clients sign last); when
    // the rest of the block was read already, that line is picked out of the raw bytes.
    if (r.Header("authorization") == nullptr && scanned_to < data_end_) {
      std::string_view rest(buf_ + scanned_to, data_end_ - scanned_to);
      size_t end_of_head = rest.find("\r\n\r\n");
      if (end_of_head != std::string_view::npos) rest = rest.substr(0, end_of_head);
      for (size_t at = rest.find('\n'); at != std::string_view::npos; at = rest.find('\n', at + 1)) {
        constexpr std::string_view kName = "authorization:";
        if (rest.size() - at - 1 < kName.size() || !EqualsIgnoreCase(rest.substr(at + 1, kName.size()), kName)) continue;
        std::string_view value = rest.substr(at + 1 + kName.size());
        value = value.substr(0, std::min(value.find('\r'), size_t{1024}));
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        r.headers.emplace_back("Authorization", std::string(value));
        break;
      }
    }
    return r;
  }

  // --- writing -----------------------------------------------------------------------------

  void QueueError(int status, const std::string& message) {
    const bool formatted = server_ != nullptr && server_->error_formatter != nullptr;
    HttpRequest partial;
    if (formatted) partial = PartialRequest();  // before the message state is reset
    ReadStop();
    in_message_ = false;
    final_queued_ = true;
    SetTimer(TimerMode::kNone);
    auto p = std::make_shared<Pending>();
    p->conn = this;
    p->answered = true;
    p->keep_alive = false;
    if (formatted) {
      p->response = server_->error_formatter(partial, status, message);
      p->response.status = status;  // the formatter picks the shape, never the outcome
    } else {
      p->response = JsonResponse(status, ErrorBody(message));
    }
    queue_.push_back(std::move(p));
    log::Debug("http_request_rejected", {{"status", status}, {"message", message}, {"remote", remote_addr_}});
  }

  void Detach(Pending& p) {
    p.conn = nullptr;
    if (p.counted) {
      p.counted = false;
      if (server_ != nullptr) --server_->inflight;
    }
  }

  void Serialize(Pending& p, bool last, std::string& head) {
    HttpResponse& r = p.response;
    head.reserve(160 + r.headers.size() * 48);
    head.append("HTTP/1.1 ");
    AppendNumber(head, static_cast<uint64_t>(r.status));
    head.push_back(' ');
    head.append(ReasonPhrase(r.status));
    head.append("\r\n");
    bool has_server = false;
    for (const auto& [name, value] : r.headers) {
      if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Date") || EqualsIgnoreCase(name, "Connection") ||
          EqualsIgnoreCase(name, "Transfer-Encoding")) {
        continue;
      }
      if (EqualsIgnoreCase(name, "Server")) has_server = true;
      head.append(name);
      head.append(": ");
      head.append(value);
      head.append("\r\n");
    }
    if (!has_server && !server_->server_name.empty()) {
      head.append("Server: ");
      head.append(server_->server_name);
      head.append("\r\n");
    }
    head.append(server_->DateLine());
    const bool no_body_status = (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304;
    if (!no_body_status) {
      head.append("Content-Length: ");
      AppendNumber(head, r.body.size());
      head.append("\r\n");
    }
    if (last) {
      head.append("Connection: close\r\n");
    } else if (p.http10) {
      head.append("Connection: keep-alive\r\n");
    }
    head.append("\r\n");
    if (no_body_status || p.head) r.body.clear();
  }

  void Flush() {
    if (corked_ || closing_ || lingering_) return;
    bool wrote_last = false;
    while (!wrote_last && !queue_.empty() && queue_.front()->answered) {
      std::shared_ptr<Pending> batch[kMaxBatch];
      std::string heads[kMaxBatch];
      uv_buf_t bufs[kMaxBatch * 2];
      size_t n = 0, nbufs = 0, total = 0;
      while (n < kMaxBatch && !queue_.empty() && queue_.front()->answered) {
        std::shared_ptr<Pending> p = std::move(queue_.front());
        queue_.pop_front();
        const bool last = !p->keep_alive || (final_queued_ && queue_.empty() && !in_message_);
        Serialize(*p, last, heads[n]);
        p->conn = nullptr;  // answered; Send() on it again is a no-op
        bufs[nbufs++] = uv_buf_init(heads[n].data(), static_cast<unsigned>(heads[n].size()));
        total += heads[n].size();
        if (!p->response.body.empty()) {
          bufs[nbufs++] = uv_buf_init(p->response.body.data(), static_cast<unsigned>(p->response.body.size()));
          total += p->response.body.size();
        }
        batch[n++] = std::move(p);
        if (last) {
          wrote_last = true;
          break;
        }
      }
      if (!WriteBatch(bufs, nbufs, total, heads, batch, n)) return;  // closed on error
    }
    if (wrote_last) {
      final_queued_ = true;
      ReadStop();
      BeginLingerClose();
      return;
    }
    if (final_queued_ && queue_.empty() && !in_message_) {
      // EOF or shutdown with the queue now empty and nothing marked last (e.g. after Drain()).
      BeginLingerClose();
      return;
    }
    if (paused_ && queue_.size() < server_->limits.max_pipelined) server_->ScheduleResume(this);
    if (queue_.empty() && !in_message_ && outstanding_writes_ == 0 && !paused_) SetTimer(TimerMode::kIdle);
  }

  // Writes the gathered buffers: uv_try_write first, uv_write for the rest. False if closed.
  bool WriteBatch(uv_buf_t* bufs, size_t nbufs, size_t total, std::string* heads, std::shared_ptr<Pending>* batch,
                  size_t n) {
    if (tls_) {
      // Small pieces are joined first so that a response becomes one TLS record, not one
      // record per header block and body.
      std::string joined;
      if (nbufs > 1 && total <= 16 * 1024) {
        joined.reserve(total);
        for (size_t i = 0; i < nbufs; ++i) joined.append(bufs[i].base, bufs[i].len);
        if (!tls_->Write(joined.data(), joined.size())) return TlsWriteFailed();
      } else {
        for (size_t i = 0; i < nbufs; ++i) {
          if (!tls_->Write(bufs[i].base, bufs[i].len)) return TlsWriteFailed();
        }
      }
      return SendTlsOutput();
    }
    int written = 0;
    if (outstanding_writes_ == 0) {
      written = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, static_cast<unsigned>(nbufs));
      if (written < 0 && written != UV_EAGAIN && written != UV_ENOSYS) {
        CloseNow();
        return false;
      }
      if (written < 0) written = 0;
    }
    if (static_cast<size_t>(written) == total) return true;
    // Queue what is left, owning the bytes (moved strings may change address, so the uv_bufs
    // are rebuilt from the owned copies).
    auto* w = new WriteReq;
    w->req.data = this;
    w->owned.reserve(nbufs);
    for (size_t i = 0; i < n; ++i) {
      w->owned.push_back(std::move(heads[i]));
      if (!batch[i]->response.body.empty()) w->owned.push_back(std::move(batch[i]->response.body));
    }
    std::vector<uv_buf_t> rest;
    rest.reserve(w->owned.size());
    size_t skip = static_cast<size_t>(written);
    for (auto& s : w->owned) {
      if (skip >= s.size()) {
        skip -= s.size();
        continue;
      }
      rest.push_back(uv_buf_init(s.data() + skip, static_cast<unsigned>(s.size() - skip)));
      skip = 0;
    }
    ++outstanding_writes_;
    if (timer_mode_ == TimerMode::kNone) SetTimer(TimerMode::kWrite);
    int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), rest.data(), static_cast<unsigned>(rest.size()),
                      OnWritten);
    if (rc != 0) {
      --outstanding_writes_;
      delete w;
      CloseNow();
      return false;
    }
    return true;
  }

  bool TlsWriteFailed() {
    log::Debug("tls_write_failed", {{"error", tls_->error()}, {"remote", remote_addr_}});
    CloseNow();
    return false;
  }

  void WriteStatic(const char* text) {
    if (tls_) {
      if (tls_->Write(text, strlen(text))) {
        SendTlsOutput();
      } else {
        TlsWriteFailed();
      }
      return;
    }
    uv_buf_t b = uv_buf_init(const_cast<char*>(text), static_cast<unsigned>(strlen(text)));
    int written = 0;
    if (outstanding_writes_ == 0) {
      written = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1);
      if (written < 0) written = 0;
      if (static_cast<size_t>(written) == b.len) return;
    }
    auto* w = new WriteReq;
    w->req.data = this;
    b.base += written;
    b.len -= static_cast<size_t>(written);
    ++outstanding_writes_;
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, OnWritten) != 0) {
      --outstanding_writes_;
      delete w;
    }
  }

  static void OnWritten(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto* c = static_cast<Connection*>(req->data);
    delete w;
    --c->outstanding_writes_;
    if (c->closing_) return;
    if (status < 0) {
      c->CloseNow();
      return;
    }
    if (c->timer_mode_ == TimerMode::kWrite) {
      // Progress: the stall deadline (body_timeout_ms) restarts while writes remain queued.
      c->timer_mode_ = TimerMode::kNone;
      if (c->outstanding_writes_ > 0) c->SetTimer(TimerMode::kWrite);
    }
    if (c->queue_.empty() && !c->in_message_ && c->outstanding_writes_ == 0 && !c->final_queued_ && !c->paused_) {
      c->SetTimer(TimerMode::kIdle);
    }
  }

  // Half-closes after everything queued is written, then drains input until EOF or a short
  // timeout, then closes.
  void BeginLingerClose() {
    if (lingering_ || closing_) return;
    lingering_ = true;
    ReadStop();
    SetTimer(TimerMode::kLinger);
    if (tls_) {
      tls_->Shutdown();  // close_notify, queued ahead of the FIN
      if (!SendTlsOutput()) return;
    }
    shutdown_req_.data = this;
    if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), OnShutdown) != 0) {
      CloseNow();
    }
  }

  static void OnShutdown(uv_shutdown_t* req, int status) {
    auto* c = static_cast<Connection*>(req->data);
    if (c->closing_) return;
    if (status < 0 || c->peer_eof_) {
      c->CloseNow();
      return;
    }
    c->data_end_ = c->parse_pos_ = 0;
    c->ReadStart();
  }

  // --- timers ------------------------------------------------------------------------------

  // Deadlines are kept lazily: the uv timer is only re-armed when the new deadline is earlier
  // than the one it is armed for; when it fires early it re-arms for the remainder. Most
  // requests then cost one timer-heap operation instead of three.
  void SetTimer(TimerMode mode) {
    if (mode == timer_mode_ && mode != TimerMode::kHeaders && mode != TimerMode::kIdle) return;
    timer_mode_ = mode;
    uint64_t ms = 0;
    const HttpLimits& l = server_->limits;
    switch (mode) {
      case TimerMode::kNone: return;  // an armed timer finds nothing to do
      case TimerMode::kFirstByte: ms = l.header_timeout_ms; break;
      case TimerMode::kHeaders: ms = l.header_timeout_ms; break;
      case TimerMode::kBody: ms = l.body_timeout_ms; break;
      case TimerMode::kIdle: ms = l.keepalive_timeout_ms; break;
      case TimerMode::kWrite: ms = l.body_timeout_ms; break;
      case TimerMode::kLinger: ms = kLingerMs; break;
    }
    const uint64_t now = uv_now(server_->loop);
    deadline_ = now + ms;
    if (armed_for_ != 0 && armed_for_ <= deadline_) return;
    armed_for_ = deadline_;
    uv_timer_start(&timer_, OnTimer, ms, 0);
  }

  static void OnTimer(uv_timer_t* t) {
    auto* c = static_cast<Connection*>(t->data);
    c->armed_for_ = 0;
    if (c->closing_ || c->timer_mode_ == TimerMode::kNone) return;
    const uint64_t now = uv_now(c->server_->loop);
    if (now < c->deadline_) {
      c->armed_for_ = c->deadline_;
      uv_timer_start(t, OnTimer, c->deadline_ - now, 0);
      return;
    }
    TimerMode mode = c->timer_mode_;
    c->timer_mode_ = TimerMode::kNone;
    switch (mode) {
      case TimerMode::kHeaders:
        c->QueueError(408, "request headers not received within " + std::to_string(c->server_->limits.header_timeout_ms) +
                               " ms");
        c->Flush();
        break;
      case TimerMode::kBody:
        c->QueueError(408, "request body not received within " + std::to_string(c->server_->limits.body_timeout_ms) +
                               " ms");
        c->Flush();
        break;
      case TimerMode::kFirstByte:
      case TimerMode::kIdle:
        if (c->queue_.empty() && !c->in_message_ && c->outstanding_writes_ == 0) {
          c->CloseNow();
        }
        break;
      case TimerMode::kWrite:  // the client stopped reading our responses
      case TimerMode::kLinger:
        c->CloseNow();
        break;
      case TimerMode::kNone:
        break;
    }
  }

  // --- teardown ----------------------------------------------------------------------------

  static void OnHandleClosed(uv_handle_t* h) {
    auto* c = static_cast<Connection*>(h->data);
    if (--c->handles_open_ > 0) return;
    if (c->server_ != nullptr) {
      if (c->buf_ != nullptr) c->server_->GiveBuffer(c->buf_);
      c->server_->Unlink(c);
    } else {
      delete[] c->buf_;
    }
    delete c;
  }

  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_;
  std::unique_ptr<TlsSession> tls_;
  int handles_open_ = 2;
  llhttp_t parser_;

  char* buf_ = nullptr;
  size_t data_end_ = 0;    // bytes in buf_
  size_t parse_pos_ = 0;   // first byte not yet given to llhttp

  // The message being parsed: views into buf_ until the header block is complete.
  HttpRequest req_;
  Span url_;
  std::vector<std::pair<Span, Span>> headers_;
  bool last_was_value_ = true;
  size_t keep_from_ = SIZE_MAX;  // first buffer offset a view refers to
  size_t header_bytes_ = 0;
  bool in_message_ = false;
  bool headers_done_ = false;
  int fail_status_ = 0;
  std::string fail_message_;

  std::deque<std::shared_ptr<Pending>> queue_;
  size_t outstanding_writes_ = 0;
  std::string remote_addr_;
  uint16_t remote_port_ = 0;
  TimerMode timer_mode_ = TimerMode::kNone;
  uint64_t deadline_ = 0;   // loop time (ms) when the current mode expires
  uint64_t armed_for_ = 0;  // loop time the uv timer is armed for; 0 when not armed

  bool reading_ = false;
  bool corked_ = false;         // inside llhttp_execute: responses are gathered, written after
  bool paused_ = false;         // max_pipelined reached; parsing resumes when answers go out
  bool pipeline_full_ = false;
  bool final_queued_ = false;   // the connection ends after the last queued response
  bool draining_ = false;       // server shutdown in progress
  bool lingering_ = false;
  bool peer_eof_ = false;
  bool closing_ = false;
  bool client_counted_ = false;  // holds a slot in server_->per_client
};

const llhttp_settings_t& Connection::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = Trampoline<&Connection::OnMessageBegin>;
    s.on_url = Trampoline<&Connection::OnUrl, const char*, size_t>;
    s.on_header_field = Trampoline<&Connection::OnHeaderField, const char*, size_t>;
    s.on_header_value = Trampoline<&Connection::OnHeaderValue, const char*, size_t>;
    s.on_headers_complete = Trampoline<&Connection::OnHeadersComplete>;
    s.on_body = Trampoline<&Connection::OnBody, const char*, size_t>;
    s.on_message_complete = Trampoline<&Connection::OnMessageComplete>;
    return s;
  }();
  return settings;
}

void Pending::Send(HttpResponse r) {
  if (answered) return;
  answered = true;
  if (conn == nullptr) return;
  response = std::move(r);
  conn->OnSend(this);
}

}  // namespace

struct HttpServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

// --- ServerCore ----------------------------------------------------------------------

ServerCore::~ServerCore() {
  // Connections still waiting for their close callbacks must not reach back into us.
  for (Connection* c = conns_head; c != nullptr; c = c->next) c->server_ = nullptr;
  if (listener != nullptr) listener->data = nullptr;
  for (char* b : free_buffers) delete[] b;
}

void ServerCore::Unlink(Connection* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (conns_head == c) conns_head = c->next;
  MaybeFinishShutdown();
}

void ServerCore::MaybeFinishShutdown() {
  if (!shutting_down || conns_head != nullptr || listener != nullptr || !shutdown_done) return;
  auto done = std::move(shutdown_done);
  shutdown_done = nullptr;
  done();
}

void ServerCore::ScheduleResume(Connection* c) {
  if (std::find(resume_list.begin(), resume_list.end(), c) != resume_list.end()) return;
  resume_list.push_back(c);
  if (!idle) {
    // uv_idle_init only links the handle into the loop: it has no failure path.
    if (idle.Init(loop, uv_idle_init) != 0) std::abort();
    idle->data = this;
  }
  uv_idle_start(idle.get(), OnIdle);
}

void ServerCore::OnIdle(uv_idle_t* h) {
  auto* self = static_cast<ServerCore*>(h->data);
  uv_idle_stop(h);
  if (self == nullptr) return;
  std::vector<Connection*> list;
  list.swap(self->resume_list);
  for (Connection* c : list) c->Resume();
}

void ServerCore::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<ServerCore*>(server->data);
  if (self == nullptr || status < 0) return;
  auto* c = new Connection(self);
  // Linked before Init so that the close callbacks always find it.
  c->next = self->conns_head;
  if (self->conns_head != nullptr) self->conns_head->prev = c;
  self->conns_head = c;
  ++self->open_count;
  if (!c->Init(server) || self->open_count > self->limits.max_connections || self->shutting_down) {
    c->CloseNow();
    return;
  }
  if (!c->CountClient()) {
    self->NoteRefusedClient(c->remote_addr());
    c->RefuseTooMany();
    return;
  }
  c->StartReading();
}

void ServerCore::NoteRefusedClient(const std::string& remote) {
  ++refused_per_client;
  ++refused_unlogged;
  const uint64_t now = uv_now(loop);
  if (refused_logged_at_ms != 0 && now - refused_logged_at_ms < 1000) return;
  log::Warn("connections_per_client_refused", {{"remote", remote},
                                               {"limit", limits.max_connections_per_client},
                                               {"refused", refused_unlogged},
                                               {"refused_total", refused_per_client}});
  refused_logged_at_ms = now == 0 ? 1 : now;
  refused_unlogged = 0;
}

void ServerCore::OnListenerClosed(uv_handle_t* h) {
  auto* self = static_cast<ServerCore*>(h->data);
  delete reinterpret_cast<uv_tcp_t*>(h);
  if (self == nullptr) return;
  self->listener = nullptr;
  self->MaybeFinishShutdown();
}

Status ServerCore::StartListening() {
  int rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener), kBacklog, OnConnection);
  if (rc != 0) return Status::Error(Code::kUnavailable, std::string("listen: ") + uv_strerror(rc));
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) bound_port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) bound_port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  return Status::Ok();
}

// --- HttpServer ----------------------------------------------------------------------------

HttpServer::HttpServer(uv_loop_t* loop, HttpLimits limits, HttpHandler handler, std::string server_name)
    : impl_(std::make_unique<Impl>(loop, limits, std::move(handler), std::move(server_name))) {}

HttpServer::~HttpServer() { Close(); }

Status HttpServer::ListenFd(int fd) {
  if (impl_->listener != nullptr) return Status::Invalid("HttpServer already listening");
  impl_->listener = new uv_tcp_t;
  uv_tcp_init(impl_->loop, impl_->listener);
  impl_->listener->data = static_cast<ServerCore*>(impl_.get());
  int rc = uv_tcp_open(impl_->listener, fd);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(impl_->listener), Impl::OnListenerClosed);
    impl_->listener = nullptr;
    return Status::Error(Code::kInvalidArgument, std::string("uv_tcp_open: ") + uv_strerror(rc));
  }
  Status st = impl_->StartListening();
  if (!st.ok()) {
    impl_->listener->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(impl_->listener), Impl::OnListenerClosed);
    impl_->listener = nullptr;
  }
  return st;
}

Status HttpServer::Listen(const std::string& host, uint16_t port) {
  if (impl_->listener != nullptr) return Status::Invalid("HttpServer already listening");
  struct sockaddr_storage ss;
  int rc;
  // Numeric addresses only (no resolver on the loop thread); "localhost", "" and "[v6]" are
  // accepted as the spellings people use in configs.
  std::string h = host;
  if (h.empty()) h = "0.0.0.0";
  if (h == "localhost") h = "127.0.0.1";
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.find(':') != std::string::npos) {
    rc = uv_ip6_addr(h.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss));
  } else {
    rc = uv_ip4_addr(h.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss));
  }
  if (rc != 0) return Status::Invalid("bad listen address '" + host + "': " + uv_strerror(rc));
  impl_->listener = new uv_tcp_t;
  uv_tcp_init(impl_->loop, impl_->listener);
  impl_->listener->data = static_cast<ServerCore*>(impl_.get());
  rc = uv_tcp_bind(impl_->listener, reinterpret_cast<const sockaddr*>(&ss), 0);
  Status st;
  if (rc != 0) {
    st = Status::Error(Code::kUnavailable, "bind " + host + ":" + std::to_string(port) + ": " + uv_strerror(rc));
  } else {
    st = impl_->StartListening();
  }
  if (!st.ok()) {
    impl_->listener->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(impl_->listener), Impl::OnListenerClosed);
    impl_->listener = nullptr;
  }
  return st;
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::SetTls(const TlsContext* tls) { impl_->tls = tls; }

void HttpServer::SetErrorFormatter(HttpErrorFormatter formatter) { impl_->error_formatter = std::move(formatter); }

void HttpServer::Shutdown(std::function<void()> done) {
  Impl& s = *impl_;
  if (s.closed) {
    if (done) done();
    return;
  }
  s.shutting_down = true;
  s.shutdown_done = std::move(done);
  if (s.listener != nullptr && !s.listener_closing) {
    s.listener_closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(s.listener), Impl::OnListenerClosed);
  }
  // Drain may close connections, which unlinks them only in a later close callback.
  for (Connection* c = s.conns_head; c != nullptr; c = c->next) {
    if (!c->closing()) c->Drain();
  }
  s.MaybeFinishShutdown();
}

void HttpServer::Close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.closed = true;
  if (s.listener != nullptr && !s.listener_closing) {
    s.listener_closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(s.listener), Impl::OnListenerClosed);
  }
  for (Connection* c = s.conns_head; c != nullptr; c = c->next) c->CloseNow();
  s.idle.Close();
  s.resume_list.clear();
}

size_t HttpServer::open_connections() const { return impl_->open_count; }
size_t HttpServer::inflight_requests() const { return impl_->inflight; }
uint64_t HttpServer::refused_connections() const { return impl_->refused_per_client; }

// --- helpers -------------------------------------------------------------------------------

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

HttpResponse JsonResponse(int status, const std::string& json_body, HeaderList extra) {
  HttpResponse r;
  r.status = status;
  r.headers.reserve(1 + extra.size());
  r.headers.emplace_back("Content-Type", "application/json");
  for (auto& h : extra) r.headers.push_back(std::move(h));
  r.body = json_body;
  return r;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
  }
  if (status >= 100 && status < 200) return "Informational";
  if (status >= 200 && status < 300) return "Success";
  if (status >= 300 && status < 400) return "Redirection";
  if (status >= 400 && status < 500) return "Client Error";
  return "Server Error";
}

std::string PercentEncode(std::string_view in, std::string_view keep) {
  std::string out;
  out.reserve(in.size() * 3);
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_' || c == '.' || c == '~';
    if (unreserved || keep.find(ch) != std::string_view::npos) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      AppendHexByte(out, c, /*upper=*/true);
    }
  }
  return out;
}

std::string PercentDecode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexDigitValue(in[i + 1]), lo = HexDigitValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    if (c == '+' && plus_as_space) {
      out.push_back(' ');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace geysir::net
