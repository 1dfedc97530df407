// CloudFormation's template language and stack engine, against a real SQLite database and a
// fake provider that keeps its "objects" in a set, so every test can check that what a stack
// says it made is exactly what exists.
#include <catch2/catch.hpp>

#include <set>

#include "control/aws_error.h"
#include "control/db.h"
#include "control/services/cloudformation/cloudformation_stacks.h"
#include "control/services/cloudformation/cloudformation_template.h"
#include "tests/unit/control/store_test_util.h"

namespace geysir::control::cfn {
namespace {

using nlohmann::json;

// Zappa's own REST API template, verbatim as Zappa generates it for a small app.
const char* kZappaDev =
    R"({"Description":"Automatically generated with Zappa","Resources":{"ANY0":{"Properties":{"ApiKeyRequired":false,"AuthorizationType":"NONE","HttpMethod":"ANY","Integration":{"CacheKeyParameters":[],"CacheNamespace":"none","Credentials":"arn:aws:iam::000000000000:role/tinyapp-dev-ZappaLambdaExecutionRole","IntegrationHttpMethod":"POST","IntegrationResponses":[],"PassthroughBehavior":"NEVER","Type":"AWS_PROXY","Uri":"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:tinyapp-dev/invocations"},"MethodResponses":[],"ResourceId":{"Fn::GetAtt":["Api","RootResourceId"]},"RestApiId":{"Ref":"Api"}},"Type":"AWS::ApiGateway::Method"},"ANY1":{"Properties":{"ApiKeyRequired":false,"AuthorizationType":"NONE","HttpMethod":"ANY","Integration":{"CacheKeyParameters":[],"CacheNamespace":"none","Credentials":"arn:aws:iam::000000000000:role/tinyapp-dev-ZappaLambdaExecutionRole","IntegrationHttpMethod":"POST","IntegrationResponses":[],"PassthroughBehavior":"NEVER","Type":"AWS_PROXY","Uri":"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:tinyapp-dev/invocations"},"MethodResponses":[],"ResourceId":{"Ref":"ResourceAnyPathSlashed"},"RestApiId":{"Ref":"Api"}},"Type":"AWS::ApiGateway::Method"},"Api":{"Properties":{"Description":"Created automatically by Zappa.","Name":"tinyapp-dev"},"Type":"AWS::ApiGateway::RestApi"},"ResourceAnyPathSlashed":{"Properties":{"ParentId":{"Fn::GetAtt":["Api","RootResourceId"]},"PathPart":"{proxy+}","RestApiId":{"Ref":"Api"}},"Type":"AWS::ApiGateway::Resource"}}})";

bool Known(std::string_view type) { return type.rfind("Test::", 0) == 0 || type.rfind("AWS::ApiGateway", 0) == 0; }

TEST_CASE("Zappa's template parses and orders resources by their references") {
  Result<Template> t = ParseTemplate(kZappaDev, Known);
  REQUIRE(t.ok());
  std::vector<std::string> order;
  for (const auto& r : t->resources) order.push_back(r.logical_id);
  REQUIRE(order == std::vector<std::string>{"Api", "ANY0", "ResourceAnyPathSlashed", "ANY1"});
  REQUIRE(t->Find("ANY1")->depends_on == std::set<std::string>{"Api", "ResourceAnyPathSlashed"});
  REQUIRE(t->description == "Automatically generated with Zappa");
}

TEST_CASE("template errors are worded as CloudFormation words them") {
  auto err = [](const std::string& body) {
    Result<Template> t = ParseTemplate(body, Known);
    REQUIRE_FALSE(t.ok());
    return t.status().message();
  };
  REQUIRE(err(R"({"Resources":{"Q":{"Type":"AWS::SQS::Queue"},"T":{"Type":"AWS::SNS::Topic"}}})") ==
          "Template format error: Unrecognized resource types: [AWS::SQS::Queue, AWS::SNS::Topic]");
  REQUIRE(err(R"({"Resources":{"A":{"Type":"Test::X","Properties":{"P":{"Ref":"Nope"}}}}})") ==
          "Template format error: Unresolved resource dependencies [Nope] in the Resources block of the template");
  REQUIRE(err(R"({"Resources":{"A":{"Type":"Test::X","DependsOn":"B"},"B":{"Type":"Test::X","DependsOn":"A"}}})") ==
          "Template format error: Circular dependency between resources: [A, B]");
  REQUIRE(err(R"({"Resources":{}})") == "Template format error: At least one Resources member must be defined.");
  REQUIRE(err("Resources:\n  A:\n    Type: Test::X\n").find("JSON templates only") != std::string::npos);
  REQUIRE(err(R"({"Resources":{"A":{"Type":"Test::X","Properties":{"P":{"Fn::If":["c","a","b"]}}}}})")
              .find("Fn::If is not supported") != std::string::npos);
  REQUIRE(err(R"({"Resources":{"A":{"Type":"Test::X"}},"Bogus":1})") ==
          "Template format error: Invalid template property or properties [Bogus]");
}

TEST_CASE("intrinsic functions resolve against parameters, pseudo parameters and resources") {
  ResolveContext ctx;
  ctx.parameters = {{"Stage", "dev"}};
  ctx.pseudo = PseudoParameters("eu-west-1", "123456789012", "st", "arn:stack");
  ctx.ref = [](const std::string& id) -> std::optional<std::string> {
    if (id == "Api") return "abc123";
    return std::nullopt;
  };
  ctx.get_att = [](const std::string& id, const std::string& a) -> std::optional<json> {
    if (id == "Api" && a == "RootResourceId") return json("root1");
    return std::nullopt;
  };
  json in = json::parse(R"({
    "Join": {"Fn::Join": ["", ["arn:aws:execute-api:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":", {"Ref": "Api"}, "/*"]]},
    "Sub": {"Fn::Sub": "${Api}/${Stage}/${Api.RootResourceId}/${!Literal}/${AWS::StackName}"},
    "Sub2": {"Fn::Sub": ["${X}-${Api}", {"X": {"Ref": "Stage"}}]},
    "Att": {"Fn::GetAtt": "Api.RootResourceId"},
    "Sel": {"Fn::Select": ["1", {"Fn::Split": [",", "a,b,c"]}]},
    "B64": {"Fn::Base64": "hi"},
    "Gone": {"Ref": "AWS::NoValue"},
    "List": ["x", {"Ref": "AWS::NoValue"}, "y"]
  })");
  Result<json> out = Resolve(in, ctx);
  REQUIRE(out.ok());
  REQUIRE((*out)["Join"] == "arn:aws:execute-api:eu-west-1:123456789012:abc123/*");
  REQUIRE((*out)["Sub"] == "abc123/dev/root1/${Literal}/st");
  REQUIRE((*out)["Sub2"] == "dev-abc123");
  REQUIRE((*out)["Att"] == "root1");
  REQUIRE((*out)["Sel"] == "b");
  REQUIRE((*out)["B64"] == "aGk=");
  REQUIRE_FALSE(out->contains("Gone"));
  REQUIRE((*out)["List"] == json::array({"x", "y"}));
  Result<json> bad = Resolve(json::parse(R"({"P": {"Fn::GetAtt": ["Api", "Nope"]}})"), ctx);
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.status().message().find("Nope") != std::string::npos);
}

TEST_CASE("intrinsic functions with arguments of the wrong shape are template errors, not exceptions") {
  // Found by fuzz/targets/cloudformation_template.cpp: {"Ref": {...}} threw from get<string>(),
  // and a short Fn::GetAtt / Fn::Sub array was indexed past its end.
  ResolveContext ctx;
  ctx.ref = [](const std::string&) -> std::optional<std::string> { return "x"; };
  ctx.get_att = [](const std::string&, const std::string&) -> std::optional<json> { return json("y"); };
  for (const char* doc : {R"({"Ref": {"a": 1}})", R"({"Ref": 7})", R"({"Fn::GetAtt": ["OnlyOne"]})",
                          R"({"Fn::GetAtt": {"a": 1}})", R"({"Fn::GetAtt": [1, "Arn"]})", R"({"Fn::GetAtt": "NoDot"})",
                          R"({"Fn::Sub": ["only text"]})", R"({"Fn::Sub": [1, {}]})", R"({"Fn::Sub": {"a": "b"}})",
                          R"({"Fn::Sub": ["t", ["not", "a map"]]})"}) {
    INFO(doc);
    const json in = json::parse(doc);
    REQUIRE_NOTHROW(Resolve(in, ctx));
    Result<json> out = Resolve(in, ctx);
    REQUIRE_FALSE(out.ok());
    CHECK(out.status().message().rfind("Template error: ", 0) == 0);
  }
}

TEST_CASE("parameters bind with defaults and are checked") {
  Result<Template> t = ParseTemplate(
      R"({"Parameters":{"A":{"Type":"String"},"B":{"Type":"Number","Default":"3"},"C":{"Type":"String","AllowedValues":["x","y"],"Default":"x"}},
          "Resources":{"R":{"Type":"Test::X","Properties":{"V":{"Ref":"A"}}}}})",
      Known);
  REQUIRE(t.ok());
  REQUIRE(t->Find("R")->depends_on.empty());
  auto bound = BindParameters(*t, {{"A", "a"}});
  REQUIRE(bound.ok());
  REQUIRE(*bound == std::map<std::string, std::string>{{"A", "a"}, {"B", "3"}, {"C", "x"}});
  REQUIRE(BindParameters(*t, {}).status().message() == "Parameters: [A] must have values");
  REQUIRE(BindParameters(*t, {{"A", "a"}, {"Z", "1"}}).status().message() ==
          "Parameters: [Z] do not exist in the template");
  REQUIRE_FALSE(BindParameters(*t, {{"A", "a"}, {"C", "q"}}).ok());
  REQUIRE_FALSE(BindParameters(*t, {{"A", "a"}, {"B", "x1"}}).ok());
}

// ---- the engine ----

// A provider of "Test::Thing": objects are ids in `live`; Create fails for logical ids in
// `fail_create`; every object gets the attribute Echo = its Value property.
struct Fake final : ResourceProvider {
  std::set<std::string> live;
  std::set<std::string> fail_create;
  std::vector<std::string> log;
  int counter = 0;
  Result<Provisioned> Create(const std::string& stack, const std::string& logical, const json& p) override {
    log.push_back("create " + logical);
    if (fail_create.count(logical)) return Status::Invalid("fake failure of " + logical);
    std::string id = stack + "-" + logical + "-" + std::to_string(++counter);
    live.insert(id);
    return Provisioned{id, {{"Echo", p.value("Value", "")}}};
  }
  Status Delete(const ResourceRecord& r) override {
    log.push_back("delete " + r.logical_id);
    live.erase(r.physical_id);  // gone already is fine
    return Status::Ok();
  }
};

struct Fixture {
  testing::TempDir dir;
  Db db = Open(dir);
  Fake fake;
  int64_t now = 1'800'000'000'000;
  int uuid = 0;
  StackEngine engine{db,
                     [this](std::string_view type) -> ResourceProvider* {
                       return type == "Test::Thing" ? &fake : nullptr;
                     },
                     EngineOptions{"us-east-1", "000000000000", [this] { return ++now; },
                                   [this] { return "uuid-" + std::to_string(++uuid); }}};
  static Db Open(const testing::TempDir& d) {
    Result<Db> db = Db::Open(d / "t.db", {});
    REQUIRE(db.ok());
    return std::move(db).value();
  }
  Fixture() { engine.Start(); }

  std::string Error(const std::function<void()>& f) {
    try {
      f();
    } catch (const ApiException& e) {
      return e.error().type + ": " + e.error().message;
    }
    return "no error";
  }
};

const char* kTwo = R"({"Resources":{
  "A":{"Type":"Test::Thing","Properties":{"Value":"a"}},
  "B":{"Type":"Test::Thing","Properties":{"Value":{"Fn::Join":["-",[{"Ref":"A"},{"Fn::GetAtt":["A","Echo"]}]]}}}},
  "Outputs":{"BId":{"Value":{"Ref":"B"},"Description":"b's id"}}})";

TEST_CASE("a stack is created synchronously, described, and deleted with its objects") {
  Fixture fx;
  CreateStackInput in;
  in.name = "st";
  in.template_body = kTwo;
  in.tags = {{"ZappaProject", "st"}};
  std::string id = fx.engine.CreateStack(in);
  REQUIRE(id.rfind("arn:aws:cloudformation:us-east-1:000000000000:stack/st/", 0) == 0);
  StackRecord s = fx.engine.GetStack("st");
  REQUIRE(s.status == "CREATE_COMPLETE");
  REQUIRE(s.tags == std::vector<std::pair<std::string, std::string>>{{"ZappaProject", "st"}});
  REQUIRE(fx.engine.GetStack(id).name == "st");
  auto res = fx.engine.ListResources(id);
  REQUIRE(res.size() == 2);
  REQUIRE(res[1].logical_id == "B");
  REQUIRE(res[1].properties["Value"] == res[0].physical_id + "-a");
  REQUIRE(res[1].status == "CREATE_COMPLETE");
  REQUIRE(s.outputs[0]["OutputValue"] == res[1].physical_id);
  REQUIRE(fx.fake.live.size() == 2);
  REQUIRE_FALSE(fx.engine.ListEvents(id).empty());
  REQUIRE(fx.engine.ListEvents(id)[0].status == "CREATE_COMPLETE");

  REQUIRE(fx.Error([&] { fx.engine.CreateStack(in); }) == "AlreadyExistsException: Stack [st] already exists");

  fx.engine.DeleteStack("st");
  REQUIRE(fx.fake.live.empty());
  REQUIRE(fx.fake.log.back() == "delete A");  // dependents first
  REQUIRE_FALSE(fx.engine.FindStack("st"));
  REQUIRE(fx.Error([&] { fx.engine.GetStack("st"); }) == "ValidationError: Stack with id st does not exist");
  fx.engine.DeleteStack("st");  // idempotent
}

TEST_CASE("an unsupported type is refused before anything is made") {
  Fixture fx;
  CreateStackInput in;
  in.name = "st";
  in.template_body = R"({"Resources":{"A":{"Type":"Test::Thing"},"Q":{"Type":"AWS::SQS::Queue"}}})";
  REQUIRE(fx.Error([&] { fx.engine.CreateStack(in); }) ==
          "ValidationError: Template format error: Unrecognized resource types: [AWS::SQS::Queue]");
  REQUIRE_FALSE(fx.engine.FindStack("st"));
  REQUIRE(fx.fake.log.empty());
  in.name = "9bad";
  REQUIRE(fx.Error([&] { fx.engine.CreateStack(in); }).find("Member must satisfy regular expression") !=
          std::string::npos);
}

TEST_CASE("a failed create rolls back what was made and says why") {
  Fixture fx;
  fx.fake.fail_create = {"B"};
  CreateStackInput in;
  in.name = "st";
  in.template_body = kTwo;
  std::string id = fx.engine.CreateStack(in);
  StackRecord s = fx.engine.GetStack("st");
  REQUIRE(s.status == "ROLLBACK_COMPLETE");
  REQUIRE(s.status_reason.find("The following resource(s) failed to create: [B]") == 0);
  REQUIRE(s.status_reason.find("fake failure of B") != std::string::npos);
  REQUIRE(fx.fake.live.empty());
  REQUIRE(fx.engine.ListResources(id).empty());
  bool saw_failed = false;
  for (const EventRecord& e : fx.engine.ListEvents(id)) {
    if (e.logical_id == "B" && e.status == "CREATE_FAILED") saw_failed = e.status_reason == "fake failure of B";
  }
  REQUIRE(saw_failed);
  // A rolled-back stack cannot be updated, only deleted.
  UpdateStackInput up;
  up.name = "st";
  up.template_body = kTwo;
  REQUIRE(fx.Error([&] { fx.engine.UpdateStack(up); }).find("is in ROLLBACK_COMPLETE state and can not be updated.") !=
          std::string::npos);
  fx.engine.DeleteStack("st");
  REQUIRE_FALSE(fx.engine.FindStack("st"));

  in.on_failure = "DELETE";
  fx.engine.CreateStack(in);
  REQUIRE_FALSE(fx.engine.FindStack("st"));
  REQUIRE(fx.fake.live.empty());
}

TEST_CASE("updates keep unchanged resources, replace changed ones and their dependents") {
  Fixture fx;
  CreateStackInput in;
  in.name = "st";
  in.template_body = kTwo;
  fx.engine.CreateStack(in);
  auto before = fx.engine.ListResources(fx.engine.GetStack("st").stack_id);

  UpdateStackInput up;
  up.name = "st";
  up.template_body = kTwo;
  REQUIRE(fx.Error([&] { fx.engine.UpdateStack(up); }) == "ValidationError: No updates are to be performed.");
  // Whitespace and key order do not make a change.
  up.template_body = json::parse(kTwo).dump(2);
  REQUIRE(fx.Error([&] { fx.engine.UpdateStack(up); }) == "ValidationError: No updates are to be performed.");

  // B changes alone: A keeps its id.
  std::string changed_b = kTwo;
  changed_b.replace(changed_b.find("\"-\""), 3, "\"+\"");
  up.template_body = changed_b;
  fx.engine.UpdateStack(up);
  StackRecord s = fx.engine.GetStack("st");
  REQUIRE(s.status == "UPDATE_COMPLETE");
  auto after = fx.engine.ListResources(s.stack_id);
  REQUIRE(after[0].physical_id == before[0].physical_id);
  REQUIRE(after[1].physical_id != before[1].physical_id);
  REQUIRE(fx.fake.live.size() == 2);
  REQUIRE(s.outputs[0]["OutputValue"] == after[1].physical_id);

  // A changes: B, which refers to it, is replaced too.
  std::string changed_a = changed_b;
  changed_a.replace(changed_a.find("\"a\""), 3, "\"z\"");
  up.template_body = changed_a;
  fx.engine.UpdateStack(up);
  auto third = fx.engine.ListResources(s.stack_id);
  REQUIRE(third[0].physical_id != after[0].physical_id);
  REQUIRE(third[1].physical_id != after[1].physical_id);
  REQUIRE(third[1].properties["Value"] == third[0].physical_id + "+z");
  REQUIRE(fx.fake.live.size() == 2);

  // A failing update rolls back to the previous template.
  fx.fake.fail_create = {"C"};
  up.template_body = R"({"Resources":{"A":{"Type":"Test::Thing","Properties":{"Value":"q"}},"C":{"Type":"Test::Thing"}}})";
  fx.engine.UpdateStack(up);
  s = fx.engine.GetStack("st");
  REQUIRE(s.status == "UPDATE_ROLLBACK_COMPLETE");
  REQUIRE(s.status_reason.find("fake failure of C") != std::string::npos);
  auto rolled = fx.engine.ListResources(s.stack_id);
  REQUIRE(rolled.size() == 2);
  REQUIRE(rolled[1].properties["Value"] == rolled[0].physical_id + "+z");
  REQUIRE(fx.fake.live.size() == 2);

  // Tags alone are an update.
  fx.fake.fail_create.clear();
  up.template_body = changed_a;
  up.tags = std::vector<std::pair<std::string, std::string>>{{"k", "v"}};
  fx.engine.UpdateStack(up);
  REQUIRE(fx.engine.GetStack("st").tags.size() == 1);
}

TEST_CASE("a stack left in progress by a dead control is finished at start-up") {
  Fixture fx;
  CreateStackInput in;
  in.name = "st";
  in.template_body = kTwo;
  std::string id = fx.engine.CreateStack(in);
  fx.db.Exec("UPDATE cfn_stacks SET status = 'CREATE_IN_PROGRESS'");
  StackEngine again{fx.db, [&](std::string_view type) -> ResourceProvider* { return type == "Test::Thing" ? &fx.fake : nullptr; },
                    EngineOptions{"us-east-1", "000000000000", [] { return int64_t{1}; }, [] { return std::string("u"); }}};
  again.Start();
  StackRecord s = again.GetStack("st");
  REQUIRE(s.status == "ROLLBACK_COMPLETE");
  REQUIRE(s.status_reason.find("control stopped") != std::string::npos);
  REQUIRE(fx.fake.live.empty());
  REQUIRE(again.ListResources(id).empty());
}

}  // namespace
}  // namespace geysir::control::cfn
