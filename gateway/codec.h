// Small text codecs the gateway needs on its hot path: JSON string escaping (with UTF-8
// repair), base64, ASCII case folding and the content-type test that decides whether a request
// body travels as text or base64.
//
// They append to a caller's string so an event is built in one buffer without temporaries.
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/base64.h"
#include "base/strings.h"
#include "net/http_server.h"

namespace geysir::gateway {

// Appends `in` as a quoted JSON string. Invalid UTF-8 sequences become U+FFFD: function input
// is untrusted and a JSON document must be valid UTF-8 (nlohmann and Python's json both refuse
// it otherwise).
void AppendJsonString(std::string& out, std::string_view in);

// True when `in` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view in);

// Base64 (base/base64.h) and ASCII case folding (base/strings.h) are base's: one
// implementation serves the whole tree.

// Decodes %XX and, in a query, '+' as a space; malformed escapes are kept literally. One
// implementation serves the whole tree: the HTTP server's.
using net::PercentDecode;

// AWS sends a function URL request body as a plain string only for textual media types:
// text/*, application/json, application/xml and application/javascript (checked against AWS by
// others; form-urlencoded bodies and requests without a Content-Type arrive base64-encoded).
bool IsTextualContentType(std::string_view content_type);

}  // namespace geysir::gateway
