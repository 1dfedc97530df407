// The gateway's Lambda events (gateway/event.h): every part of a client's request is written
// into a JSON document by hand on the hot path, so the invariant checked here is the one a
// handler relies on: whatever the request held, the event is one valid JSON object.
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz/targets/request_builder.h"
#include "gateway/event.h"

namespace {

void CheckEvent(const std::string& event) {
  auto parsed = nlohmann::json::parse(event, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir;
  fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  net::HttpRequest request = fuzz::RequestFrom(in);

  gateway::NameValueList path_parameters = {{"proxy", request.path}};
  std::map<std::string, std::string> stage_variables = {{"stage", "fuzz"}};
  gateway::EventContext ctx;
  ctx.url_id = "abcdefghijklmnopqrstuvwxyz012345";
  ctx.domain_name = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.localhost";
  ctx.request_id = "00000000-0000-4000-8000-000000000000";
  ctx.time_epoch_ms = request.received_at_ms;
  ctx.forwarded_port = (flags & 1) ? 8080 : 0;
  if (flags & 2) {
    ctx.path_parameters = &path_parameters;
    ctx.stage_variables = &stage_variables;
  }
  CheckEvent(gateway::BuildFunctionUrlEvent(request, ctx));

  gateway::RestEventContext rest;
  rest.base = ctx;
  rest.resource_path = "/{proxy+}";
  rest.resource_id = "res123";
  rest.path = request.path;
  rest.binary_body = flags & 4;
  rest.version_field = flags & 8;
  CheckEvent(gateway::BuildRestEvent(request, rest));
  return 0;
}
