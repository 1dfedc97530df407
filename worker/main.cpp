// geysir-worker: the template launcher. Started by the scheduler (worker/launcher.h) with the
// descriptors of docs/wire-formats.md, it parses --spec, builds the sandbox and exec's the
// language runtime. Everything it does is in worker/sandbox/contain.cpp.
#include <string>

#include "base/flags.h"
#include "worker/launcher.h"
#include "worker/sandbox/contain.h"
#include "worker/template_spec.h"

int main(int argc, char** argv) {
  using namespace geysir;
  using namespace geysir::worker;
  std::string spec_text;
  Flags flags("geysir-worker");
  flags.String("--spec", &spec_text, "JSON", "the template to build (worker/template_spec.h)");
  // Errors go through the launcher's error pipe like every other failed step: the scheduler,
  // not a terminal, reads them.
  if (Status st = flags.Parse(argc, argv); !st.ok()) sandbox::Fail(kStageParseSpec, st);
  if (spec_text.empty()) sandbox::Fail(kStageParseSpec, Status::Invalid("usage: geysir-worker --spec '<json>'"));
  Result<TemplateSpec> spec = TemplateSpecFromJson(spec_text);
  if (!spec.ok()) sandbox::Fail(kStageParseSpec, spec.status());
  sandbox::Contain(*spec);
}
