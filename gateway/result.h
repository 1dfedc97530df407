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
// Other outcomes: kUnhandled 502, kTimeout 504, kThrottled 429, kInternal 502 (503 when the
// scheduler is unreachable), each with a short JSON body {"Message": "..."}.
//
// Headers a function may not set are dropped (framing and hop-by-hop headers the server owns:
// Content-Length, Transfer-Encoding, Connection, ...), and so are names that are not HTTP tokens
// and values holding CR, LF or NUL, which would otherwise let a function split the response.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "proto/http_server.h"
#include "proto/messages.h"
#include "proto/status.h"

namespace geysir::gateway {

// The handler's return value (outcome kOk) as an HTTP response, or InvalidArgument naming what
// was wrong with it.
Result<proto::HttpResponse> MapHandlerOutput(std::string_view payload);

// Any outcome to an HTTP response. Malformed handler output becomes 502; `problem` (optional)
// receives the reason so the caller can log it.
proto::HttpResponse MapInvokeResult(const proto::InvokeResult& result, std::string_view payload,
                                    std::string* problem = nullptr);

// {"Message": message} with the given status and Content-Type application/json.
proto::HttpResponse ErrorResponse(int status, std::string_view message);

}  // namespace geysir::gateway
