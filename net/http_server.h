// HttpServer: the HTTP/1.1 server that gateway and control both serve with, on libuv + llhttp.
//
// Behaviour: keep-alive (HTTP/1.1 default, HTTP/1.0 with "Connection: keep-alive"); pipelining
// (requests parsed ahead, responses always written in request order); chunked request bodies
// (de-chunked before the handler sees them); "Expect: 100-continue" answered with 100 before
// the body is read (or 413 at once when Content-Length is over the limit); limits enforced while
// parsing: header block over max_header_bytes -> 431, body over max_body_bytes -> 413, a client
// that is too slow to send its headers or body -> 408, malformed request -> 400; each of these
// error responses closes the connection. Bodies are handed over whole (no streaming yet).
//
// Graceful shutdown: Shutdown() stops accepting, closes idle keep-alive connections, lets
// in-flight requests finish (their responders stay valid), then calls the callback.
//
// Thread safety: everything runs on the loop thread; handlers and HttpResponder::Send must be
// called on that thread.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace geysir::net {

class TlsContext;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;               // "GET"
  std::string target;               // raw request-target: "/a/b?x=1"
  std::string path;                 // target before '?', still percent-encoded
  std::string query;                // target after '?', without it ("" when absent)
  HeaderList headers;               // as received: original case and order, duplicates kept
  std::string body;                 // de-chunked
  int http_major = 1;
  int http_minor = 1;
  std::string remote_addr;          // "127.0.0.1"
  uint16_t remote_port = 0;
  uint64_t received_at_ms = 0;      // wall clock (ms since epoch) when the headers were complete
  bool tls = false;                 // arrived over TLS (SetTls)
  std::string tls_server_name;      // the TLS SNI name, lower-case ("" without TLS or SNI)

  // First header with this name, compared case-insensitively; nullptr if absent.
  const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HeaderList headers;               // Content-Length, Date, Connection are added by the server
  std::string body;
};

// The way back to one request's connection. Valid until Send() is called once; if the client
// went away first, Send() is a no-op and alive() is false. Kept alive by shared ownership so a
// handler may answer long after it returned (for example when the scheduler replies).
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual void Send(HttpResponse response) = 0;
  virtual bool alive() const = 0;
};

using HttpHandler = std::function<void(HttpRequest&& request, std::shared_ptr<HttpResponder> responder)>;

// Shapes the answer to a request the server itself refuses (400 malformed, 408, 413, 431) when
// the default {"message": ...} JSON is not what the client expects. `partial` holds what was
// parsed before the refusal (method, path, query and headers so far; never the body), untrusted
// and possibly empty. The returned status is replaced by `status`.
using HttpErrorFormatter =
    std::function<HttpResponse(const HttpRequest& partial, int status, const std::string& message)>;

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;       // request line + headers
  size_t max_body_bytes = 6 * 1024 * 1024;   // Lambda's synchronous payload limit
  uint32_t header_timeout_ms = 10'000;       // first byte to end of headers
  uint32_t body_timeout_ms = 30'000;         // end of headers to end of body
  uint32_t keepalive_timeout_ms = 60'000;    // idle time between requests
  size_t max_pipelined = 32;                 // parsed-but-unanswered requests per connection
  size_t max_connections = 10'000;
  // Concurrent connections from one client address (0 = no limit); a connection over it is
  // answered 429 and closed without a request being read, and counted (refused_connections()).
  uint32_t max_connections_per_client = 0;
};

class HttpServer {
 public:
  HttpServer(uv_loop_t* loop, HttpLimits limits, HttpHandler handler, std::string server_name = "Geysir");
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on an already-bound TCP socket (the supervisor binds ports and passes them down),
  // or binds host:port itself (port 0 picks a free port; port() tells which).
  Status ListenFd(int fd);
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const;

  // Serves TLS (net/tls.h) on every connection accepted from now on. `tls` is not owned and
  // must outlive the server; its certificates may be replaced at any time.
  void SetTls(const TlsContext* tls);

  // Formats the server's own error responses from now on (see HttpErrorFormatter).
  void SetErrorFormatter(HttpErrorFormatter formatter);

  // Stops accepting and finishes in-flight requests, then calls done (on the loop thread).
  void Shutdown(std::function<void()> done);
  // Closes everything now; the loop must run once more for the close callbacks.
  void Close();

  size_t open_connections() const;
  size_t inflight_requests() const;
  // Connections refused by max_connections_per_client since the server started.
  uint64_t refused_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Helpers for handlers.
HttpResponse JsonResponse(int status, const std::string& json_body, HeaderList extra = {});
std::string_view ReasonPhrase(int status);
// Decodes %XX and (when plus_as_space) '+'; invalid escapes are kept literally.
std::string PercentDecode(std::string_view in, bool plus_as_space);
// RFC 3986 encoding as AWS uses it (SigV4, IAM documents, S3 keys, request paths): unreserved
// bytes (A-Z a-z 0-9 - _ . ~) and those in `keep` stay, every other byte becomes %XX upper-case.
std::string PercentEncode(std::string_view in, std::string_view keep = {});

}  // namespace geysir::net
