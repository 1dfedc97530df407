// Signature V4 (net/sigv4.h) as control meets it before anything else: the Authorization
// header or the presigned query of an unauthenticated request is parsed, and a parsed
// credential is verified against a secret. Neither may misbehave on any input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/targets/request_builder.h"
#include "net/sigv4.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir;
  namespace sigv4 = net::sigv4;
  fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  net::HttpRequest request = fuzz::RequestFrom(in);
  constexpr int64_t kNow = 1'700'000'000;  // 2023-11-14T22:13:20Z

  sigv4::VerifyError error;
  if (auto credential = sigv4::ParseCredential(request, &error)) {
    (void)sigv4::Verify(request, *credential, "secret", kNow);
  }

  // The canonical request for the signed headers the client named, both path rules (S3 keeps
  // the path as sent, every other service normalises it), with and without presigning.
  std::vector<std::string> names;
  for (const auto& [name, value] : request.headers) names.push_back(name);
  (void)sigv4::CanonicalRequest(request, names, "UNSIGNED-PAYLOAD", flags & 1, flags & 2);
  return 0;
}
