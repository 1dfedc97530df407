// ControlServer in process (tests/unit/control/control_harness.h): a real loop on the test
// thread, a temp data directory, no scheduler, and a blocking client on a helper thread that
// signs its requests with SigV4 (as boto3 does) and talks HTTP over a real loopback socket;
// control.sock is driven with raw frames.
#include "control/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "control/code_store.h"
#include "control/services/lambda/lambda_api.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "net/sigv4.h"
#include "tests/unit/control/control_harness.h"
#include "tests/unit/control/store_test_util.h"
#include "tests/support/loop.h"
#include "tests/support/raw_client.h"
#include "tests/support/temp_dir.h"

using namespace geysir;
using namespace geysir::control;
using nlohmann::json;
namespace nt = geysir::testing;
namespace zt = geysir::control::testing;
using namespace geysir::control::testing;  // Harness, Client, Reply, CallOptions, FrameSocket

namespace {

std::string HelloZip(const std::string& greeting = "hello") {
  return zt::ZipBuilder()
      .File("app.py", "def handler(event, context):\n    return {'greeting': '" + greeting + "'}\n")
      .Bytes();
}

// Number of unpacked trees in the code store (64-hex directory names under code/).
size_t CodeTrees(const std::string& data_dir) {
  size_t n = 0;
  for (const auto& name : zt::ListDir(data_dir + "/code")) {
    if (name.size() == 64) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("control: first start writes a 0600 credentials file with both profiles", "[control][server]") {
  Harness h;
  struct stat st {};
  REQUIRE(stat(h.server->credentials_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::string text = zt::ReadFile(h.server->credentials_path());
  CHECK(text.find("[geysir]") != std::string::npos);
  CHECK(text.find("[default]") != std::string::npos);
  CHECK(text.find("region = us-east-1") != std::string::npos);
  CHECK(h.creds.akid.size() == 20);
  CHECK(h.creds.secret.size() == 40);
}

TEST_CASE("control: health is open, everything else needs a valid signature", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    Reply r = c.Call("GET", "/geysir/v1/health", "", {.sign = false});
    CHECK(r.status == 200);
    CHECK(r.Json()["status"] == "ok");
    CHECK(r.Json()["isolation"] == "fork");  // the default: control was not told otherwise

    r = c.Call("GET", "/2015-03-31/functions/", "", {.sign = false});
    CHECK(r.status == 403);
    CHECK(r.ErrorType() == "MissingAuthenticationTokenException");

    // Wrong secret, unknown key, skewed clock: 403 each, and the create did not happen.
    std::string zip = HelloZip();
    json create = {{"FunctionName", "f1"}, {"Runtime", "python3.11"}, {"Handler", "app.handler"},
                   {"Code", {{"ZipFile", Base64Encode(zip)}}}};
    r = c.Call("POST", "/2015-03-31/functions", create.dump(), {.secret = std::string(40, 'x')});
    CHECK(r.status == 403);
    CHECK(r.ErrorType() == "InvalidSignatureException");
    CHECK(r.Json().contains("message"));
    r = c.Call("POST", "/2015-03-31/functions", create.dump(),
               {.akid = "AKIAAAAAAAAAAAAAAAAA", .secret = std::string(40, 'x')});
    CHECK(r.status == 403);
    CHECK(r.ErrorType() == "UnrecognizedClientException");
    r = c.Call("POST", "/2015-03-31/functions", create.dump(), {.skew_s = -20 * 60});
    CHECK(r.status == 403);
    CHECK(r.ErrorType() == "InvalidSignatureException");

    r = c.Call("GET", "/2015-03-31/functions/");
    CHECK(r.status == 200);
    CHECK(r.Json()["Functions"].empty());
    CHECK(r.Header("x-amzn-requestid").size() == 36);
  });
  CHECK(CodeTrees(h.data) == 0);
}

TEST_CASE("control: a handler's failed Status is answered once, in its service's format and status",
          "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    // IAM (query protocol): the code gives the status, the AWS type the <Code>.
    Reply r = c.Call("GET", "/?Action=GetRole&RoleName=nobody&Version=2010-05-08", "", {.service = "iam"});
    CHECK(r.status == 404);
    CHECK(r.body.find("<Code>NoSuchEntity</Code>") != std::string::npos);
    CHECK(r.body.find("<Type>Sender</Type>") != std::string::npos);
    CHECK(r.body.find("The role with name nobody cannot be found.") != std::string::npos);
    // An unknown action is Unimplemented, which IAM answers 400 (its error_statuses).
    r = c.Call("GET", "/?Action=Nope&Version=2010-05-08", "", {.service = "iam"});
    CHECK(r.status == 400);
    CHECK(r.body.find("<Code>InvalidAction</Code>") != std::string::npos);

    // EventBridge (JSON 1.1): a missing rule is 400, not the 404 its code gives elsewhere.
    r = c.Call("POST", "/", json{{"Name", "nope"}}.dump(),
               {.headers = {{"X-Amz-Target", "AWSEvents.DescribeRule"}}, .service = "events"});
    CHECK(r.status == 400);
    CHECK(r.ErrorType() == "ResourceNotFoundException");
    CHECK(r.Json()["__type"] == "ResourceNotFoundException");
    CHECK(r.Json()["message"] == "Rule nope does not exist on EventBus default.");

    // S3 (rest-xml): a method a resource does not take is 405 MethodNotAllowed.
    r = c.Call("POST", "/", "", {.service = "s3"});
    CHECK(r.status == 405);
    CHECK(r.body.find("<Code>MethodNotAllowed</Code>") != std::string::npos);
    r = c.Call("HEAD", "/no-such-bucket", "", {.service = "s3"});
    CHECK(r.status == 404);

    // EventBridge Scheduler: 405 for a method a schedule does not take, 404 for a missing one.
    r = c.Call("PATCH", "/schedules/nope", "", {.service = "scheduler"});
    CHECK(r.status == 405);
    CHECK(r.ErrorType() == "MethodNotAllowedException");
    r = c.Call("GET", "/schedules/nope", "", {.service = "scheduler"});
    CHECK(r.status == 404);
    CHECK(r.ErrorType() == "ResourceNotFoundException");
    CHECK(r.Json()["Message"] == "Schedule nope does not exist.");
  });
}

TEST_CASE("control: health reports the isolation mode it was given", "[control][server]") {
  Harness h([](ControlOptions& o) { o.isolation = "restore"; });
  h.Run([&](Client& c) {
    Reply r = c.Call("GET", "/geysir/v1/health", "", {.sign = false});
    CHECK(r.status == 200);
    CHECK(r.Json()["status"] == "ok");
    CHECK(r.Json()["isolation"] == "restore");
    r = c.Call("HEAD", "/geysir/v1/health", "", {.sign = false});
    CHECK(r.status == 200);
  });
}

TEST_CASE("control: a signature is good only for Lambda's service, this region and its own body", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    json create = {{"FunctionName", "scoped"}, {"Runtime", "python3.11"}, {"Handler", "app.handler"},
                   {"Role", "arn:aws:iam::000000000000:role/test"}, {"Code", {{"ZipFile", Base64Encode(HelloZip())}}}};
    // Signed correctly, but for S3 (a registered service) or an unknown one, on Lambda's path.
    for (const char* service : {"s3", "iam", "execute-api", "nosuch"}) {
      INFO(service);
      Reply r = c.Call("POST", "/2015-03-31/functions", create.dump(), {.service = service});
      CHECK(r.status == 403);
      CHECK(r.ErrorType() == "InvalidSignatureException");
      CHECK(r.Json()["message"].get<std::string>().find("correct service: 'lambda'") != std::string::npos);
    }
    // Another region.
    Reply r = c.Call("POST", "/2015-03-31/functions", create.dump(), {.region = "eu-west-1"});
    CHECK(r.status == 403);
    CHECK(r.ErrorType() == "InvalidSignatureException");
    CHECK(r.Json()["message"].get<std::string>().find("valid region") != std::string::npos);
    // UNSIGNED-PAYLOAD (or a STREAMING marker) outside S3: the body is not what was signed.
    for (const char* marker : {"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}) {
      INFO(marker);
      r = c.Call("POST", "/2015-03-31/functions", create.dump(),
                 {.headers = {{"x-amz-content-sha256", marker}}, .content_sha256 = false});
      CHECK(r.status == 403);
      CHECK(r.ErrorType() == "InvalidSignatureException");
    }
    r = c.Call("GET", "/2015-03-31/functions/");
    CHECK(r.status == 200);
    CHECK(r.Json()["Functions"].empty());
    // The same request, signed for Lambda here, works.
    r = c.Call("POST", "/2015-03-31/functions", create.dump());
    CHECK(r.status == 201);
  });
}

