// What the files of control/services/lambda/ share: the service's state and one member function
// per operation, each defined in the file of its resource (see lambda.h for the list). Only
// this folder includes it.
//
// Thread safety: loop thread only, except where a member says otherwise.
#pragma once

#include <uv.h>

#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "base/loop_worker.h"
#include "base/uv_handle.h"
#include "control/auth.h"
#include "control/aws_error.h"
#include "control/code_store.h"
#include "control/services/lambda/lambda_api.h"
#include "control/services/lambda/lambda.h"
#include "control/store.h"
#include "net/http_server.h"
#include "proto/invoke_client.h"

namespace geysir::control::lambda {

// One request on its way to its handler.
struct Call {
  const Route& route;
  net::HttpRequest& req;
  const Responder& resp;
  const std::string& rid;
  // The request's Qualifier query parameter, "" when absent.
  std::string Qualifier() const;
};

// Lambda's JSON answers.
net::HttpResponse JsonReply(int status, const nlohmann::json& body, const std::string& request_id);
net::HttpResponse EmptyReply(int status, const std::string& request_id);
std::string DumpJson(const nlohmann::json& j);
std::optional<int64_t> ParseInt(const std::string& s);

// Lambda's Invoke with InvocationType=Event (async_invoke.cpp): commits the event to the durable
// queue, then answers 202 (or 500 if the commit failed). `qualifier` "" = $LATEST.
void EnqueueAsyncInvoke(TriggerRuntime& triggers, const std::string& function, const std::string& qualifier,
                        std::string payload, const std::string& client_context_b64, const std::string& request_id,
                        const Responder& resp);

class Lambda final : public LambdaService {
 public:
  Lambda(ServiceHost& host, LambdaOptions options, TriggerRuntime& triggers, ObjectSource& objects);
  ~Lambda() override;

  // Service.
  std::string_view signing_name() const override { return "lambda"; }
  Status Start() override;
  Result<bool> HandleBeforeAuth(net::HttpRequest& req, const Responder& resp, const std::string& request_id) override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  // Handle before its error flow returns a Status: throws ApiException.
  void HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info);
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;
  void Shutdown() override;

