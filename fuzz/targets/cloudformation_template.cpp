// CloudFormation templates (control/services/cloudformation/cloudformation_template.h): CreateStack and
// UpdateStack take a template body (JSON or YAML) from the client, parse it, bind parameters
// and resolve intrinsic functions (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, ...) in every property.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "control/services/cloudformation/cloudformation_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir::control::cfn;
  auto parsed = ParseTemplate(std::string_view(reinterpret_cast<const char*>(data), size),
                              [](std::string_view) { return true; });
  if (!parsed.ok()) return 0;
  auto bound = BindParameters(*parsed, {});
  if (!bound.ok()) return 0;
  ResolveContext ctx;
  ctx.parameters = *bound;
  ctx.pseudo = PseudoParameters("us-east-1", "000000000000", "fuzz", "arn:aws:cloudformation:us-east-1:000000000000:stack/fuzz/1");
  ctx.ref = [](const std::string& id) -> std::optional<std::string> { return "ref-" + id; };
  ctx.get_att = [](const std::string& id, const std::string& attr) -> std::optional<nlohmann::json> {
    return nlohmann::json("att-" + id + "." + attr);
  };
  for (const auto& resource : parsed->resources) {
    auto resolved = Resolve(resource.properties, ctx);
    if (resolved.ok()) (void)resolved->dump();
  }
  auto outputs = Resolve(parsed->outputs, ctx);
  if (outputs.ok()) (void)outputs->dump();
  return 0;
}
