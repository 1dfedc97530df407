// API Gateway's model (control/services/apigateway/apigateway_model.h) on a real SQLite file in a
// temporary directory: REST APIs with their resources, methods, integrations, deployments and
// stages; HTTP APIs with integrations, routes and stages; the errors a client sees for each
// refusal; what survives a reopen of the store; and the route table the service contributes to
// the gateway. The last tests stand control up whole and drive the "apigateway" service with
// signed HTTP requests, for what only its handlers do (get, update, base path mappings).
#include "control/services/apigateway/apigateway_model.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "control/aws_error.h"
#include "control/code_store.h"
#include "control/services/lambda/lambda_api.h"
#include "control/service.h"
#include "control/services/apigateway/apigateway.h"
#include "control/services/domains.h"
#include "control/store.h"
#include "proto/messages.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_client.h"
#include "tests/unit/control/control_harness.h"

namespace geysir::control {
namespace {

using apigw::ApiGatewayModel;
using nlohmann::json;
namespace nt = geysir::testing;
namespace ct = geysir::control::testing;

constexpr const char* kWebArn = "arn:aws:lambda:us-east-1:000000000000:function:web";

std::string ProxyUri(const std::string& function_arn) {
  return "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/" + function_arn + "/invocations";
}

// What ServiceHost offers the model, over a real Store and CodeStore in `dir`. Functions the
// route table may resolve are listed in `functions` (by ARN); the model never invokes anything,
// so the scheduler is absent and asking for it fails the test.
class StoreHost final : public ServiceHost {
 public:
  explicit StoreHost(const std::string& dir) : dir_(dir) {
    uv_loop_init(&loop_);
    auto store = Store::Open(dir + "/geysir.db");
    REQUIRE(store.ok());
    store_ = std::move(store).value();
    auto code = CodeStore::Open(dir);
    REQUIRE(code.ok());
    code_.emplace(std::move(code).value());
  }
  ~StoreHost() override { uv_loop_close(&loop_); }

  uv_loop_t* loop() override { return &loop_; }
  Store& store() override { return *store_; }
  CodeStore& code_store() override { return *code_; }
  const ApiContext& api() const override { return api_; }
  const std::string& data_dir() const override { return dir_; }
  int64_t NowMs() const override { return now_ms; }
  proto::InvokeClient& scheduler() override { throw std::logic_error("the API Gateway model never invokes"); }
  Status InvokeFunction(InvokeCall, proto::InvokeClient::Callback) override {
    return Status::Unavailable("no scheduler in this test");
  }
  Result<proto::FunctionConfig> ResolveFunction(std::string_view function) override {
    auto it = functions.find(std::string(function));
    if (it == functions.end()) return Status::NotFound("Function not found: " + std::string(function));
    return it->second;
  }
  void RoutesChanged() override { ++routes_changed; }
  bool GatewayRoutesTo(const std::string&) override { return false; }

  int64_t now_ms = 1'800'000'000'000;
  int routes_changed = 0;
  std::map<std::string, proto::FunctionConfig> functions;