TEST_CASE("control: function lifecycle create/get/list/update/delete", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    std::string zip = HelloZip();
    Reply r = c.CreateFunction("hello", zip, {{"MemorySize", 256}, {"Timeout", 10},
                                              {"Environment", {{"Variables", {{"GREETING", "hi"}}}}}});
    REQUIRE(r.status == 201);
    json cfg = r.Json();
    CHECK(cfg["FunctionName"] == "hello");
    CHECK(cfg["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:hello");
    CHECK(cfg["State"] == "Active");
    CHECK(cfg["LastUpdateStatus"] == "Successful");
    CHECK(cfg["MemorySize"] == 256);
    CHECK(cfg["Timeout"] == 10);
    CHECK(cfg["CodeSize"] == zip.size());
    CHECK(cfg["CodeSha256"] == Sha256Base64(zip));
    CHECK(cfg["Environment"]["Variables"]["GREETING"] == "hi");
    const std::string rev1 = cfg["RevisionId"];

    r = c.CreateFunction("hello", zip);
    CHECK(r.status == 409);
    CHECK(r.ErrorType() == "ResourceConflictException");
    CHECK(r.Json()["Type"] == "User");

    // GetFunction by full ARN with $LATEST; Code.Location downloads without a signature.
    r = c.Call("GET", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello%3A%24LATEST");
    REQUIRE(r.status == 200);
    json got = r.Json();
    CHECK(got["Configuration"]["RevisionId"] == rev1);
    CHECK(got["Code"]["RepositoryType"] == "S3");
    std::string location = got["Code"]["Location"];
    std::string prefix = "http://127.0.0.1:" + std::to_string(h.port);
    REQUIRE(location.rfind(prefix, 0) == 0);
    std::string code_target = location.substr(prefix.size());
    r = c.Call("GET", code_target, "", {.sign = false});
    CHECK(r.status == 200);
    CHECK(r.body == zip);
    std::string forged = code_target;
    forged[forged.size() - 1] = forged.back() == '0' ? '1' : '0';
    CHECK(c.Call("GET", forged, "", {.sign = false}).status == 403);

    r = c.Call("GET", "/2015-03-31/functions/hello/configuration");
    CHECK(r.status == 200);
    CHECK(r.Json()["Handler"] == "app.handler");

    REQUIRE(c.CreateFunction("world", zip).status == 201);
    r = c.Call("GET", "/2015-03-31/functions/?MaxItems=1");
    REQUIRE(r.status == 200);
    CHECK(r.Json()["Functions"].size() == 1);
    CHECK(r.Json()["Functions"][0]["FunctionName"] == "hello");
    std::string marker = r.Json()["NextMarker"];
    r = c.Call("GET", "/2015-03-31/functions/?MaxItems=1&Marker=" + marker);
    REQUIRE(r.status == 200);
    CHECK(r.Json()["Functions"][0]["FunctionName"] == "world");
    CHECK(c.Call("GET", "/2015-03-31/functions/?MaxItems=0").status == 400);

    r = c.Call("PUT", "/2015-03-31/functions/hello/configuration",
               json{{"MemorySize", 512}, {"Handler", "app.other"}, {"Environment", {{"Variables", {{"B2", "x"}}}}}}.dump());
    REQUIRE(r.status == 200);
    CHECK(r.Json()["MemorySize"] == 512);
    CHECK(r.Json()["Timeout"] == 10);
    CHECK(r.Json()["Handler"] == "app.other");
    CHECK(r.Json()["Environment"]["Variables"] == json{{"B2", "x"}});
    const std::string rev2 = r.Json()["RevisionId"];
    CHECK(rev2 != rev1);
    r = c.Call("PUT", "/2015-03-31/functions/hello/configuration", json{{"Timeout", 5}, {"RevisionId", rev1}}.dump());
    CHECK(r.status == 412);
    CHECK(r.ErrorType() == "PreconditionFailedException");
    CHECK(c.Call("PUT", "/2015-03-31/functions/hello/configuration", json{{"Timeout", 901}}.dump()).status == 400);

    std::string zip2 = HelloZip("bonjour");
    r = c.Call("PUT", "/2015-03-31/functions/hello/code", json{{"ZipFile", Base64Encode(zip2)}}.dump());
    REQUIRE(r.status == 200);
    CHECK(r.Json()["CodeSha256"] == Sha256Base64(zip2));
    CHECK(r.Json()["RevisionId"] != rev2);
    CHECK(r.Json()["MemorySize"] == 512);
    r = c.Call("PUT", "/2015-03-31/functions/nope/code", json{{"ZipFile", Base64Encode(zip2)}}.dump());
    CHECK(r.status == 404);

    r = c.Call("DELETE", "/2015-03-31/functions/hello");
    CHECK(r.status == 204);
    r = c.Call("GET", "/2015-03-31/functions/hello");
    CHECK(r.status == 404);
    CHECK(r.ErrorType() == "ResourceNotFoundException");
    CHECK(r.Json()["message"] == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:hello");
    CHECK(c.Call("DELETE", "/2015-03-31/functions/hello").status == 404);
    CHECK(c.Call("GET", "/2015-03-31/functions/hello:7").status == 404);
  });
}

TEST_CASE("control: invalid parameters are 400 and hostile zips leave nothing", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    std::string zip = HelloZip();
    Reply r = c.CreateFunction("bad name", zip);
    CHECK(r.status == 400);
    CHECK(r.ErrorType() == "InvalidParameterValueException");
    CHECK(c.CreateFunction("m", zip, {{"MemorySize", 100}}).status == 400);
    CHECK(c.CreateFunction("t", zip, {{"Timeout", 0}}).status == 400);
    CHECK(c.CreateFunction("rt", zip, {{"Runtime", "nodejs18.x"}}).status == 400);
    CHECK(c.CreateFunction("hd", zip, {{"Handler", "nohandler"}}).status == 400);
    r = c.Call("POST", "/2015-03-31/functions", "{not json");
    CHECK(r.status == 400);
    CHECK(r.ErrorType() == "InvalidRequestContentException");
    r = c.Call("POST", "/2015-03-31/functions",
               json{{"FunctionName", "b64"}, {"Runtime", "python3.11"}, {"Handler", "app.handler"},
                    {"Code", {{"ZipFile", "!!!notbase64"}}}}.dump());
    CHECK(r.status == 400);

    std::string traversal = zt::ZipBuilder().File("../evil.py", "x = 1\n").Bytes();
    r = c.CreateFunction("evil", traversal);
    CHECK(r.status == 400);
    CHECK(r.ErrorType() == "InvalidParameterValueException");
    std::string absolute = zt::ZipBuilder().File("/etc/evil.py", "x = 1\n").Bytes();
    CHECK(c.CreateFunction("evil2", absolute).status == 400);
    std::string symlink = zt::ZipBuilder().File("app.py", "x=1\n").Symlink("link", "/etc/passwd").Bytes();
    CHECK(c.CreateFunction("evil3", symlink).status == 400);
    CHECK(c.CreateFunction("evil4", "this is not a zip file at all").status == 400);

    r = c.Call("GET", "/2015-03-31/functions/");
    CHECK(r.Json()["Functions"].empty());

    // UpdateFunctionCode with a hostile zip changes nothing either.
    REQUIRE(c.CreateFunction("good", zip).status == 201);
    std::string rev = c.Call("GET", "/2015-03-31/functions/good/configuration").Json()["RevisionId"];
    r = c.Call("PUT", "/2015-03-31/functions/good/code", json{{"ZipFile", Base64Encode(traversal)}}.dump());
    CHECK(r.status == 400);
    json cfg = c.Call("GET", "/2015-03-31/functions/good/configuration").Json();
    CHECK(cfg["RevisionId"] == rev);
    CHECK(cfg["CodeSha256"] == Sha256Base64(zip));
  });
  CHECK(CodeTrees(h.data) == 1);
  CHECK(zt::ListDir(h.data + "/tmp").empty());
}

