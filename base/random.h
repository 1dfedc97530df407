// Random identifiers: request ids, UUIDs, access keys, URL ids, template ids. Every value comes
// from OpenSSL's RAND_bytes (a CSPRNG seeded by getrandom), because several of these are
// secrets (access keys, signed-link ids) and an id that is guessable for one use tends to be
// reused for another.
//
// RAND_bytes fails only when OpenSSL cannot seed itself, which getrandom(2) rules out on every
// kernel Geysir supports; these functions treat that as a broken invariant and abort with a
// message instead of handing out a predictable value.
//
// Thread safety: safe from any thread (OpenSSL's generator is thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace geysir {

// Fills `out` with `size` random bytes.
void RandomBytes(void* out, size_t size);

// `bytes` random bytes as lower-case hex (2 * bytes characters).
std::string RandomHex(size_t bytes);

// A random version 4 UUID, lower-case: "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx".
std::string NewUuid();

// The version 4 UUID text for 128 bits a caller drew itself (a fast per-request generator);
// the version and variant bits are set here.
std::string FormatUuidV4(uint64_t hi, uint64_t lo);

// `n` characters drawn uniformly from `alphabet` (rejection sampling: no character is more
// likely than another). `alphabet` must hold 1 to 256 characters.
std::string RandomString(size_t n, std::string_view alphabet);

}  // namespace geysir
