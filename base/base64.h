// Base64, one implementation for the tree: standard (RFC 4648 section 4: alphabet "+/", '='
// padding) for function URL bodies (gateway), Code.ZipFile, CodeSha256 and X-Amz-Client-Context
// (control); URL-safe without padding (section 5: "-_") for ACME's JSON Web Signatures.
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace geysir {

// Appends the padded encoding of `in` to `out` (one resize, no reallocation per byte).
void AppendBase64(std::string& out, std::string_view in);
// The same as a new string.
std::string Base64Encode(std::string_view in);
// The URL-safe alphabet, no padding (JWS, RFC 7515 section 2).
std::string Base64UrlEncode(std::string_view in);

// Decodes; padding is optional but, when present, must complete the last quantum. nullopt on
// whitespace, any character outside the alphabet, '=' before the end, or an impossible length.
std::optional<std::string> DecodeBase64(std::string_view in);

}  // namespace geysir
