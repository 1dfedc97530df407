// EventsService: Amazon EventBridge's rule API (signing name "events", JSON 1.1, X-Amz-Target
// AWSEvents.*), EventBridge Scheduler's schedule API (signing name "scheduler", rest-json), and
// the trigger runtime behind both: the schedule engine and the durable async-invocation queue
// (control/triggers/async_queue.h) that Lambda's Invoke(InvocationType=Event) also uses.
//
// Rules with a ScheduleExpression (and Scheduler schedules, which add a time zone) are kept in
// the "events" schema track with their next firing time. One libuv timer is armed for the
// earliest firing; each firing builds the event EventBridge builds (or the target's Input /
// InputPath / InputTransformer output) and commits it to the async queue together with the
// rule's next firing time, in one transaction. A firing missed while control was down fires
// once, promptly, on start (not once per missed period); then the schedule continues from now.
//
// The trigger parts of control's native and Lambda APIs (event-invoke configs, schedules and
// queued/failed events for the CLI) are served by HandleTriggersApi, which control_server's
// Dispatch calls for those routes.
//
// Test hook: the environment variable GEYSIR_TEST_TIME_SCALE (a number > 1, e.g. 60) divides
// every rate period, retry back-off and event-age limit so tests can watch a rate(1 minute)
// schedule and Lambda's retry timing in seconds. Never set it in production.
//
// Thread safety: loop thread only, like every Service.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "control/lambda_api.h"
#include "control/service.h"
#include "control/triggers/async_queue.h"

namespace geysir::control {

class EventsService;

// Lambda's Invoke with InvocationType=Event: commits the event to the durable queue, then
// answers 202 (or 500 if the commit failed). `qualifier` "" = $LATEST.
void EnqueueAsyncInvoke(ServiceHost& host, const std::string& function, const std::string& qualifier,
                        std::string payload, const std::string& client_context_b64, const std::string& request_id,
                        const Responder& resp);

// Routes of control's Lambda/native API that belong to triggers: Put/Get/Update/Delete/List
// FunctionEventInvokeConfig(s), and /geysir/v1/schedules, /geysir/v1/async-events[/redrive].
void HandleTriggersApi(ServiceHost& host, const Route& route, net::HttpRequest& req, const Responder& resp,
                       const std::string& request_id);

// Makes the EventBridge service and, sharing its engine, the EventBridge Scheduler service.
std::unique_ptr<Service> MakeEventsService(ServiceHost& host);
std::unique_ptr<Service> MakeSchedulerService(ServiceHost& host);

}  // namespace geysir::control