TEST_CASE("control: function URL configs and the route table pushed on control.sock", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    REQUIRE(c.CreateFunction("web", HelloZip()).status == 201);

    FrameSocket gw(h.socket_path);
    REQUIRE(gw.connected());
    proto::Frame sub;
    sub.header = {{"type", proto::kMsgSubscribeRoutes}};
    REQUIRE(gw.Send(sub));
    auto first = gw.NextOf(proto::kMsgRoutes);
    REQUIRE(first);
    CHECK(first->type() == proto::kMsgRoutes);
    auto t0 = first->header.get<proto::RouteTable>();
    CHECK(t0.function_urls.empty());

    Reply r = c.Call("POST", "/2021-10-31/functions/web/url", json{{"AuthType", "NONE"}}.dump());
    REQUIRE(r.status == 201);
    json url = r.Json();
    CHECK(url["AuthType"] == "NONE");
    CHECK(url["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:web");
    std::string function_url = url["FunctionUrl"];
    CHECK(function_url.rfind("http://", 0) == 0);
    CHECK(function_url.find(".lambda-url.localhost:8080/") != std::string::npos);
    CHECK(url.contains("CreationTime"));

    auto pushed = gw.NextOf(proto::kMsgRoutes);
    REQUIRE(pushed);
    auto t1 = pushed->header.get<proto::RouteTable>();
    CHECK(t1.generation > t0.generation);
    REQUIRE(t1.function_urls.size() == 1);
    const proto::FunctionUrlRoute& route = t1.function_urls[0];
    CHECK(function_url == "http://" + route.url_id + ".lambda-url.localhost:8080/");
    CHECK(route.function.name == "web");
    CHECK(route.function.handler == "app.handler");
    CHECK(route.function.code_dir.rfind(h.data + "/code/", 0) == 0);

    r = c.Call("POST", "/2021-10-31/functions/web/url", json{{"AuthType", "NONE"}}.dump());
    CHECK(r.status == 409);
    CHECK(r.ErrorType() == "ResourceConflictException");
    r = c.Call("POST", "/2021-10-31/functions/nope/url", json{{"AuthType", "NONE"}}.dump());
    CHECK(r.status == 404);
    r = c.Call("POST", "/2021-10-31/functions/web/url", json{{"AuthType", "AWS_IAM"}}.dump());
    CHECK(r.status == 400);

    r = c.Call("GET", "/2021-10-31/functions/web/url");
    CHECK(r.status == 200);
    CHECK(r.Json()["FunctionUrl"] == function_url);
    CHECK(r.Json().contains("LastModifiedTime"));
    r = c.Call("GET", "/2021-10-31/functions/web/urls");
    CHECK(r.status == 200);
    CHECK(r.Json()["FunctionUrlConfigs"].size() == 1);

    // A configuration change of a function with a URL is pushed too (new revision).
    r = c.Call("PUT", "/2015-03-31/functions/web/configuration", json{{"Timeout", 9}}.dump());
    REQUIRE(r.status == 200);
    auto t2 = gw.NextOf(proto::kMsgRoutes);
    REQUIRE(t2);
    auto table2 = t2->header.get<proto::RouteTable>();
    REQUIRE(table2.function_urls.size() == 1);
    CHECK(table2.function_urls[0].function.timeout_s == 9);
    CHECK(table2.generation > t1.generation);

    r = c.Call("DELETE", "/2021-10-31/functions/web/url");
    CHECK(r.status == 204);
    auto t3 = gw.NextOf(proto::kMsgRoutes);
    REQUIRE(t3);
    CHECK(t3->header.get<proto::RouteTable>().function_urls.empty());
    r = c.Call("GET", "/2021-10-31/functions/web/url");
    CHECK(r.status == 404);
    CHECK(c.Call("DELETE", "/2021-10-31/functions/web/url").status == 404);
    r = c.Call("GET", "/2021-10-31/functions/web/urls");
    CHECK(r.status == 200);
    CHECK(r.Json()["FunctionUrlConfigs"].empty());
  });
}

