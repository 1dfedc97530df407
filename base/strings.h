// Small string helpers every folder needs once: ASCII case folding (HTTP header names, SigV4's
// canonical headers, content types) and hexadecimal encoding (SHA-256 digests, ids, escapes).
// ASCII only on purpose: the protocols that use these fold ASCII letters and leave every other
// byte alone, whatever the locale says.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace geysir {

// True when `a` and `b` are equal after folding ASCII letters to lower case.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `in` with ASCII upper-case letters folded to lower case; other bytes unchanged.
std::string AsciiLower(std::string_view in);

// Lower-case hexadecimal digits of each byte: "\x01\xab" -> "01ab".
std::string HexEncode(std::string_view bytes);
// The same for raw memory (digests from OpenSSL).
std::string HexEncode(const unsigned char* bytes, size_t size);
// Appends one byte as two hex digits, upper-case when `upper` (percent-encoding wants it).
void AppendHexByte(std::string& out, unsigned char byte, bool upper = false);

// The value of one hex digit (either case), or -1.
int HexDigitValue(char c);

}  // namespace geysir