  // LambdaService.
  Result<proto::FunctionConfig> ResolveConfig(std::string_view function, std::string_view qualifier,
                                              bool weighted) override;
  Status InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) override;

  // functions.cpp
  void CreateFunction(Call& c);
  void ListFunctions(Call& c);
  void GetFunction(Call& c);
  void GetFunctionConfiguration(Call& c);
  void UpdateFunctionConfiguration(Call& c);
  void UpdateFunctionCode(Call& c);
  void DeleteFunction(Call& c);
  void GetCode(Call& c);  // the Code.Location download, authorised by its own signed query
  // versions.cpp
  void PublishVersion(Call& c);
  void ListVersionsByFunction(Call& c);
  void CreateAlias(Call& c);
  void GetAlias(Call& c);
  void UpdateAlias(Call& c);
  void DeleteAlias(Call& c);
  void ListAliases(Call& c);
  // urls.cpp
  void CreateFunctionUrlConfig(Call& c);
  void GetFunctionUrlConfig(Call& c);
  void UpdateFunctionUrlConfig(Call& c);
  void DeleteFunctionUrlConfig(Call& c);
  void ListFunctionUrlConfigs(Call& c);
  // permissions.cpp
  void AddPermission(Call& c);
  void GetPolicy(Call& c);
  void RemovePermission(Call& c);
  // concurrency_tags.cpp
  void PutFunctionConcurrency(Call& c);
  void GetFunctionConcurrency(Call& c);
  void DeleteFunctionConcurrency(Call& c);
  void TagResource(Call& c);
  void UntagResource(Call& c);
  void ListTags(Call& c);
  void GetAccountSettings(Call& c);
  // invoke.cpp
  void Invoke(Call& c);
  // async_invoke.cpp
  void PutFunctionEventInvokeConfig(Call& c);
  void GetFunctionEventInvokeConfig(Call& c);
  void UpdateFunctionEventInvokeConfig(Call& c);
  void DeleteFunctionEventInvokeConfig(Call& c);
  void ListFunctionEventInvokeConfigs(Call& c);
  void ListSchedules(Call& c);
  void ListAsyncEvents(Call& c);
  void RedriveAsyncEvents(Call& c);
  void PutEventInvokeConfig(Call& c, bool merge);  // Update merges into the existing config; Put replaces
  // native.cpp
  void Health(Call& c);
  void GetLogs(Call& c);

  // What a qualified reference addresses: $LATEST, a published version, or the version an alias
  // routes to (`weighted`: pick by the alias's routing weights, as an invocation does; otherwise
  // its primary version). ResourceNotFoundException as Lambda words it when anything is missing.
  struct Resolved {
    FunctionRecord target;  // what runs / what is described
    std::string alias;      // the alias used, "" if none
  };
  Resolved ResolveOrThrow(const FunctionRef& ref, bool weighted);
  // $LATEST of `name`; ResourceNotFoundException when there is no such function.
  FunctionRecord GetOrThrow(const std::string& name);
  // Publishes $LATEST after a deploy with Publish=true (versions.cpp).
  FunctionRecord PublishAfterDeploy(const std::string& name);

  // deploy.cpp: CreateFunction and UpdateFunctionCode run through it.
  struct Deploy {
    Lambda* self = nullptr;
    Responder resp;
    std::string rid;
    bool create = false;
    std::string name;  // UpdateFunctionCode: the resolved name from the path
    std::string body;  // consumed on the worker thread
    // Results of the worker phase.
    std::optional<AwsError> error;
    CreateFunctionInput create_input;
    CodeUpdateInput update_input;
    bool parsed = false;    // the body has been parsed (phase one of two when code comes from S3)
    bool needs_s3 = false;  // the loop thread must copy Code.S3Bucket/S3Key into `zip`, then requeue
    std::string zip;        // the package bytes, decoded or copied from S3
    StoredCode code;
    int64_t started_ms = 0;
  };
  void StartDeploy(std::shared_ptr<Deploy> d);
  static void DeployWork(Deploy& d);  // on deploy_worker_'s thread
  void DeployDone(const std::shared_ptr<Deploy>& d);
  void FinishDeploy(Deploy& d);
  void ForgetOrphanCode(const StoredCode& code);

  // code_gc.cpp
  void CollectCode();

  int64_t NowMs() const { return host_.NowMs(); }
  int64_t NowS() const { return host_.NowMs() / 1000; }
  // Whether the gateway's route table routes to `name`: a change of the function must reach it.
  bool HasUrl(const std::string& name) { return host_.GatewayRoutesTo(name); }
  void PushRoutes() { host_.RoutesChanged(); }

  ServiceHost& host_;
  LambdaOptions opt_;
  TriggerRuntime& triggers_;
  ObjectSource& objects_;
  Store& store_;
  CodeStore& code_store_;
  const ApiContext& api_;
  proto::InvokeClient& scheduler_;
  std::unique_ptr<CodeUrlSigner> url_signer_;
  std::mutex put_mu_;  // CodeStore::Put runs on deploy_worker_'s thread; one at a time
  // The deploys submitted to deploy_worker_ and not finished on the loop: answered at Shutdown
  // if their continuation never runs.
  std::set<std::shared_ptr<Deploy>> deploys_;
  size_t deploys_in_flight_ = 0;
  // Continuations of deploy_worker_ hold it weakly: a Lambda gone means nothing to do.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  // Runs the blocking half of every deploy (parse, decode, CodeStore::Put), one at a time.
  // Declared after what its jobs touch, so it is destroyed (waiting for the running job) first.
  std::unique_ptr<LoopWorker> deploy_worker_;
  bool shutting_down_ = false;
  // Code GC: when each unreferenced hash was first seen unreferenced (ms).
  std::map<std::string, int64_t> unreferenced_since_;
  UvHandle<uv_timer_t> gc_timer_;
};

}  // namespace geysir::control::lambda
