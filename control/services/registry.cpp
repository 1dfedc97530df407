// MakeServices: see registry.h.
#include "control/services/registry.h"

#include "control/services/apigateway/apigateway.h"
#include "control/services/cloudformation/cloudformation.h"
#include "control/services/cloudwatch.h"
#include "control/services/domains.h"
#include "control/services/iam_sts.h"
#include "control/services/logs.h"
#include "control/services/s3/s3.h"
#include "control/services/scheduler.h"

namespace geysir::control {
namespace {

// Appends `service` to the start order the moment it is built, and returns it for the services
// built after it that read it.
template <typename T>
T& Add(Services& services, std::unique_ptr<T> service) {
  T& built = *service;
  services.in_start_order.push_back(std::move(service));
  return built;
}

}  // namespace

Services MakeServices(ServiceHost& host, LambdaOptions lambda) {
  Services out;
  // EventBridge rules and the trigger runtime (schedule engine, async queue).
  EventBridgeService& events = Add(out, MakeEventBridgeService(host));
  // EventBridge Scheduler: schedules with time zones, fired by EventBridge's engine.
  Add(out, MakeSchedulerService(host, events));
  // Custom domains and ACME (native API, "tls" frames); API Gateway's domain names use them.
  DomainsService& domains = Add(out, MakeDomainsService(host));
  ApiGatewayService& apigateway = Add(out, std::make_unique<ApiGatewayService>(host, domains));
  Add(out, MakeLogsService(host));        // CloudWatch Logs over function logs
  Add(out, MakeCloudWatchService(host));  // CloudWatch GetMetricStatistics (AWS/Lambda)
  // S3: objects for Lambda's Code.S3Key and CloudFormation's TemplateURL.
  S3Service& s3 = Add(out, std::make_unique<S3Service>(host));
  Add(out, std::make_unique<IamService>(host));  // IAM roles + inline policies (stored, not enforced)
  Add(out, std::make_unique<StsService>(host));  // STS GetCallerIdentity
  // Stacks make API Gateway objects and read templates from S3.
  Add(out, std::make_unique<CloudFormationService>(host, apigateway.model(), s3));
  // Lambda: Invoke(Event) and event-invoke configs use the trigger runtime; Code.S3Key reads S3.
  out.lambda = &Add(out, MakeLambdaService(host, std::move(lambda), events, s3));
  return out;
}

}  // namespace geysir::control
