// Lambda's asynchronous side, over the trigger runtime EventBridge owns
// (control/services/eventbridge/eventbridge.h): Invoke with InvocationType=Event, the
// event-invoke configs (Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s)), and the native
// views of schedules and queued or failed events (/geysir/v1/schedules, /geysir/v1/async-events
// and its /redrive) that `geysir` calls.
//
// Errors are thrown as ApiException in Lambda's JSON shape (control/aws_error.h).
//
// Thread safety: loop thread only.
#pragma once

#include <string>

#include "control/lambda_api.h"
#include "control/service.h"
#include "control/services/eventbridge/eventbridge.h"

namespace geysir::control {

// Commits the event to the durable queue, then answers 202 (or 500 if the commit failed).
// `qualifier` "" = $LATEST.
void EnqueueAsyncInvoke(TriggerRuntime& triggers, const std::string& function, const std::string& qualifier,
                        std::string payload, const std::string& client_context_b64, const std::string& request_id,
                        const Responder& resp);

// The event-invoke config operations and the native trigger routes named above.
void HandleTriggersApi(ServiceHost& host, TriggerRuntime& triggers, const Route& route, net::HttpRequest& req,
                       const Responder& resp, const std::string& request_id);

}  // namespace geysir::control
