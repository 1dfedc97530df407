// The gateway's mapping of a handler's result to an HTTP response (gateway/result.h): the
// payload is whatever the function returned, so every byte of it is hostile. Each of the
// three mappings (function URL / HTTP API payload 2.0, REST payload 1.0, the invoke outcome
// wrapper) sees the same payload under options the first byte picks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/targets/fuzz_input.h"
#include "gateway/result.h"

namespace {

void CheckResponse(const geysir::net::HttpResponse& r) {
  if (r.status < 100 || r.status > 599) __builtin_trap();
  for (const auto& [name, value] : r.headers) {
    // A header the function chose must never split the response.
    if (name.find_first_of("\r\n") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir;
  fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  std::string accept(in.Line());
  const std::string payload(in.Rest());

  auto url = gateway::MapHandlerOutput(payload);
  if (url.ok()) CheckResponse(*url);

  static const std::vector<std::string> kBinaryTypes = {"image/png", "*/*", "application/octet-stream"};
  gateway::ApiOutputOptions options;
  options.always_decode = flags & 1;
  options.http_api = flags & 2;
  options.binary_types = (flags & 4) ? &kBinaryTypes : nullptr;
  options.accept = accept;
  auto rest = gateway::MapProxyOutputV1(payload, options);
  if (rest.ok()) CheckResponse(*rest);

  proto::InvokeResult result;
  result.outcome = static_cast<proto::InvokeOutcome>((flags >> 4) % 6);  // every InvokeOutcome
  result.error_type = "Runtime.Fuzz";
  std::string problem;
  CheckResponse(gateway::MapInvokeResult(result, payload, &problem));
  CheckResponse(gateway::MapApiResult(result, payload, (flags & 8) ? "1.0" : "2.0", options, &problem));
  return 0;
}