TEST_CASE("control: Invoke validation without a scheduler", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    REQUIRE(c.CreateFunction("inv", HelloZip()).status == 201);
    Reply r = c.Call("POST", "/2015-03-31/functions/inv/invocations", "{}",
                     {.headers = {{"X-Amz-Invocation-Type", "DryRun"}}});
    CHECK(r.status == 204);
    r = c.Call("POST", "/2015-03-31/functions/inv/invocations", "{}");
    CHECK(r.status == 502);
    CHECK(r.ErrorType() == "ServiceException");
    CHECK(r.Json()["message"].get<std::string>().find("scheduler") != std::string::npos);
    r = c.Call("POST", "/2015-03-31/functions/missing/invocations", "{}");
    CHECK(r.status == 404);
    r = c.Call("POST", "/2015-03-31/functions/inv/invocations", "{oops");
    CHECK(r.status == 400);
    CHECK(r.ErrorType() == "InvalidRequestContentException");
    r = c.Call("POST", "/2015-03-31/functions/inv/invocations", "\"" + std::string(6 * 1024 * 1024, 'x') + "\"");
    CHECK(r.status == 413);
    CHECK(r.ErrorType() == "RequestTooLargeException");
    r = c.Call("POST", "/2015-03-31/functions/inv/invocations", "{}",
               {.headers = {{"X-Amz-Invocation-Type", "Sometimes"}}});
    CHECK(r.status == 400);
  });
}

