// EventBridge Scheduler's schedule API (signing name "scheduler", rest-json): CreateSchedule,
// GetSchedule, UpdateSchedule, DeleteSchedule, ListSchedules on /schedules[/NAME], the
// AWS-faithful way to give a schedule a time zone. Schedules are rules of kind "schedule"
// (control/services/eventbridge/rules.h) fired by EventBridge's engine, which this service is
// given as a RuleEngine; their one target must be a Lambda function.
//
// Errors: x-amzn-ErrorType and a JSON body {"Message": "..."}, as Scheduler sends them.
//
// Thread safety: loop thread only, like every Service.
#pragma once

#include <memory>

#include "control/service.h"
#include "control/services/eventbridge/rules.h"

namespace geysir::control {

std::unique_ptr<Service> MakeSchedulerService(ServiceHost& host, events::RuleEngine& engine);

}  // namespace geysir::control
