// geysir-worker: the template launcher. Started by the scheduler (worker/launcher.h) with the
// descriptors of docs/wire-formats.md, it parses --spec, builds the sandbox and exec's the
// language runtime. Everything it does is in worker/sandbox/contain.cpp.
#include <cstring>
#include <string>

#include "worker/launcher.h"
#include "worker/sandbox/contain.h"
#include "worker/template_spec.h"

int main(int argc, char** argv) {
  using namespace geysir;
  using namespace geysir::worker;
  const char* spec_text = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--spec") == 0 && i + 1 < argc) {
      spec_text = argv[++i];
    } else if (std::strncmp(argv[i], "--spec=", 7) == 0) {
      spec_text = argv[i] + 7;
    } else {
      sandbox::Fail(kStageParseSpec, Status::Invalid(std::string("unknown argument ") + argv[i] +
                                                     " (usage: geysir-worker --spec '<json>')"));
    }
  }
  if (spec_text == nullptr) sandbox::Fail(kStageParseSpec, Status::Invalid("usage: geysir-worker --spec '<json>'"));
  Result<TemplateSpec> spec = TemplateSpecFromJson(spec_text);
  if (!spec.ok()) sandbox::Fail(kStageParseSpec, spec.status());
  sandbox::Contain(*spec);
}
