// The AWS services control serves besides Lambda. One line a service; order matters only
// where one service's Start() reads another's tables (list the dependency first).
#include "control/services/domains.h"
#include "control/service.h"
#include "control/services/events.h"
#include "control/services/iam_sts.h"
#include "control/services/s3/s3.h"
#include "control/services/apigateway/apigateway.h"
#include "control/services/cloudformation/cloudformation.h"
#include "control/services/cloudwatch.h"
#include "control/services/logs.h"

namespace geysir::control {

std::vector<std::unique_ptr<Service>> MakeServices(ServiceHost& host) {
  std::vector<std::unique_ptr<Service>> services;
  (void)host;
  services.push_back(MakeEventsService(host));     // EventBridge rules + the trigger runtime
  services.push_back(MakeSchedulerService(host));  // EventBridge Scheduler (schedules with time zones)
  services.push_back(MakeDomainsService(host));  // custom domains + ACME (native API, "tls" frames)
  services.push_back(std::make_unique<ApiGatewayService>(host));
  services.push_back(MakeLogsService(host));        // CloudWatch Logs over function logs
  services.push_back(MakeCloudWatchService(host));  // CloudWatch GetMetricStatistics (AWS/Lambda)
  services.push_back(std::make_unique<S3Service>(host));   // S3 (objects for Lambda's Code.S3Key, CFN's TemplateURL)
  services.push_back(std::make_unique<IamService>(host));  // IAM roles + inline policies (stored, not enforced)
  services.push_back(std::make_unique<StsService>(host));  // STS GetCallerIdentity
  // After API Gateway and S3: stacks make API Gateway objects and read templates from S3.
  services.push_back(std::make_unique<CloudFormationService>(host));
  return services;
}

}  // namespace geysir::control
