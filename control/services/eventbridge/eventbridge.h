// EventBridgeService: Amazon EventBridge's rule API (signing name "events", JSON 1.1,
// X-Amz-Target AWSEvents.*) and the trigger runtime behind it and behind EventBridge Scheduler
// (control/services/scheduler.h): the schedule engine and the durable async-invocation queue
// (control/triggers/async_queue.h) that Lambda's Invoke(InvocationType=Event) also uses.
//
// Rules with a ScheduleExpression (and Scheduler schedules, which add a time zone) are kept in
// the "events" schema track (rules.h) with their next firing time. One libuv timer is armed for
// the earliest firing; each firing builds the event EventBridge builds (or the target's Input /
// InputPath / InputTransformer output) and commits it to the async queue together with the
// rule's next firing time, in one transaction. A firing missed while control was down fires
// once, promptly, on start (not once per missed period); then the schedule continues from now.
//
// Other services reach the runtime through the interfaces this service is, handed to them by
// control/services/registry.cpp: the Scheduler API as a RuleEngine, Lambda as a TriggerRuntime.
//
// Test hook: the environment variable GEYSIR_TEST_TIME_SCALE (a number > 1, e.g. 60) divides
// every rate period, retry back-off and event-age limit so tests can watch a rate(1 minute)
// schedule and Lambda's retry timing in seconds. Never set it in production.
//
// Thread safety: loop thread only, like every Service.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "control/service.h"
#include "control/services/eventbridge/rules.h"
#include "control/triggers/async_queue.h"

namespace geysir::control {

// What Lambda's API uses of the trigger runtime.
class TriggerRuntime {
 public:
  virtual ~TriggerRuntime() = default;
  // The durable queue of asynchronous invocations and their event-invoke configs.
  virtual triggers::AsyncQueue& queue() = 0;
  // Every rule and schedule with a schedule expression, with firing-lag statistics: the body of
  // the native GET /geysir/v1/schedules.
  virtual nlohmann::json ListSchedulesJson() = 0;
};

class EventBridgeService : public Service, public TriggerRuntime, public events::RuleEngine {};

std::unique_ptr<EventBridgeService> MakeEventBridgeService(ServiceHost& host);

}  // namespace geysir::control