TEST_CASE("control: alias errors name what is missing: the function, the alias or a version", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    const std::string arn = "arn:aws:lambda:us-east-1:000000000000:function:al";
    auto message = [](const Reply& r) { return r.Json()["message"].get<std::string>(); };
    REQUIRE(c.CreateFunction("al", HelloZip()).status == 201);
    REQUIRE(c.Call("POST", "/2015-03-31/functions/al/versions", "{}").status == 201);  // version 1

    Reply r = c.Call("POST", "/2015-03-31/functions/al/aliases", json{{"Name", "live"}, {"FunctionVersion", "7"}}.dump());
    CHECK(r.status == 404);
    CHECK(r.ErrorType() == "ResourceNotFoundException");
    CHECK(message(r) == "Function not found: " + arn + ":7");
    // The primary version exists; the additional one does not.
    r = c.Call("POST", "/2015-03-31/functions/al/aliases",
               json{{"Name", "live"}, {"FunctionVersion", "1"},
                    {"RoutingConfig", {{"AdditionalVersionWeights", {{"9", 0.5}}}}}}.dump());
    CHECK(r.status == 404);
    CHECK(message(r) == "Function not found: " + arn + ":9");
    r = c.Call("POST", "/2015-03-31/functions/nofn/aliases", json{{"Name", "live"}, {"FunctionVersion", "1"}}.dump());
    CHECK(message(r) == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nofn");

    r = c.Call("GET", "/2015-03-31/functions/al/aliases/live");
    CHECK(r.status == 404);
    CHECK(message(r) == "Cannot find alias arn: " + arn + ":live");
    r = c.Call("PUT", "/2015-03-31/functions/al/aliases/live", json{{"FunctionVersion", "1"}}.dump());
    CHECK(r.status == 404);
    CHECK(message(r) == "Cannot find alias arn: " + arn + ":live");

    REQUIRE(c.Call("POST", "/2015-03-31/functions/al/aliases", json{{"Name", "live"}, {"FunctionVersion", "1"}}.dump())
                .status == 201);
    r = c.Call("PUT", "/2015-03-31/functions/al/aliases/live", json{{"FunctionVersion", "3"}}.dump());
    CHECK(r.status == 404);
    CHECK(message(r) == "Function not found: " + arn + ":3");
    r = c.Call("PUT", "/2015-03-31/functions/al/aliases/live",
               json{{"RoutingConfig", {{"AdditionalVersionWeights", {{"4", 0.25}}}}}}.dump());
    CHECK(message(r) == "Function not found: " + arn + ":4");
    CHECK(c.Call("GET", "/2015-03-31/functions/al/aliases/live").Json()["FunctionVersion"] == "1");
  });
}

