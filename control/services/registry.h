// The AWS services control serves, Lambda among them, built once at start by MakeServices.
//
// Each service's constructor takes, as typed interfaces, the services it reads (CloudFormation
// the API Gateway model and S3's objects, API Gateway the domain registry, Scheduler the rule
// engine, Lambda the trigger runtime and S3's objects), so MakeServices cannot build one before
// what it reads; services are started in the order they were built, so no service starts
// before what it reads either.
//
// Thread safety: built and used on control's loop thread.
#pragma once

#include <memory>
#include <vector>

#include "control/service.h"
#include "control/services/lambda/lambda.h"

namespace geysir::control {

struct Services {
  // Every service, in the order it was built: start them in this order.
  std::vector<std::unique_ptr<Service>> in_start_order;
  // Lambda, which control forwards ServiceHost::InvokeFunction and ResolveFunction to and which
  // takes the requests no other service does; owned by `in_start_order`.
  LambdaService* lambda = nullptr;
};

Services MakeServices(ServiceHost& host, LambdaOptions lambda);

}  // namespace geysir::control
