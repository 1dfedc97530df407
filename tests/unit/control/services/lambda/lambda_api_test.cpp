// The pure parts of control's API: routing, function-name/ARN resolution, request validation,
// AWS error mapping and response shapes.
#include "control/services/lambda/lambda_api.h"

#include <catch2/catch.hpp>

#include "control/auth.h"
#include "control/aws_error.h"
#include "control/code_store.h"
#include "control/services/lambda/operations.h"

using namespace geysir;
using namespace geysir::control;
using nlohmann::json;

namespace {

// The AWS error type an expression throws, or "" if it does not throw ApiException.
template <typename F>
std::string ErrorType(F&& f) {
  try {
    f();
  } catch (const ApiException& e) {
    return e.error().type;
  }
  return "";
}

template <typename F>
int ThrownStatus(F&& f) {
  try {
    f();
  } catch (const ApiException& e) {
    return e.error().http_status;
  }
  return 0;
}

json ValidCreate() {
  return {{"FunctionName", "hello"},
          {"Runtime", "python3.11"},
          {"Role", "arn:aws:iam::000000000000:role/r"},
          {"Handler", "app.handler"},
          {"Code", {{"ZipFile", "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}}};
}

}  // namespace

TEST_CASE("routes: Lambda operations by method and path", "[control][api]") {
  CHECK(MatchRoute("POST", "/2015-03-31/functions").op == Operation::kCreateFunction);
  CHECK(MatchRoute("POST", "/2015-03-31/functions/").op == Operation::kCreateFunction);
  CHECK(MatchRoute("GET", "/2015-03-31/functions/").op == Operation::kListFunctions);
  Route r = MatchRoute("GET", "/2015-03-31/functions/hello");
  CHECK(r.op == Operation::kGetFunction);
  CHECK(r.function == "hello");
  CHECK(MatchRoute("DELETE", "/2015-03-31/functions/hello").op == Operation::kDeleteFunction);
  CHECK(MatchRoute("GET", "/2015-03-31/functions/hello/configuration").op == Operation::kGetFunctionConfiguration);
  CHECK(MatchRoute("PUT", "/2015-03-31/functions/hello/configuration").op == Operation::kUpdateFunctionConfiguration);
  CHECK(MatchRoute("PUT", "/2015-03-31/functions/hello/code").op == Operation::kUpdateFunctionCode);
  CHECK(MatchRoute("POST", "/2015-03-31/functions/hello/invocations").op == Operation::kInvoke);
  CHECK(MatchRoute("POST", "/2021-10-31/functions/hello/url").op == Operation::kCreateFunctionUrlConfig);
  CHECK(MatchRoute("GET", "/2021-10-31/functions/hello/url").op == Operation::kGetFunctionUrlConfig);
  CHECK(MatchRoute("PUT", "/2021-10-31/functions/hello/url").op == Operation::kUpdateFunctionUrlConfig);
  CHECK(MatchRoute("DELETE", "/2021-10-31/functions/hello/url").op == Operation::kDeleteFunctionUrlConfig);
  CHECK(MatchRoute("GET", "/2021-10-31/functions/hello/urls").op == Operation::kListFunctionUrlConfigs);
  CHECK(MatchRoute("GET", "/geysir/v1/health").op == Operation::kHealth);
  r = MatchRoute("GET", "/geysir/v1/functions/hello/logs");
  CHECK(r.op == Operation::kGetLogs);
  CHECK(r.function == "hello");
  std::string hex(64, 'a');
  r = MatchRoute("GET", "/geysir/v1/code/" + hex + ".zip");
  CHECK(r.op == Operation::kGetCode);
  CHECK(r.code_hex == hex);
}

TEST_CASE("routes: ARNs arrive percent-encoded and are decoded per segment", "[control][api]") {
  Route r = MatchRoute("GET", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello%3A%24LATEST/configuration");
  CHECK(r.op == Operation::kGetFunctionConfiguration);
  CHECK(r.function == "arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST");
}

TEST_CASE("routes: unknown paths are 404, wrong methods 405", "[control][api]") {
  CHECK(ThrownStatus([] { MatchRoute("GET", "/2015-03-31/nothing"); }) == 404);
  CHECK(ErrorType([] { MatchRoute("GET", "/"); }) == "UnknownOperationException");
  CHECK(ThrownStatus([] { MatchRoute("PATCH", "/2015-03-31/functions/x"); }) == 405);
  CHECK(ThrownStatus([] { MatchRoute("GET", "/2015-03-31/functions/x/code"); }) == 405);
  CHECK(ThrownStatus([] { MatchRoute("GET", "/geysir/v1/code/../../etc/passwd"); }) == 404);
  CHECK(ThrownStatus([] { MatchRoute("GET", "/geysir/v1/code/" + std::string(64, 'G') + ".zip"); }) == 404);
}

TEST_CASE("function references: names, partial and full ARNs, qualifiers", "[control][api]") {
  ApiContext ctx;
  CHECK(ParseFunctionRef("hello").name == "hello");
  CHECK(ParseFunctionRef("my-func_2").name == "my-func_2");
  FunctionRef r = ParseFunctionRef("hello:$LATEST");
  CHECK(r.name == "hello");
  CHECK(r.qualifier == "$LATEST");
  CHECK(ParseFunctionRef("123456789012:function:hello").name == "hello");
  r = ParseFunctionRef("123456789012:function:hello:prod");
  CHECK(r.name == "hello");
  CHECK(r.qualifier == "prod");
  r = ParseFunctionRef("arn:aws:lambda:us-east-1:000000000000:function:hello");
  CHECK(r.name == "hello");
  CHECK(r.qualifier.empty());
  CHECK(ParseFunctionRef("arn:aws:lambda:eu-west-1:000000000000:function:hello:$LATEST").qualifier == "$LATEST");

  for (const char* bad : {"", "a b", "hello/x", "hello:", "a:b:c", "arn:aws:s3:us-east-1:000000000000:function:x",
                          "arn:aws:lambda:us-east-1:0000:function:x", "arn:aws:lambda:us-east-1:000000000000:layer:x",
                          "12345:function:x", "arn:aws:lambda:us-east-1:000000000000:function:x:1:2"}) {
    INFO(bad);
    CHECK(ErrorType([&] { ParseFunctionRef(bad); }) == "InvalidParameterValueException");
  }
  CHECK(ErrorType([] { ParseFunctionRef(std::string(65, 'a')); }) == "InvalidParameterValueException");
  CHECK(ParseFunctionRef(std::string(64, 'a')).name.size() == 64);

  CHECK(ResolveFunctionName(ctx, "arn:aws:lambda:us-east-1:000000000000:function:hello:$LATEST", "") == "hello");
  CHECK(ResolveFunctionName(ctx, "hello", "$LATEST") == "hello");
  // Operations on the unqualified function refuse a qualifier (400, not a lookup).
  CHECK(ErrorType([&] { ResolveFunctionName(ctx, "hello:1", ""); }) == "InvalidParameterValueException");
  CHECK(ErrorType([&] { ResolveFunctionName(ctx, "hello", "prod"); }) == "InvalidParameterValueException");

  // Qualified references: versions, aliases, the Qualifier parameter, Zappa's "function:NAME:N".
  r = ResolveFunctionRef("function:hello:1", "");
  CHECK(r.name == "hello");
  CHECK(r.qualifier == "1");
  CHECK(ResolveFunctionRef("hello", "prod").qualifier == "prod");
  CHECK(ResolveFunctionRef("hello:prod", "prod").qualifier == "prod");
  CHECK(ResolveFunctionRef("arn:aws:lambda:us-east-1:000000000000:function:hello:7", "").qualifier == "7");
  CHECK(ResolveFunctionRef("hello", "").qualifier.empty());
  CHECK(ErrorType([] { ResolveFunctionRef("hello:1", "2"); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ResolveFunctionRef("hello", "bad qualifier"); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ResolveFunctionRef("function:a:b:c", ""); }) == "InvalidParameterValueException");
  CHECK(IsVersionNumber("12"));
  CHECK_FALSE(IsVersionNumber("$LATEST"));
  CHECK(IsValidAliasName("live-1"));
  CHECK_FALSE(IsValidAliasName("123"));
  CHECK(QualifiedArn(ctx, "hello", "live") == "arn:aws:lambda:us-east-1:000000000000:function:hello:live");
}

TEST_CASE("routes: versions, aliases, policy, concurrency, tags", "[control][api]") {
  CHECK(MatchRoute("POST", "/2015-03-31/functions/f/versions").op == Operation::kPublishVersion);
  CHECK(MatchRoute("GET", "/2015-03-31/functions/f/versions").op == Operation::kListVersionsByFunction);
  CHECK(MatchRoute("POST", "/2015-03-31/functions/f/aliases").op == Operation::kCreateAlias);
  CHECK(MatchRoute("GET", "/2015-03-31/functions/f/aliases").op == Operation::kListAliases);
  Route r = MatchRoute("PUT", "/2015-03-31/functions/f/aliases/live");
  CHECK(r.op == Operation::kUpdateAlias);
  CHECK(r.sub == "live");
  CHECK(MatchRoute("POST", "/2015-03-31/functions/f/policy").op == Operation::kAddPermission);
  CHECK(MatchRoute("GET", "/2015-03-31/functions/f/policy").op == Operation::kGetPolicy);
  r = MatchRoute("DELETE", "/2015-03-31/functions/f/policy/NT7SFAQK");
  CHECK(r.op == Operation::kRemovePermission);
  CHECK(r.sub == "NT7SFAQK");
  CHECK(MatchRoute("PUT", "/2017-10-31/functions/f/concurrency").op == Operation::kPutFunctionConcurrency);
  CHECK(MatchRoute("DELETE", "/2017-10-31/functions/f/concurrency").op == Operation::kDeleteFunctionConcurrency);
  CHECK(MatchRoute("GET", "/2019-09-30/functions/f/concurrency").op == Operation::kGetFunctionConcurrency);
  r = MatchRoute("POST", "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af");
  CHECK(r.op == Operation::kTagResource);
  CHECK(r.sub == "arn:aws:lambda:us-east-1:000000000000:function:f");
  CHECK(MatchRoute("GET", "/2016-08-19/account-settings/").op == Operation::kGetAccountSettings);
  CHECK(ThrownStatus([] { MatchRoute("PATCH", "/2015-03-31/functions/f/versions"); }) == 405);
  CHECK(QueryValues("tagKeys=a&x=1&tagKeys=b%20c", "tagKeys") == std::vector<std::string>{"a", "b c"});
}

TEST_CASE("AddPermission statements as Lambda builds them", "[control][api]") {
  ApiContext ctx;
  const std::string fn = "arn:aws:lambda:us-east-1:000000000000:function:f";
  PermissionInput p = ParseAddPermission(ctx, fn, {{"StatementId", "S1"}, {"Action", "lambda:InvokeFunction"},
                                                  {"Principal", "events.amazonaws.com"},
                                                  {"SourceArn", "arn:aws:events:us-east-1:000000000000:rule/r"},
                                                  {"SourceAccount", "000000000000"}});
  CHECK(p.statement == json::parse(R"({"Sid":"S1","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
    "Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:000000000000:function:f",
    "Condition":{"StringEquals":{"AWS:SourceAccount":"000000000000"},
                 "ArnLike":{"AWS:SourceArn":"arn:aws:events:us-east-1:000000000000:rule/r"}}})"));
  p = ParseAddPermission(ctx, fn, {{"StatementId", "u"}, {"Action", "lambda:InvokeFunctionUrl"}, {"Principal", "*"},
                                   {"FunctionUrlAuthType", "NONE"}});
  CHECK(p.statement["Principal"] == "*");
  CHECK(p.statement["Condition"]["StringEquals"]["lambda:FunctionUrlAuthType"] == "NONE");
  p = ParseAddPermission(ctx, fn, {{"StatementId", "a"}, {"Action", "lambda:InvokeFunction"}, {"Principal", "123456789012"}});
  CHECK(p.statement["Principal"]["AWS"] == "arn:aws:iam::123456789012:root");
  CHECK_FALSE(p.statement.contains("Condition"));
  CHECK(ErrorType([&] { ParseAddPermission(ctx, fn, {{"Action", "x"}, {"Principal", "*"}}); }) ==
        "InvalidParameterValueException");
  CHECK(ErrorType([&] { ParseAddPermission(ctx, fn, {{"StatementId", "bad id"}, {"Action", "x"}, {"Principal", "*"}}); }) ==
        "InvalidParameterValueException");
}

TEST_CASE("alias, publish, concurrency and tag bodies", "[control][api]") {
  AliasInput a = ParseAlias({{"Name", "live"}, {"FunctionVersion", "3"},
                             {"RoutingConfig", {{"AdditionalVersionWeights", {{"2", 0.25}}}}}}, true);
  CHECK(*a.name == "live");
  CHECK((*a.weights)["2"] == 0.25);
  CHECK(ErrorType([] { ParseAlias({{"Name", "live"}}, true); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseAlias({{"Name", "42"}, {"FunctionVersion", "1"}}, true); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseAlias({{"FunctionVersion", "v1"}}, false); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseAlias({{"RoutingConfig", {{"AdditionalVersionWeights", {{"2", 1.5}}}}}}, false); }) ==
        "InvalidParameterValueException");
  CHECK(ParsePublishVersion({{"Description", "d"}, {"CodeSha256", "x"}}).code_sha256 == std::optional<std::string>("x"));
  CHECK(ParseReservedConcurrency({{"ReservedConcurrentExecutions", 0}}, 900) == 0);
  CHECK(ParseReservedConcurrency({{"ReservedConcurrentExecutions", 900}}, 900) == 900);
  CHECK(ErrorType([] { ParseReservedConcurrency({{"ReservedConcurrentExecutions", 901}}, 900); }) ==
        "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseReservedConcurrency({{"ReservedConcurrentExecutions", -1}}, 900); }) ==
        "InvalidParameterValueException");
  CHECK(ParseTags({{"Tags", {{"k", "v"}}}}) == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(FunctionNameFromTagArn("arn:aws:lambda:us-east-1:000000000000:function:f") == "f");
  CHECK(ErrorType([] { FunctionNameFromTagArn("f"); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { FunctionNameFromTagArn("arn:aws:lambda:us-east-1:000000000000:function:f:1"); }) ==
        "InvalidParameterValueException");

  // Code from S3, and Publish, on Create and UpdateFunctionCode.
  json create = ValidCreate();
  create["Code"] = {{"S3Bucket", "b"}, {"S3Key", "k.zip"}};
  create["Publish"] = true;
  CreateFunctionInput in = ParseCreateFunction(ApiContext{}, create);
  REQUIRE(in.s3.has_value());
  CHECK(in.s3->bucket == "b");
  CHECK(in.s3->key == "k.zip");
  CHECK(in.publish);
  CodeUpdateInput up = ParseUpdateFunctionCode({{"S3Bucket", "b"}, {"S3Key", "k"}, {"Publish", true}});
  CHECK(up.s3.has_value());
  CHECK(up.publish);
  CHECK(ErrorType([] { ParseUpdateFunctionCode({{"S3Bucket", "b"}, {"S3Key", "k"}, {"ZipFile", "UEs="}}); }) ==
        "InvalidParameterValueException");
}

TEST_CASE("query strings and base64", "[control][api]") {
  auto q = ParseQuery("Marker=abc%3D%3D&MaxItems=5&empty&x=a+b");
  CHECK(q["Marker"] == "abc==");
  CHECK(q["MaxItems"] == "5");
  CHECK(q.count("empty") == 1);
  CHECK(q["x"] == "a b");

  CHECK(Base64Decode("aGVsbG8=") == std::optional<std::string>("hello"));
  CHECK(Base64Decode("aGVsbG8") == std::optional<std::string>("hello"));
  CHECK(Base64Decode("") == std::optional<std::string>(""));
  CHECK(Base64Decode("aGVsbA==") == std::optional<std::string>("hell"));
  CHECK_FALSE(Base64Decode("aGVs bG8="));
  CHECK_FALSE(Base64Decode("a"));
  CHECK_FALSE(Base64Decode("aGVsbG8==="));
  CHECK_FALSE(Base64Decode("aG=sbG8="));
  CHECK(Base64Decode(Base64Encode(std::string("\x00\xff\x10", 3))) == std::optional<std::string>(std::string("\x00\xff\x10", 3)));
}

TEST_CASE("CreateFunction validation", "[control][api]") {
  ApiContext ctx;
  CreateFunctionInput in = ParseCreateFunction(ctx, ValidCreate());
  CHECK(in.record.name == "hello");
  CHECK(in.record.arn == "arn:aws:lambda:us-east-1:000000000000:function:hello");
  CHECK(in.record.memory_mb == 128);
  CHECK(in.record.timeout_s == 3);
  CHECK(in.zip_base64 == "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==");

  json j = ValidCreate();
  j["MemorySize"] = 512;
  j["Timeout"] = 30;
  j["Environment"] = {{"Variables", {{"GREETING", "hi"}, {"B_2", ""}}}};
  j["EphemeralStorage"] = {{"Size", 1024}};
  j["Tags"] = {{"team", "core"}};
  j["Description"] = "d";
  j["Architectures"] = {"x86_64"};
  in = ParseCreateFunction(ctx, j);
  CHECK(in.record.memory_mb == 512);
  CHECK(in.record.timeout_s == 30);
  CHECK(in.record.environment.at("GREETING") == "hi");
  CHECK(in.record.ephemeral_storage_mb == 1024);
  CHECK(in.record.tags.at("team") == "core");

  // Role is optional in Geysir: a default is filled in.
  j = ValidCreate();
  j.erase("Role");
  CHECK(ParseCreateFunction(ctx, j).record.role == DefaultRole(ctx));

  auto bad = [&](const std::function<void(json&)>& edit) {
    json b = ValidCreate();
    edit(b);
    return ErrorType([&] { ParseCreateFunction(ctx, b); });
  };
  const std::string kInvalid = "InvalidParameterValueException";
  CHECK(bad([](json& b) { b.erase("FunctionName"); }) == kInvalid);
  CHECK(bad([](json& b) { b["FunctionName"] = "has space"; }) == kInvalid);
  CHECK(bad([](json& b) { b["FunctionName"] = std::string(65, 'x'); }) == kInvalid);
  CHECK(bad([](json& b) { b["FunctionName"] = 5; }) == kInvalid);
  CHECK(bad([](json& b) { b["Runtime"] = "nodejs18.x"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Runtime"] = "python2.7"; }) == kInvalid);
  CHECK(bad([](json& b) { b.erase("Runtime"); }) == kInvalid);
  CHECK(bad([](json& b) { b["Handler"] = "nodot"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Handler"] = "app.has space"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Handler"] = ".handler"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Handler"] = "app.1x"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Handler"] = "a..b.handler"; }) == kInvalid);
  CHECK(bad([](json& b) { b.erase("Handler"); }) == kInvalid);
  CHECK(bad([](json& b) { b["MemorySize"] = 127; }) == kInvalid);
  CHECK(bad([](json& b) { b["MemorySize"] = 10241; }) == kInvalid);
  CHECK(bad([](json& b) { b["MemorySize"] = "512"; }) == kInvalid);
  CHECK(bad([](json& b) { b["Timeout"] = 0; }) == kInvalid);
  CHECK(bad([](json& b) { b["Timeout"] = 901; }) == kInvalid);
  CHECK(bad([](json& b) { b["EphemeralStorage"] = {{"Size", 100}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Environment"] = {{"Variables", {{"AWS_REGION", "x"}}}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Environment"] = {{"Variables", {{"1BAD", "x"}}}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Environment"] = {{"Variables", {{"K", "x"}}}}; }) == kInvalid);  // 2+ chars
  CHECK(bad([](json& b) { b["Environment"] = {{"Variables", {{"KEY", 1}}}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Environment"] = {{"Variables", {{"BIG", std::string(5000, 'x')}}}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Architectures"] = {"arm64"}; }) == kInvalid);
  CHECK(bad([](json& b) { b["PackageType"] = "Image"; }) == kInvalid);
  CHECK(bad([](json& b) { b.erase("Code"); }) == kInvalid);
  CHECK(bad([](json& b) { b["Code"] = {{"S3Bucket", "b"}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Code"] = {{"S3Bucket", "b"}, {"S3Key", "k"}, {"S3ObjectVersion", "1"}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Code"] = {{"ImageUri", "x"}}; }) == kInvalid);
  CHECK(bad([](json& b) { b["Description"] = std::string(257, 'd'); }) == kInvalid);

  // Handlers Lambda accepts.
  for (const char* h : {"app.handler", "pkg.mod.handler", "src/app.handler", "a_b.c_d", "lambda_function.lambda_handler"}) {
    INFO(h);
    CHECK_NOTHROW(ValidateHandler(h));
  }
  for (const char* rt : {"python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13"}) {
    CHECK_NOTHROW(ValidateRuntime(rt));
  }
}

TEST_CASE("UpdateFunctionConfiguration and UpdateFunctionCode bodies", "[control][api]") {
  ConfigPatch p = ParseUpdateFunctionConfiguration(
      {{"MemorySize", 256}, {"Environment", {{"Variables", {{"A1", "x"}}}}}, {"RevisionId", "r1"}});
  FunctionRecord f;
  f.handler = "app.handler";
  f.timeout_s = 7;
  f.environment = {{"OLD", "1"}};
  ApplyPatch(p, f);
  CHECK(f.memory_mb == 256);
  CHECK(f.timeout_s == 7);
  CHECK(f.handler == "app.handler");
  CHECK(f.environment == std::map<std::string, std::string>{{"A1", "x"}});
  CHECK(p.revision_id == std::optional<std::string>("r1"));

  // Environment without Variables clears them, as Lambda does.
  ApplyPatch(ParseUpdateFunctionConfiguration({{"Environment", json::object()}}), f);
  CHECK(f.environment.empty());

  CHECK(ErrorType([] { ParseUpdateFunctionConfiguration({{"Timeout", 1000}}); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseUpdateFunctionConfiguration({{"Handler", "bad"}}); }) == "InvalidParameterValueException");

  CodeUpdateInput c = ParseUpdateFunctionCode({{"ZipFile", "UEs="}, {"DryRun", true}});
  CHECK(c.zip_base64 == "UEs=");
  CHECK(c.dry_run);
  CHECK(ErrorType([] { ParseUpdateFunctionCode(json::object()); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseUpdateFunctionCode({{"S3Bucket", "b"}}); }) == "InvalidParameterValueException");
}

TEST_CASE("function URL config bodies", "[control][api]") {
  UrlConfigInput in = ParseUrlConfig({{"AuthType", "NONE"}, {"Cors", {{"AllowOrigins", {"*"}}, {"MaxAge", 60}}}}, true);
  CHECK(*in.auth_type == "NONE");
  CHECK((*in.cors)["AllowOrigins"][0] == "*");
  try {
    ParseUrlConfig({{"AuthType", "AWS_IAM"}}, true);
    FAIL("AWS_IAM accepted");
  } catch (const ApiException& e) {
    CHECK(e.error().http_status == 400);
    CHECK(e.error().message.find("not supported") != std::string::npos);
  }
  CHECK(ErrorType([] { ParseUrlConfig(json::object(), true); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseUrlConfig({{"AuthType", "OPEN"}}, true); }) == "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseUrlConfig({{"AuthType", "NONE"}, {"Cors", {{"Bogus", 1}}}}, true); }) ==
        "InvalidParameterValueException");
  CHECK(ErrorType([] { ParseUrlConfig({{"AuthType", "NONE"}, {"Cors", {{"AllowOrigins", "*"}}}}, true); }) ==
        "InvalidParameterValueException");
  CHECK_NOTHROW(ParseUrlConfig(json::object(), false));
}

TEST_CASE("request bodies must be JSON objects", "[control][api]") {
  CHECK(ParseJsonObject("").is_object());
  CHECK(ParseJsonObject("{\"a\":1}")["a"] == 1);
  CHECK(ErrorType([] { ParseJsonObject("{"); }) == "InvalidRequestContentException");
  CHECK(ErrorType([] { ParseJsonObject("[1]"); }) == "InvalidRequestContentException");
}

TEST_CASE("response shapes", "[control][api]") {
  ApiContext ctx;
  FunctionRecord f;
  f.name = "hello";
  f.arn = FunctionArn(ctx, "hello");
  f.handler = "app.handler";
  f.role = "r";
  f.code_sha256 = "abc=";
  f.code_size = 10;
  f.revision_id = "rev";
  f.last_modified = "2026-11-27T05:30:00.000+0000";
  f.environment = {{"A1", "b"}};
  json j = FunctionConfigurationJson(f);
  CHECK(j["FunctionName"] == "hello");
  CHECK(j["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:hello");
  CHECK(j["State"] == "Active");
  CHECK(j["LastUpdateStatus"] == "Successful");
  CHECK(j["PackageType"] == "Zip");
  CHECK(j["Architectures"] == json::array({"x86_64"}));
  CHECK(j["EphemeralStorage"]["Size"] == 512);
  CHECK(j["Environment"]["Variables"]["A1"] == "b");
  CHECK(j["Version"] == "$LATEST");
  CHECK(j["CodeSize"] == 10);
  CHECK(j["RevisionId"] == "rev");

  FunctionUrlConfigRecord c;
  c.url_id = "abc123";
  c.function_name = "hello";
  c.creation_time = "t1";
  c.last_modified_time = "t2";
  json u = FunctionUrlConfigJson(ctx, c, false);
  CHECK(u["FunctionUrl"] == "http://abc123.lambda-url.localhost:8080/");
  CHECK(u["AuthType"] == "NONE");
  CHECK(u["CreationTime"] == "t1");
  CHECK_FALSE(u.contains("LastModifiedTime"));
  CHECK_FALSE(u.contains("Cors"));
  CHECK(FunctionUrlConfigJson(ctx, c, true)["LastModifiedTime"] == "t2");
}

TEST_CASE("AWS error mapping", "[control][api]") {
  CHECK(FromStatus(Status::NotFound("x")).http_status == 404);
  CHECK(FromStatus(Status::NotFound("x")).type == "ResourceNotFoundException");
  CHECK(FromStatus(Status(Code::kAlreadyExists, "x")).http_status == 409);
  CHECK(FromStatus(Status::Invalid("x")).type == "InvalidParameterValueException");
  CHECK(FromStatus(Status(Code::kResourceExhausted, "x")).http_status == 413);
  CHECK(FromStatus(Status::Internal("x")).type == "ServiceException");
  CHECK(FromStatus(Status::Internal("x")).http_status == 500);
  CHECK(FromStatus(Status::Conflict("x")).http_status == 409);
  CHECK(FromStatus(Status::Conflict("x")).type == "ResourceConflictException");
  CHECK(FromStatus(Status(Code::kThrottled, "x")).http_status == 429);
  CHECK(FromStatus(Status(Code::kThrottled, "x")).type == "TooManyRequestsException");
  CHECK(FromStatus(Status(Code::kFailedPrecondition, "x")).http_status == 412);
  CHECK(FromStatus(Status(Code::kUnauthenticated, "x")).http_status == 403);
  CHECK(FromStatus(Status(Code::kUnauthenticated, "x")).auth_error);
  CHECK(FromStatus(Status(Code::kUnimplemented, "x")).type == "UnknownOperationException");
  CHECK(FromStatus(Status(Code::kUnavailable, "x")).http_status == 502);
  // A named AWS type replaces the code's type and keeps its status.
  AwsError typed = FromStatus(Status::NotFound("no bucket").WithAwsType("NoSuchBucket"));
  CHECK(typed.http_status == 404);
  CHECK(typed.type == "NoSuchBucket");
  CHECK(typed.message == "no bucket");

  // A service's own table gives a type the status it answers it with; other types, and the same
  // type without the table, keep the code's status.
  constexpr ErrorStatus kTable[] = {{"ResourceNotFoundException", 400}, {"ServiceUnavailable", 503}};
  AwsError listed = FromStatus(AwsStatus(Code::kNotFound, "ResourceNotFoundException", "no rule"), kTable);
  CHECK(listed.http_status == 400);
  CHECK(listed.user_fault);
  CHECK(listed.type == "ResourceNotFoundException");
  CHECK(listed.message == "no rule");
  AwsError service_side = FromStatus(AwsStatus(Code::kUnavailable, "ServiceUnavailable", "not started"), kTable);
  CHECK(service_side.http_status == 503);
  CHECK_FALSE(service_side.user_fault);
  CHECK(FromStatus(AwsStatus(Code::kNotFound, "NoSuchEntity", "x"), kTable).http_status == 404);
  CHECK(FromStatus(AwsStatus(Code::kNotFound, "ResourceNotFoundException", "x")).http_status == 404);
  // The table names types, not codes: an untyped Status keeps its code's answer.
  CHECK(FromStatus(Status::NotFound("x"), kTable).http_status == 404);
  CHECK(AwsStatus(Code::kConflict, "DeleteConflict", "x").code() == Code::kConflict);
  CHECK(AwsStatus(Code::kConflict, "DeleteConflict", "x").aws_type() == "DeleteConflict");

  net::HttpResponse r = ToHttpResponse(ResourceNotFound("Function not found: x"), "rid-1");
  CHECK(r.status == 404);
  auto header = [&](const std::string& name) {
    for (auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  CHECK(header("x-amzn-ErrorType") == "ResourceNotFoundException");
  CHECK(header("x-amzn-RequestId") == "rid-1");
  json body = json::parse(r.body);
  CHECK(body["Type"] == "User");
  CHECK(body["message"] == "Function not found: x");
  CHECK(json::parse(ToHttpResponse(ServiceError("boom"), "r").body)["Type"] == "Service");

  using net::sigv4::Failure;
  AwsError a = FromVerifyError({Failure::kSignatureMismatch, "mismatch"});
  CHECK(a.http_status == 403);
  CHECK(a.type == "InvalidSignatureException");
  CHECK(FromVerifyError({Failure::kUnknownAccessKey, ""}).type == "UnrecognizedClientException");
  CHECK(FromVerifyError({Failure::kMissingAuthentication, ""}).type == "MissingAuthenticationTokenException");
  CHECK(FromVerifyError({Failure::kRequestExpired, ""}).type == "InvalidSignatureException");
  CHECK(FromVerifyError({Failure::kPresignExpired, ""}).type == "InvalidSignatureException");
  CHECK(FromVerifyError({Failure::kPresignExpired, ""}).signature_failure == Failure::kPresignExpired);
  json ab = json::parse(ToHttpResponse(a, "r").body);
  CHECK_FALSE(ab.contains("Type"));
  CHECK(ab["message"] == "mismatch");
}

TEST_CASE("code download links are signed and expire", "[control][auth]") {
  CodeUrlSigner signer(std::string(32, 'k'));
  std::string hex(64, 'a');
  std::string path = signer.PathFor(hex, 1000);
  auto q = ParseQuery(path.substr(path.find('?') + 1));
  CHECK(signer.Verify(hex, q, 999));
  CHECK(signer.Verify(hex, q, 1000));
  CHECK_FALSE(signer.Verify(hex, q, 1001));
  CHECK_FALSE(signer.Verify(std::string(64, 'b'), q, 999));
  auto forged = q;
  forged["expires"] = "5000";
  CHECK_FALSE(signer.Verify(hex, forged, 999));
  CHECK_FALSE(CodeUrlSigner(std::string(32, 'x')).Verify(hex, q, 999));
  CHECK_FALSE(signer.Verify(hex, {}, 0));
}