TEST_CASE("control: scheduler log frames are stored and served by the native logs API", "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    REQUIRE(c.CreateFunction("logged", HelloZip()).status == 201);
    CHECK(c.Call("GET", "/geysir/v1/functions/ghost/logs").status == 404);

    FrameSocket sched(h.socket_path);
    REQUIRE(sched.connected());
    proto::LogBatch batch;
    batch.function_name = "logged";
    batch.version = "$LATEST";
    batch.log_stream = "2026/11/27/[$LATEST]abc";
    batch.request_id = "req-1";
    batch.events = {{1000, "START RequestId: req-1 Version: $LATEST"}, {1001, "hello from the handler"}};
    REQUIRE(sched.Send(proto::MakeFrame(proto::kMsgLogs, batch)));

    json body;
    for (int i = 0; i < 100; ++i) {  // the frame is handled asynchronously: poll, bounded
      Reply r = c.Call("GET", "/geysir/v1/functions/logged/logs?start_time=0&limit=10");
      REQUIRE(r.status == 200);
      body = r.Json();
      if (body["events"].size() == 2) break;
      usleep(20 * 1000);
    }
    REQUIRE(body["events"].size() == 2);
    CHECK(body["events"][0]["timestamp"] == 1000);
    CHECK(body["events"][1]["message"] == "hello from the handler");
    CHECK(body["events"][1]["requestId"] == "req-1");
    CHECK(body["events"][1]["logStream"] == "2026/11/27/[$LATEST]abc");
    CHECK(body["nextStartTime"] == 1002);

    Reply r = c.Call("GET", "/geysir/v1/functions/logged/logs?start_time=1001");
    CHECK(r.Json()["events"].size() == 1);
    r = c.Call("GET", "/geysir/v1/functions/logged/logs?request_id=nope");
    CHECK(r.Json()["events"].empty());
    CHECK(c.Call("GET", "/geysir/v1/functions/logged/logs?limit=abc").status == 400);
    CHECK(c.Call("GET", "/geysir/v1/functions/logged/logs", "", {.sign = false}).status == 403);
  });
}

