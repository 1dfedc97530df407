// LambdaService: AWS Lambda's REST API (signing name "lambda", rest-json) and Geysir's native
// API under /geysir/v1/ (health, logs, code links, schedules, async events), on control's
// endpoint like every other Service.
//
// One table (operations.h) maps each operation's method and path to its handler; the handlers
// live in one file per resource of this folder: functions.cpp (create, get, update, delete,
// list; code and configuration) and deploy.cpp (the pipeline that unpacks code off the loop),
// versions.cpp (versions and aliases), urls.cpp (function URL configs), permissions.cpp
// (resource policies), concurrency_tags.cpp (reserved concurrency, tags, account settings),
// invoke.cpp, async_invoke.cpp (Invoke with InvocationType=Event, event-invoke configs and the
// native trigger views), native.cpp (health, logs) and code_gc.cpp (removal of unpacked code no
// function references any more). Each parses its request into the typed inputs of
// lambda_api.h and works on the Store and the CodeStore.
//
// Two operations are answered without SigV4 (HandleBeforeAuth): the health check, and the
// download behind GetFunction's Code.Location, which carries a signature of its own.
//
// Thread safety: loop thread only, like every Service; a deploy's parsing and unpacking run on
// the service's deploy worker (base/loop_worker.h) and touch only their own request and
// CodeStore::Put.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "control/service.h"
#include "control/services/eventbridge/eventbridge.h"
#include "control/services/s3/s3_objects.h"
#include "proto/messages.h"

namespace geysir::control {

struct LambdaOptions {
  // The scheduler's per-request isolation mode ("fork" or "restore"), reported by the health check.
  std::string isolation = "fork";
  // Named in the error Invoke answers when the scheduler is not connected.
  std::string scheduler_socket;
  // "host:port" of this endpoint: Code.Location's host when a GetFunction request has no Host.
  std::function<std::string()> endpoint;
  // Code garbage collection: every interval, unpacked code that no function references is
  // noted; once it has stayed unreferenced for the grace it is removed.
  uint64_t code_gc_interval_ms = 60'000;
  int64_t code_gc_grace_ms = 20 * 60'000;
};

class LambdaService : public Service {
 public:
  // What an invocation of `function` (+ `qualifier`) runs, as the scheduler gets it; `weighted`:
  // an alias picks by its routing weights (an invocation) instead of its primary version.
  // kNotFound with Lambda's message when the function, version or alias does not exist.
  virtual Result<proto::FunctionConfig> ResolveConfig(std::string_view function, std::string_view qualifier,
                                                      bool weighted) = 0;
  // ServiceHost::InvokeFunction, which control forwards here.
  virtual Status InvokeFunction(InvokeCall call, proto::InvokeClient::Callback done) = 0;
};

// `triggers`: the async queue behind Invoke(Event) and event-invoke configs; `objects`: where
// Code.S3Bucket/S3Key are read.
std::unique_ptr<LambdaService> MakeLambdaService(ServiceHost& host, LambdaOptions options, TriggerRuntime& triggers,
                                                 ObjectSource& objects);

}  // namespace geysir::control
