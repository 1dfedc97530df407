// The pure parts of the sandbox: the environment, the spec's JSON, the runtime command line.
#include <catch2/catch.hpp>

#include "template_harness.h"
#include "worker/sandbox/contain.h"
#include "worker/template_spec.h"

using namespace geysir;
using namespace geysir::worker;

TEST_CASE("the environment is Lambda's plus the function's, reserved names kept", "[environment]") {
  TemplateSpec spec = worker::testing::MakeSpec("/code/abc", "app.handler");
  spec.function.environment = {{"A", "1"}, {"_HANDLER", "evil.x"}, {"LAMBDA_TASK_ROOT", "/"}, {"bad name", "x"},
                               {"PATH", "/opt/bin"}};
  time_t t = 1795000000;  // 2026-11-18 UTC
  auto env = sandbox::BuildEnvironment(spec, t);
  auto has = [&](const std::string& kv) { return std::find(env.begin(), env.end(), kv) != env.end(); };
  CHECK(has("A=1"));
  CHECK(has("_HANDLER=app.handler"));
  CHECK(has("LAMBDA_TASK_ROOT=/code/abc"));
  CHECK(has("PATH=/opt/bin"));
  CHECK(has("AWS_LAMBDA_LOG_STREAM_NAME=2026/11/18/[$LATEST]t0123"));
  CHECK(has("AWS_EXECUTION_ENV=AWS_Lambda_python3.11"));
  CHECK(has("HOME=/tmp"));
  for (const auto& kv : env) CHECK(kv.rfind("bad name", 0) != 0);
  CHECK(sandbox::IsReservedEnvironmentName("AWS_SECRET_ACCESS_KEY"));
  CHECK_FALSE(sandbox::IsReservedEnvironmentName("TZ"));
}

TEST_CASE("the runtime sees the execution mode of the typed field, not the map's", "[environment]") {
  TemplateSpec spec = worker::testing::MakeSpec("/code/abc", "app.handler");
  spec.function.environment = {{"GEYSIR_EXECUTION_MODE", "reuse"}};
  auto has = [](const std::vector<std::string>& env, const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  CHECK(has(sandbox::BuildEnvironment(spec, 1795000000), "GEYSIR_EXECUTION_MODE=per-request"));
  spec.function.execution_mode = proto::ExecutionMode::kReuse;
  CHECK(has(sandbox::BuildEnvironment(spec, 1795000000), "GEYSIR_EXECUTION_MODE=reuse"));
  auto back = TemplateSpecFromJson(TemplateSpecToJson(spec));
  REQUIRE(back.ok());
  CHECK(back->function.execution_mode == proto::ExecutionMode::kReuse);
}

TEST_CASE("the spec survives its JSON round trip", "[environment]") {
  TemplateSpec spec = worker::testing::MakeSpec("/code/abc", "pkg.mod.fn");
  spec.uid = 200001;
  spec.gid = 200001;
  spec.cgroup_dir = "/sys/fs/cgroup/geysir/x";
  spec.function.environment = {{"K", "V"}};
  auto back = TemplateSpecFromJson(TemplateSpecToJson(spec));
  REQUIRE(back.ok());
  CHECK(back->function.handler == "pkg.mod.fn");
  CHECK(back->function.environment.at("K") == "V");
  CHECK(back->uid == 200001);
  CHECK(back->cgroup_dir == spec.cgroup_dir);
  CHECK(back->runtime_dir == spec.runtime_dir);
  CHECK_FALSE(TemplateSpecFromJson("[]").ok());
  CHECK_FALSE(TemplateSpecFromJson(R"({"function":{"name":"x","handler":"a.b","code_dir":"rel"},"runtime_dir":"/r"})").ok());
  CHECK_FALSE(TemplateSpecFromJson(R"({"function":{"name":5}})").ok());
}

TEST_CASE("the runtime command line keeps PYTHONPATH but not the user site", "[environment]") {
  auto argv = sandbox::RuntimeArgv(worker::testing::MakeSpec("/code", "a.b"));
  REQUIRE(argv.size() == 6);
  CHECK(argv[0] == "/usr/bin/python3.11");
  CHECK(argv[2] == "-s");
  CHECK(std::find(argv.begin(), argv.end(), "-E") == argv.end());
  CHECK(std::find(argv.begin(), argv.end(), "-I") == argv.end());
  CHECK(argv.back() == GEYSIR_BINARY_DIR "/share/geysir/runtime/python/bootstrap.py");
}