TEST_CASE("control: a logs frame of several batches is stored in one go and acknowledged up to its last seq",
          "[control][server]") {
  Harness h;
  h.Run([&](Client& c) {
    REQUIRE(c.CreateFunction("grouped", HelloZip()).status == 201);
    FrameSocket sched(h.socket_path);
    REQUIRE(sched.connected());
    proto::LogBatches frame;
    for (int i = 1; i <= 3; ++i) {
      proto::LogBatch b;
      b.function_name = "grouped";
      b.version = "$LATEST";
      b.log_stream = "2026/11/27/[$LATEST]abc";
      b.request_id = "req-" + std::to_string(i);
      b.events = {{1000 + i, "line of req-" + std::to_string(i)}};
      b.outcome = "ok";
      b.sender = "sched-1";
      b.seq = static_cast<uint64_t>(i);
      frame.batches.push_back(b);
    }
    REQUIRE(sched.Send(proto::MakeFrame(proto::kMsgLogs, frame)));
    auto ack = sched.NextOf(proto::kMsgLogsAck);
    REQUIRE(ack);
    CHECK(ack->header.value("sender", "") == "sched-1");
    CHECK(ack->header.value("seq", uint64_t{0}) == 3);
    // Acknowledged after the commit: every line is there now, in order.
    json body = c.Call("GET", "/geysir/v1/functions/grouped/logs?start_time=0&limit=10").Json();
    REQUIRE(body["events"].size() == 3);
    CHECK(body["events"][0]["message"] == "line of req-1");
    CHECK(body["events"][2]["requestId"] == "req-3");
    // The same frame again (a resend after a reconnect): acknowledged, stored once.
    REQUIRE(sched.Send(proto::MakeFrame(proto::kMsgLogs, frame)));
    ack = sched.NextOf(proto::kMsgLogsAck);
    REQUIRE(ack);
    CHECK(ack->header.value("seq", uint64_t{0}) == 3);
    CHECK(c.Call("GET", "/geysir/v1/functions/grouped/logs?start_time=0&limit=10").Json()["events"].size() == 3);
    // A frame that is not batches is not acknowledged: the connection closes, so the sender
    // resends rather than waiting for an acknowledgement forever.
    proto::Frame bad;
    bad.header = json{{"type", "logs"}, {"batches", json::array({json{{"events", 5}}})}};
    REQUIRE(sched.Send(bad));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(sched.NextOf(proto::kMsgLogsAck));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));  // closed, not the 3 s timeout
  });
}