 private:
  std::string dir_;
  uv_loop_t loop_;
  std::unique_ptr<Store> store_;
  std::optional<CodeStore> code_;
  ApiContext api_;
};

// The "apigateway" service (its tables made by Start) over a StoreHost, and its model.
struct ApiGateway {
  explicit ApiGateway(const std::string& dir) : host(dir), domains(MakeDomainsService(host)), service(host, *domains) {
    Status st = service.Start();
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  ApiGatewayModel& model() { return service.model(); }
  proto::RouteTable Routes() {
    proto::RouteTable table;
    service.ContributeRoutes(table);
    return table;
  }

  StoreHost host;
  std::unique_ptr<DomainsService> domains;
  ApiGatewayService service;
};

proto::FunctionConfig Web() {
  proto::FunctionConfig f;
  f.name = "web";
  f.arn = kWebArn;
  f.handler = "app.handler";
  return f;
}

// The answer a client gets for `st`: status, x-amzn-ErrorType and message.
struct ClientError {
  int status;
  std::string type;
  std::string message;
};
ClientError AsClientSees(const Status& st) {
  AwsError e = FromStatus(st);
  return {e.http_status, e.type, e.message};
}

bool IsId(const std::string& id, size_t length) {
  if (id.size() != length) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// The table must outlive the pointer: a temporary table is refused at compile time.
const proto::ApiGatewayApi* FindApi(proto::RouteTable&&, const std::string&) = delete;
const proto::ApiGatewayApi* FindApi(const proto::RouteTable& t, const std::string& id) {
  for (const auto& a : t.apis) {
    if (a.api_id == id) return &a;
  }
  return nullptr;
}

const proto::ApiStage* FindStage(const proto::ApiGatewayApi& api, const std::string& name) {
  for (const auto& s : api.stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const proto::ApiRoute* FindRoute(const proto::ApiStage& stage, const std::string& method, const std::string& path) {
  for (const auto& r : stage.routes) {
    if (r.method == method && r.path == path) return &r;
  }
  return nullptr;
}

// A REST API with /, /users, /users/{id} and /{proxy+}, as the tests below build it.
struct ShopApi {
  std::string id, root, users, user, proxy;
};
ShopApi MakeShop(ApiGatewayModel& m) {
  ShopApi s;
  apigw::RestApiInput in;
  in.name = "shop";
  auto made = m.CreateRestApi(in);
  REQUIRE(made.ok());
  s.id = made->id;
  s.root = made->root_resource_id;
  auto users = m.CreateResource(s.id, s.root, "users");
  REQUIRE(users.ok());
  s.users = *users;
  auto user = m.CreateResource(s.id, s.users, "{id}");
  REQUIRE(user.ok());
  s.user = *user;
  auto proxy = m.CreateResource(s.id, s.root, "{proxy+}");
  REQUIRE(proxy.ok());
  s.proxy = *proxy;
  return s;
}

}  // namespace

TEST_CASE("apigateway model: a REST API's ids, resource paths and routes once deployed", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  gw.host.functions[kWebArn] = Web();
  ApiGatewayModel& m = gw.model();
  ShopApi s = MakeShop(m);
  CHECK(IsId(s.id, 10));
  CHECK(IsId(s.root, 10));
  CHECK(IsId(s.users, 6));
  CHECK(s.users != s.user);

  apigw::IntegrationInput proxy;
  proxy.uri = ProxyUri(kWebArn);
  REQUIRE(m.PutMethod(s.id, s.user, "get", {}).ok());  // verbs are upper-cased
  REQUIRE(m.PutIntegration(s.id, s.user, "GET", proxy).ok());
  apigw::MethodInput keyed;
  keyed.api_key_required = true;
  REQUIRE(m.PutMethod(s.id, s.proxy, "ANY", keyed).ok());
  apigw::IntegrationInput slow = proxy;
  slow.timeout_ms = 5000;
  REQUIRE(m.PutIntegration(s.id, s.proxy, "ANY", slow).ok());
  REQUIRE(m.PutMethod(s.id, s.users, "POST", {}).ok());  // no integration: a route without a function

  // Nothing is served before a deployment.
  const proto::RouteTable undeployed = gw.Routes();
  const proto::ApiGatewayApi* before = FindApi(undeployed, s.id);
  REQUIRE(before != nullptr);
  CHECK(before->kind == "rest");
  CHECK(before->stages.empty());

  apigw::DeploymentInput dep;
  dep.stage_name = "prod";
  dep.variables = {{"table", "orders"}};
  auto dep_id = m.CreateDeployment(s.id, dep);
  REQUIRE(dep_id.ok());
  CHECK(IsId(*dep_id, 6));

  proto::RouteTable table = gw.Routes();
  const proto::ApiGatewayApi* api = FindApi(table, s.id);
  REQUIRE(api != nullptr);
  REQUIRE(api->stages.size() == 1);
  const proto::ApiStage& prod = api->stages[0];
  CHECK(prod.name == "prod");
  CHECK(prod.variables == std::map<std::string, std::string>{{"table", "orders"}});
  REQUIRE(prod.routes.size() == 3);

  const proto::ApiRoute* get_user = FindRoute(prod, "GET", "/users/{id}");
  REQUIRE(get_user != nullptr);
  CHECK(get_user->resource_id == s.user);
  CHECK(get_user->payload_format == "1.0");
  CHECK(get_user->timeout_ms == 29000);
  CHECK_FALSE(get_user->api_key_required);
  REQUIRE(get_user->function.has_value());
  CHECK(get_user->function->name == "web");

  const proto::ApiRoute* any = FindRoute(prod, "ANY", "/{proxy+}");
  REQUIRE(any != nullptr);
  CHECK(any->api_key_required);
  CHECK(any->timeout_ms == 5000);
  CHECK(any->function.has_value());

  const proto::ApiRoute* post = FindRoute(prod, "POST", "/users");
  REQUIRE(post != nullptr);
  CHECK_FALSE(post->function.has_value());
}

TEST_CASE("apigateway model: a route to a function that does not exist has no function", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());  // no functions known to the host
  ApiGatewayModel& m = gw.model();
  ShopApi s = MakeShop(m);
  apigw::IntegrationInput proxy;
  proxy.uri = ProxyUri("arn:aws:lambda:us-east-1:000000000000:function:missing");
  REQUIRE(m.PutMethod(s.id, s.root, "GET", {}).ok());
  REQUIRE(m.PutIntegration(s.id, s.root, "GET", proxy).ok());  // the function need not exist yet
  apigw::DeploymentInput dep;
  dep.stage_name = "dev";
  REQUIRE(m.CreateDeployment(s.id, dep).ok());
  const proto::RouteTable served = gw.Routes();
  const proto::ApiGatewayApi* api = FindApi(served, s.id);
  REQUIRE(api != nullptr);
  REQUIRE(api->stages.size() == 1);
  const proto::ApiRoute* r = FindRoute(api->stages[0], "GET", "/");
  REQUIRE(r != nullptr);
  CHECK_FALSE(r->function.has_value());
}

TEST_CASE("apigateway model: a deployment is a snapshot, and only deployments publish", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  ApiGatewayModel& m = gw.model();
  ShopApi s = MakeShop(m);
  REQUIRE(m.PutMethod(s.id, s.users, "GET", {}).ok());
  const int published = gw.host.routes_changed;
  apigw::DeploymentInput dep;
  dep.stage_name = "prod";
  auto first = m.CreateDeployment(s.id, dep);
  REQUIRE(first.ok());
  CHECK(gw.host.routes_changed == published + 1);

  // Editing resources and methods changes nothing served until the next deployment.
  REQUIRE(m.PutMethod(s.id, s.user, "DELETE", {}).ok());
  REQUIRE(m.CreateResource(s.id, s.root, "extra").ok());
  CHECK(gw.host.routes_changed == published + 1);
  {
    const proto::RouteTable after_edit = gw.Routes();
    const proto::ApiGatewayApi* api = FindApi(after_edit, s.id);
    REQUIRE(api != nullptr);
    REQUIRE(api->stages.size() == 1);
    CHECK(api->stages[0].routes.size() == 1);
    CHECK(FindRoute(api->stages[0], "DELETE", "/users/{id}") == nullptr);
  }

  // Deploying to the same stage points it at the new snapshot.
  auto second = m.CreateDeployment(s.id, dep);
  REQUIRE(second.ok());
  CHECK(*second != *first);
  {
    const proto::RouteTable redeployed = gw.Routes();
    const proto::ApiGatewayApi* api = FindApi(redeployed, s.id);
    REQUIRE(api != nullptr);
    REQUIRE(api->stages.size() == 1);
    CHECK(FindRoute(api->stages[0], "DELETE", "/users/{id}") != nullptr);
  }

  // A second stage on the first deployment serves the old snapshot beside it.
  REQUIRE(m.CreateStage(s.id, "old", *first, "the first cut", {{"v", "1"}}).ok());
  const proto::RouteTable two_stages = gw.Routes();
  const proto::ApiGatewayApi* api = FindApi(two_stages, s.id);
  REQUIRE(api != nullptr);
  const proto::ApiStage* old = FindStage(*api, "old");
  REQUIRE(old != nullptr);
  CHECK(old->variables.at("v") == "1");
  CHECK(FindRoute(*old, "DELETE", "/users/{id}") == nullptr);
  CHECK(FindRoute(*old, "GET", "/users") != nullptr);

  // A deployment a stage points at cannot go; once the stage is gone it can.
  auto refused = m.DeleteDeployment(s.id, *first);
  REQUIRE_FALSE(refused.ok());
  ClientError e = AsClientSees(refused.status());
  CHECK(e.status == 400);
  CHECK(e.type == "BadRequestException");
  CHECK(e.message == "Active stages pointing to this deployment must be moved or deleted");
  auto gone = m.DeleteStage(s.id, "old");
  REQUIRE(gone.ok());
  CHECK(*gone);
  auto deleted = m.DeleteDeployment(s.id, *first);
  REQUIRE(deleted.ok());
  CHECK(*deleted);
  CHECK_FALSE(*m.DeleteDeployment(s.id, *first));  // already gone: false, not an error
  CHECK_FALSE(*m.DeleteStage(s.id, "old"));
}

TEST_CASE("apigateway model: deleting a resource takes its children, never the root", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  ApiGatewayModel& m = gw.model();
  ShopApi s = MakeShop(m);
  REQUIRE(m.PutMethod(s.id, s.user, "GET", {}).ok());
  REQUIRE(m.PutMethod(s.id, s.proxy, "ANY", {}).ok());

  auto root = m.DeleteResource(s.id, s.root);
  REQUIRE_FALSE(root.ok());
  CHECK(AsClientSees(root.status()).status == 400);
  CHECK(AsClientSees(root.status()).message == "Cannot delete the root resource of a REST API");

  auto users = m.DeleteResource(s.id, s.users);
  REQUIRE(users.ok());
  CHECK(*users);
  CHECK_FALSE(*m.DeleteResource(s.id, s.user));  // went with its parent
  // The path is free again.
  CHECK(m.CreateResource(s.id, s.root, "users").ok());

  apigw::DeploymentInput dep;
  dep.stage_name = "prod";
  REQUIRE(m.CreateDeployment(s.id, dep).ok());
  const proto::RouteTable after_delete = gw.Routes();
  const proto::ApiGatewayApi* api = FindApi(after_delete, s.id);
  REQUIRE(api != nullptr);
  REQUIRE(api->stages.size() == 1);
  CHECK(api->stages[0].routes.size() == 1);
  CHECK(FindRoute(api->stages[0], "ANY", "/{proxy+}") != nullptr);

  auto method = m.DeleteMethod(s.id, s.proxy, "ANY");
  REQUIRE(method.ok());
  CHECK(*method);
  CHECK_FALSE(*m.DeleteMethod(s.id, s.proxy, "ANY"));
}

TEST_CASE("apigateway model: refusals carry API Gateway's error types and status codes", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  ApiGatewayModel& m = gw.model();
  ShopApi s = MakeShop(m);

  SECTION("an unknown API is NotFoundException naming the account and id") {
    auto r = m.CreateResource("nosuchapi0", s.root, "x");
    REQUIRE_FALSE(r.ok());
    ClientError e = AsClientSees(r.status());
    CHECK(e.status == 404);
    CHECK(e.type == "NotFoundException");
    CHECK(e.message == "Invalid API identifier specified 000000000000:nosuchapi0");
    CHECK(AsClientSees(m.PutMethod("nosuchapi0", s.root, "GET", {})).status == 404);
    // An HTTP API's id is not a REST API's.
    apigw::HttpApiInput h;
    h.name = "h";
    auto http = m.CreateHttpApi(h);
    REQUIRE(http.ok());
    CHECK(AsClientSees(m.CreateResource(*http, s.root, "x").status()).type == "NotFoundException");
    // Deleting what is not there answers false (a stack deletion may be repeated).
    auto del = m.DeleteRestApi("nosuchapi0");
    REQUIRE(del.ok());
    CHECK_FALSE(*del);
  }
  SECTION("unknown resources, methods and deployments are NotFoundException") {
    ClientError e = AsClientSees(m.CreateResource(s.id, "nosuch", "x").status());
    CHECK(e.status == 404);
    CHECK(e.message == "Invalid Resource identifier specified");
    apigw::IntegrationInput in;
    in.uri = ProxyUri(kWebArn);
    e = AsClientSees(m.PutIntegration(s.id, s.users, "GET", in));
    CHECK(e.status == 404);
    CHECK(e.type == "NotFoundException");
    CHECK(e.message == "Invalid Method identifier specified");
    REQUIRE(m.PutMethod(s.id, s.users, "GET", {}).ok());
    apigw::DeploymentInput dep;
    REQUIRE(m.CreateDeployment(s.id, dep).ok());  // a deployment without a stage
    e = AsClientSees(m.CreateStage(s.id, "prod", "nosuch", "", {}));
    CHECK(e.status == 404);
    CHECK(e.message == "Invalid Deployment identifier specified");
  }
  SECTION("a path part taken under the same parent is ConflictException") {
    ClientError e = AsClientSees(m.CreateResource(s.id, s.root, "users").status());
    CHECK(e.status == 409);
    CHECK(e.type == "ConflictException");
    CHECK(e.message == "Another resource with the same parent already has this name: users");
    // The same part under another parent is another path.
    CHECK(m.CreateResource(s.id, s.user, "users").ok());
  }
  SECTION("a stage that exists is ConflictException") {
    REQUIRE(m.PutMethod(s.id, s.users, "GET", {}).ok());
    apigw::DeploymentInput dep;
    dep.stage_name = "prod";
    auto d = m.CreateDeployment(s.id, dep);
    REQUIRE(d.ok());
    ClientError e = AsClientSees(m.CreateStage(s.id, "prod", *d, "", {}));
    CHECK(e.status == 409);
    CHECK(e.type == "ConflictException");
  }
  SECTION("malformed input is BadRequestException") {
    apigw::RestApiInput unnamed;
    ClientError e = AsClientSees(m.CreateRestApi(unnamed).status());
    CHECK(e.status == 400);
    CHECK(e.type == "BadRequestException");
    CHECK(e.message == "Invalid REST API name specified: name is required");
    for (const char* part : {"", "a/b", "{", "{}", "{+}", "{a b}", "{x+", "x}"}) {
      INFO("path part '" << part << "'");
      e = AsClientSees(m.CreateResource(s.id, s.root, part).status());
      CHECK(e.status == 400);
      CHECK(e.type == "BadRequestException");
    }
    for (const char* part : {"{a.b-c_d}", "{greedy+}", "v1.json"}) {
      INFO("path part '" << part << "'");
      CHECK(m.CreateResource(s.id, s.users, part).ok());
    }
    e = AsClientSees(m.PutMethod(s.id, s.users, "FETCH", {}));
    CHECK(e.status == 400);
    CHECK(e.message == "Invalid HttpMethod specified. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY");
    REQUIRE(m.PutMethod(s.id, s.users, "GET", {}).ok());
    apigw::IntegrationInput soap;
    soap.type = "SOAP";
    soap.uri = ProxyUri(kWebArn);
    e = AsClientSees(m.PutIntegration(s.id, s.users, "GET", soap));
    CHECK(e.status == 400);
    CHECK(e.message == "Invalid integration type specified: SOAP");
    apigw::IntegrationInput no_function;
    no_function.uri = "arn:aws:apigateway:us-east-1:s3:path/bucket";
    CHECK(AsClientSees(m.PutIntegration(s.id, s.users, "GET", no_function)).type == "BadRequestException");
    apigw::IntegrationInput mock;  // only AWS_PROXY needs a function
    mock.type = "MOCK";
    CHECK(m.PutIntegration(s.id, s.users, "GET", mock).ok());
    CHECK(AsClientSees(m.CreateStage(s.id, "", "x", "", {})).status == 400);
  }
  SECTION("an API without methods cannot be deployed") {
    apigw::DeploymentInput dep;
    dep.stage_name = "prod";
    ClientError e = AsClientSees(m.CreateDeployment(s.id, dep).status());
    CHECK(e.status == 400);
    CHECK(e.type == "BadRequestException");
    CHECK(e.message == "The REST API doesn't contain any methods");
  }
}

TEST_CASE("apigateway model: an HTTP API's integrations, routes and stages in the route table", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  gw.host.functions[kWebArn] = Web();
  ApiGatewayModel& m = gw.model();

  apigw::HttpApiInput in;
  in.name = "items";
  auto id = m.CreateHttpApi(in);
  REQUIRE(id.ok());
  CHECK(IsId(*id, 10));
  CHECK(m.Endpoint(*id) == "http://" + *id + ".execute-api.localhost:8080");

  apigw::V2IntegrationInput integ;
  integ.integration_uri = kWebArn;  // v2 takes the function's ARN itself
  auto iid = m.CreateV2Integration(*id, integ);
  REQUIRE(iid.ok());
  CHECK(IsId(*iid, 7));
  apigw::V2IntegrationInput v1_payload;
  v1_payload.integration_uri = ProxyUri(kWebArn);
  v1_payload.payload_format_version = "1.0";
  v1_payload.timeout_ms = 8000;
  auto iid1 = m.CreateV2Integration(*id, v1_payload);
  REQUIRE(iid1.ok());

  apigw::V2RouteInput get_item;
  get_item.route_key = "GET /items/{id}";
  get_item.target = "integrations/" + *iid;
  auto rid = m.CreateV2Route(*id, get_item);
  REQUIRE(rid.ok());
  apigw::V2RouteInput fallback;
  fallback.route_key = "$default";
  fallback.target = "integrations/" + *iid1;
  fallback.api_key_required = true;
  REQUIRE(m.CreateV2Route(*id, fallback).ok());

  const int before = gw.host.routes_changed;
  apigw::V2StageInput stage;
  stage.stage_name = "$default";
  stage.auto_deploy = true;
  stage.variables = {{"env", "dev"}};
  REQUIRE(m.CreateV2Stage(*id, stage).ok());
  CHECK(gw.host.routes_changed == before + 1);  // HTTP APIs serve their routes at once
  apigw::V2StageInput beta;
  beta.stage_name = "beta";
  REQUIRE(m.CreateV2Stage(*id, beta).ok());

  const proto::RouteTable served = gw.Routes();
  const proto::ApiGatewayApi* api = FindApi(served, *id);
  REQUIRE(api != nullptr);
  CHECK(api->kind == "http");
  REQUIRE(api->stages.size() == 2);
  const proto::ApiStage* def = FindStage(*api, "$default");
  REQUIRE(def != nullptr);
  CHECK(def->variables.at("env") == "dev");
  REQUIRE(def->routes.size() == 2);
  const proto::ApiRoute* r = FindRoute(*def, "GET", "/items/{id}");
  REQUIRE(r != nullptr);
  CHECK(r->route_key == "GET /items/{id}");
  CHECK(r->resource_id == *rid);
  CHECK(r->payload_format == "2.0");
  CHECK(r->timeout_ms == 30000);
  REQUIRE(r->function.has_value());
  CHECK(r->function->arn == kWebArn);
  const proto::ApiRoute* d = FindRoute(*def, "ANY", "$default");
  REQUIRE(d != nullptr);
  CHECK(d->payload_format == "1.0");
  CHECK(d->timeout_ms == 8000);
  CHECK(d->api_key_required);
  CHECK(d->function.has_value());
  const proto::ApiStage* b = FindStage(*api, "beta");
  REQUIRE(b != nullptr);
  CHECK(b->routes.size() == 2);  // every stage serves the current routes

  // Deleting the route takes it off every stage; the API, integration and stage answer false
  // once they are gone.
  REQUIRE(*m.DeleteV2Route(*id, *rid));
  const proto::RouteTable route_deleted = gw.Routes();
  api = FindApi(route_deleted, *id);
  REQUIRE(api != nullptr);
  CHECK(FindRoute(*FindStage(*api, "beta"), "GET", "/items/{id}") == nullptr);
  CHECK_FALSE(*m.DeleteV2Route(*id, *rid));
  CHECK(*m.DeleteV2Stage(*id, "beta"));
  CHECK_FALSE(*m.DeleteV2Stage(*id, "beta"));
  CHECK(*m.DeleteV2Integration(*id, *iid));
  CHECK_FALSE(*m.DeleteV2Integration(*id, *iid));
  CHECK(*m.DeleteHttpApi(*id));
  CHECK_FALSE(*m.DeleteHttpApi(*id));
  const proto::RouteTable api_deleted = gw.Routes();
  CHECK(FindApi(api_deleted, *id) == nullptr);
}

TEST_CASE("apigateway model: HTTP API refusals", "[control][apigateway]") {
  nt::TempDir dir;
  ApiGateway gw(dir.path());
  ApiGatewayModel& m = gw.model();
  apigw::HttpApiInput in;
  in.name = "items";
  auto id = m.CreateHttpApi(in);
  REQUIRE(id.ok());

  apigw::HttpApiInput ws;
  ws.name = "chat";
  ws.protocol_type = "WEBSOCKET";
  ClientError e = AsClientSees(m.CreateHttpApi(ws).status());
  CHECK(e.status == 400);
  CHECK(e.type == "BadRequestException");
  CHECK(AsClientSees(m.CreateHttpApi(apigw::HttpApiInput{}).status()).status == 400);  // no name

  apigw::V2IntegrationInput integ;
  integ.integration_uri = kWebArn;
  integ.payload_format_version = "3.0";
  CHECK(AsClientSees(m.CreateV2Integration(*id, integ).status()).message ==
        "Invalid payloadFormatVersion '3.0': use 1.0 or 2.0");
  integ.payload_format_version = "2.0";
  integ.integration_uri = "not-an-arn";
  CHECK(AsClientSees(m.CreateV2Integration(*id, integ).status()).status == 400);
  integ.integration_uri = kWebArn;
  CHECK(AsClientSees(m.CreateV2Integration("nosuchapi0", integ).status()).status == 404);
  auto iid = m.CreateV2Integration(*id, integ);
  REQUIRE(iid.ok());

  for (const char* key : {"GET", "GET items", "FETCH /items", "GET /items/{", "GET /a//b", ""}) {
    INFO("route key '" << key << "'");
    apigw::V2RouteInput r;
    r.route_key = key;
    e = AsClientSees(m.CreateV2Route(*id, r).status());
    CHECK(e.status == 400);
    CHECK(e.type == "BadRequestException");
  }
  apigw::V2RouteInput r;
  r.route_key = "GET /items";
  r.target = "integrations/nosuch";
  e = AsClientSees(m.CreateV2Route(*id, r).status());
  CHECK(e.status == 400);
  CHECK(e.message.rfind("Invalid target: 'integrations/nosuch'", 0) == 0);
  r.target = "integrations/" + *iid;
  REQUIRE(m.CreateV2Route(*id, r).ok());
  e = AsClientSees(m.CreateV2Route(*id, r).status());
  CHECK(e.status == 409);
  CHECK(e.type == "ConflictException");

  apigw::V2StageInput stage;
  stage.stage_name = "has space";
  CHECK(AsClientSees(m.CreateV2Stage(*id, stage)).status == 400);
  stage.stage_name = "";
  CHECK(AsClientSees(m.CreateV2Stage(*id, stage)).status == 400);
  stage.stage_name = "prod-1_a";
  REQUIRE(m.CreateV2Stage(*id, stage).ok());
  e = AsClientSees(m.CreateV2Stage(*id, stage));
  CHECK(e.status == 409);
  CHECK(e.type == "ConflictException");
}

TEST_CASE("apigateway model: APIs survive a reopen of the store", "[control][apigateway]") {
  nt::TempDir dir;
  std::string rest_id, http_id, users;
  {
    ApiGateway gw(dir.path());
    ApiGatewayModel& m = gw.model();
    ShopApi s = MakeShop(m);
    rest_id = s.id;
    users = s.users;
    REQUIRE(m.PutMethod(s.id, s.user, "GET", {}).ok());
    apigw::DeploymentInput dep;
    dep.stage_name = "prod";
    REQUIRE(m.CreateDeployment(s.id, dep).ok());
    apigw::HttpApiInput h;
    h.name = "items";
    auto id = m.CreateHttpApi(h);
    REQUIRE(id.ok());
    http_id = *id;
    apigw::V2RouteInput r;
    r.route_key = "POST /items";
    REQUIRE(m.CreateV2Route(http_id, r).ok());
    apigw::V2StageInput st;
    st.stage_name = "$default";
    REQUIRE(m.CreateV2Stage(http_id, st).ok());
  }

  ApiGateway gw(dir.path());  // the same SQLite file; Start migrates again, changing nothing
  proto::RouteTable table = gw.Routes();
  REQUIRE(table.apis.size() == 2);
  const proto::ApiGatewayApi* rest = FindApi(table, rest_id);
  REQUIRE(rest != nullptr);
  REQUIRE(rest->stages.size() == 1);
  CHECK(rest->stages[0].name == "prod");
  CHECK(FindRoute(rest->stages[0], "GET", "/users/{id}") != nullptr);
  const proto::ApiGatewayApi* http = FindApi(table, http_id);
  REQUIRE(http != nullptr);
  REQUIRE(http->stages.size() == 1);
  CHECK(FindRoute(http->stages[0], "POST", "/items") != nullptr);

  // The reopened model keeps working on what it found: a taken path is still taken.
  CHECK(AsClientSees(gw.model().CreateResource(rest_id, users, "{id}").status()).status == 409);
  CHECK(*gw.model().DeleteRestApi(rest_id));
  CHECK(*gw.model().DeleteHttpApi(http_id));
  CHECK(gw.Routes().apis.empty());
}

// ---- through the service's HTTP handlers, on control's endpoint ----

namespace {

ct::CallOptions Apigw() {
  ct::CallOptions o;
  o.service = "apigateway";
  return o;
}

}  // namespace

TEST_CASE("apigateway service: get, update and delete a REST API over signed HTTP", "[control][apigateway]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::Reply made = c.Call("POST", "/restapis", R"({"name":"shop","description":"first"})", Apigw());
    REQUIRE(made.status == 201);
    const std::string id = made.Json().value("id", "");
    REQUIRE(IsId(id, 10));
    CHECK(made.Json()["name"] == "shop");
    CHECK_FALSE(made.Json().contains("resources"));  // the stored children are not part of a RestApi

    ct::Reply got = c.Call("GET", "/restapis/" + id, "", Apigw());
    REQUIRE(got.status == 200);
    CHECK(got.Json()["description"] == "first");
    CHECK(got.Json()["rootResourceId"] == made.Json()["rootResourceId"]);

    ct::Reply patched = c.Call("PATCH", "/restapis/" + id,
                               R"({"patchOperations":[{"op":"replace","path":"/name","value":"store"},)"
                               R"({"op":"replace","path":"/description","value":"second"}]})",
                               Apigw());
    REQUIRE(patched.status == 200);
    CHECK(patched.Json()["name"] == "store");
    got = c.Call("GET", "/restapis/" + id, "", Apigw());
    CHECK(got.Json()["name"] == "store");
    CHECK(got.Json()["description"] == "second");

    ct::Reply bad = c.Call("PATCH", "/restapis/" + id, R"({"patchOperations":[{"op":"replace","path":"/name","value":""}]})",
                           Apigw());
    CHECK(bad.status == 400);
    CHECK(bad.ErrorType() == "BadRequestException");
    CHECK(c.Call("GET", "/restapis/" + id, "", Apigw()).Json()["name"] == "store");  // unchanged

    ct::Reply res = c.Call("POST", "/restapis/" + id + "/resources/" + made.Json().value("rootResourceId", ""),
                           R"({"pathPart":"{proxy+}"})", Apigw());
    REQUIRE(res.status == 201);
    CHECK(res.Json()["path"] == "/{proxy+}");

    REQUIRE(c.Call("DELETE", "/restapis/" + id, "", Apigw()).status == 202);
    ct::Reply missing = c.Call("GET", "/restapis/" + id, "", Apigw());
    CHECK(missing.status == 404);
    CHECK(missing.ErrorType() == "NotFoundException");
    CHECK(missing.Json()["message"] == "Invalid API identifier specified 000000000000:" + id);
    CHECK(c.Call("DELETE", "/restapis/" + id, "", Apigw()).status == 404);
  });
}

TEST_CASE("apigateway service: base path mappings of a custom domain", "[control][apigateway]") {
  ct::Harness h;
  h.Run([&](ct::Client& c) {
    ct::Reply made = c.Call("POST", "/restapis", R"({"name":"shop"})", Apigw());
    REQUIRE(made.status == 201);
    const std::string id = made.Json().value("id", "");
    const std::string root = made.Json().value("rootResourceId", "");
    REQUIRE(c.Call("PUT", "/restapis/" + id + "/resources/" + root + "/methods/GET", R"({"authorizationType":"NONE"})",
                   Apigw()).status == 201);
    REQUIRE(c.Call("POST", "/restapis/" + id + "/deployments", R"({"stageName":"prod"})", Apigw()).status == 201);

    // An uploaded certificate (no ACME order is started for it).
    nt::PemPair pem = nt::SelfSignedPem("api.example.com", 7);
    json domain = {{"domainName", "api.example.com"}, {"certificateBody", pem.cert_pem},
                   {"certificatePrivateKey", pem.key_pem}};
    ct::Reply d = c.Call("POST", "/domainnames", domain.dump(), Apigw());
    INFO(d.body);
    REQUIRE(d.status == 201);
    CHECK(d.Json()["domainName"] == "api.example.com");
    CHECK(c.Call("POST", "/domainnames", domain.dump(), Apigw()).status == 409);

    const std::string mappings = "/domainnames/api.example.com/basepathmappings";
    ct::Reply m = c.Call("POST", mappings, json{{"restApiId", id}, {"basePath", "v1"}, {"stage", "prod"}}.dump(), Apigw());
    INFO(m.body);
    REQUIRE(m.status == 201);
    CHECK(m.Json() == json{{"basePath", "v1"}, {"restApiId", id}, {"stage", "prod"}});
    // The same key again conflicts; an unknown stage or API is refused.
    CHECK(c.Call("POST", mappings, json{{"restApiId", id}, {"basePath", "v1"}, {"stage", "prod"}}.dump(), Apigw()).status ==
          409);
    ct::Reply no_stage = c.Call("POST", mappings, json{{"restApiId", id}, {"basePath", "v2"}, {"stage", "qa"}}.dump(), Apigw());
    CHECK(no_stage.status == 400);
    CHECK(no_stage.ErrorType() == "BadRequestException");
    ct::Reply no_api =
        c.Call("POST", mappings, json{{"restApiId", "nosuchapi0"}, {"basePath", "v2"}, {"stage", "prod"}}.dump(), Apigw());
    CHECK(no_api.status == 404);
    CHECK(no_api.ErrorType() == "NotFoundException");
    // The whole domain, as "(none)".
    REQUIRE(c.Call("POST", mappings, json{{"restApiId", id}, {"stage", "prod"}}.dump(), Apigw()).status == 201);

    ct::Reply list = c.Call("GET", mappings, "", Apigw());
    REQUIRE(list.status == 200);
    REQUIRE(list.Json()["item"].size() == 2);
    ct::Reply one = c.Call("GET", mappings + "/v1", "", Apigw());
    REQUIRE(one.status == 200);
    CHECK(one.Json()["restApiId"] == id);
    CHECK(c.Call("GET", mappings + "/(none)", "", Apigw()).Json()["basePath"] == "(none)");

    REQUIRE(c.Call("DELETE", mappings + "/v1", "", Apigw()).status == 202);
    ct::Reply gone = c.Call("GET", mappings + "/v1", "", Apigw());
    CHECK(gone.status == 404);
    CHECK(gone.ErrorType() == "NotFoundException");
    CHECK(gone.Json()["message"] == "Invalid base path mapping identifier specified");
    CHECK(c.Call("GET", "/domainnames/nosuch.example.com/basepathmappings", "", Apigw()).status == 404);
  });
}

}  // namespace geysir::control
