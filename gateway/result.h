// Mapping an invocation's result back to HTTP, as AWS does for function URLs.
//
// Outcome kOk: the payload is the handler's return value as JSON.
//   - A JSON object with a "statusCode" is a response object: statusCode (an integer 100..599),
//     headers (an object of scalars), cookies (an array of strings, one Set-Cookie each), body
//     (a string; base64-decoded when isBase64Encoded is true). Content-Type defaults to
//     application/json. Payload format 2.0 has no multiValueHeaders; it is ignored, as AWS does.
//   - Any other JSON value (an object without statusCode, a string, a number, a list, null) is
//     sent verbatim as a 200 application/json body: a returned "Hello" reaches the client with
//     its quotes, exactly as AWS's documentation shows.
//   - A response object we cannot honour (statusCode not an integer or out of range, bad base64,
//     cookies not strings) is the function's fault: 502.
// Other outcomes: kUnhandled 502, kTimeout 504, kThrottled 429, kInternal 502, kUnavailable (the
// scheduler is unreachable) 503, each with a short JSON body {"Message": "..."}.
//
// Headers a function may not set are dropped (framing and hop-by-hop headers the server owns:
// Content-Length, Transfer-Encoding, Connection, ...), and so are names that are not HTTP tokens
// and values holding CR, LF or NUL, which would otherwise let a function split the response.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "net/http_server.h"
#include "proto/messages.h"
#include "base/status.h"

namespace geysir::gateway {

// The handler's return value (outcome kOk) as an HTTP response, or InvalidArgument naming what
// was wrong with it.
Result<net::HttpResponse> MapHandlerOutput(std::string_view payload);

// Any outcome to an HTTP response. Malformed handler output becomes 502; `problem` (optional)
// receives the reason so the caller can log it.
net::HttpResponse MapInvokeResult(const proto::InvokeResult& result, std::string_view payload,
                                    std::string* problem = nullptr);

// {"Message": message} with the given status and Content-Type application/json.
net::HttpResponse ErrorResponse(int status, std::string_view message);

// ---- API Gateway (REST and HTTP APIs) ----
//
// Payload format 1.0 output (REST APIs, and HTTP API integrations with format 1.0): a JSON
// object with statusCode (required), headers, multiValueHeaders (merged with headers; a name in
// both takes multiValueHeaders' values, as API Gateway does — the way to send several
// Set-Cookie headers), body (a string or null) and isBase64Encoded. Anything else is the
// function's fault: 502 {"message":"Internal server error"}.
//
// A base64 body is decoded when `decode_base64` is true (HTTP APIs always; REST APIs when the
// request's Accept or the response's Content-Type matches the API's binaryMediaTypes, decided
// by the caller through `binary_types`/`accept`); otherwise it is sent as the base64 text, as a
// REST API without binary media types does.
struct ApiOutputOptions {
  bool always_decode = false;                           // HTTP APIs
  bool http_api = false;  // HTTP APIs word their errors "Internal Server Error", REST APIs "Internal server error"
  const std::vector<std::string>* binary_types = nullptr;  // REST APIs' binaryMediaTypes
  std::string_view accept;                              // the request's Accept header
};
Result<net::HttpResponse> MapProxyOutputV1(std::string_view payload, const ApiOutputOptions& options);

// {"message": message}: API Gateway's own error bodies ("Internal server error", "Forbidden",
// "Not Found", "Missing Authentication Token", "Endpoint request timed out").
net::HttpResponse ApiErrorResponse(int status, std::string_view message);

// Any outcome of an API Gateway invocation: kOk through MapProxyOutputV1 (format "1.0") or
// MapHandlerOutput (format "2.0"); errors worded as API Gateway words them: unhandled or
// malformed output 502 "Internal server error", timeout 504 "Endpoint request timed out",
// throttled 429 "Too Many Requests", kUnavailable (the scheduler is unreachable) 503 "Service
// Unavailable".
net::HttpResponse MapApiResult(const proto::InvokeResult& result, std::string_view payload,
                                 std::string_view payload_format, const ApiOutputOptions& options,
                                 std::string* problem = nullptr);

}  // namespace geysir::gateway