TEST_CASE("control: code no function references is collected after the grace period", "[control][server]") {
  Harness h([](ControlOptions& o) {
    o.code_gc_interval_ms = 20;
    o.code_gc_grace_ms = 0;
  });
  h.Run([&](Client& c) {
    std::string zip1 = HelloZip("one"), zip2 = HelloZip("two");
    REQUIRE(c.CreateFunction("gc", zip1).status == 201);
    REQUIRE(c.CreateFunction("gc-twin", zip1).status == 201);  // same code, stored once
    REQUIRE(c.Call("PUT", "/2015-03-31/functions/gc/code", json{{"ZipFile", Base64Encode(zip2)}}.dump()).status == 200);
    usleep(200 * 1000);
    CHECK(CodeTrees(h.data) == 2);  // zip1 is still used by gc-twin
    REQUIRE(c.Call("DELETE", "/2015-03-31/functions/gc-twin").status == 204);
    for (int i = 0; i < 100 && CodeTrees(h.data) != 1; ++i) usleep(20 * 1000);
    CHECK(CodeTrees(h.data) == 1);
    // The remaining function still works and its code is intact.
    Reply r = c.Call("GET", "/2015-03-31/functions/gc");
    REQUIRE(r.status == 200);
    CHECK(r.Json()["Configuration"]["CodeSha256"] == Sha256Base64(zip2));
  });
}
