// S3's aws-chunked upload encoding (control/services/s3/s3_chunked.h): the CLI and SDKs stream
// uploads this way, each chunk with its own signature. The decoder is fed the body unsigned
// and signed; it must either decode or return an error, never read past the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/services/s3/s3_chunked.h"
#include "fuzz/targets/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir::control::s3;
  geysir::fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const std::string body(in.Rest());
  static const ChunkSigning signing = {
      .signing_key = SigningKey("secret", "20231114", "us-east-1", "s3"),
      .amz_date = "20231114T221320Z",
      .scope = "20231114/us-east-1/s3/aws4_request",
      .seed_signature = std::string(64, 'a'),
  };
  DecodedBody out;
  (void)DecodeAwsChunked(body, (flags & 1) ? &signing : nullptr, flags & 2, &out);
  if (out.data.size() > body.size()) __builtin_trap();  // decoding never grows the data
  return 0;
}
