// Standard base64 (RFC 4648 alphabet "+/", '=' padding), one implementation for the tree:
// function URL bodies (gateway), Code.ZipFile and X-Amz-Client-Context (control).
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace geysir {

// Appends the padded encoding of `in` to `out` (one resize, no reallocation per byte).
void AppendBase64(std::string& out, std::string_view in);

// Decodes; padding is optional but, when present, must complete the last quantum. nullopt on
// whitespace, any character outside the alphabet, '=' before the end, or an impossible length.
std::optional<std::string> DecodeBase64(std::string_view in);

}  // namespace geysir
