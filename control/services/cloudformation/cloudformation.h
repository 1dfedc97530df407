// CloudFormationService: AWS CloudFormation's query-protocol API (signing name
// "cloudformation", Version 2010-05-15) over StackEngine (cloudformation_stacks.h) with the
// resource types of cloudformation_resources.h.
//
// Actions: CreateStack, UpdateStack, DeleteStack, DescribeStacks, DescribeStackResource,
// DescribeStackResources, ListStackResources, DescribeStackEvents, ListStacks, GetTemplate,
// ValidateTemplate. TemplateURL is read from Geysir's own S3 whatever host it names
// (https://s3.amazonaws.com/BUCKET/KEY is what Zappa sends); TemplateBody is taken as given.
// API Gateway resources are made in the API Gateway service's model.
// Errors use the query protocol's XML (<ErrorResponse><Error><Code>ValidationError</Code>...).
//
// Thread safety: control's loop thread only.
#pragma once

#include <memory>

#include "control/service.h"
#include "control/services/s3/s3_objects.h"

namespace geysir::control {

namespace apigw {
class ApiGatewayModel;
}  // namespace apigw

namespace cfn {
class ResourceProviders;
class StackEngine;
}  // namespace cfn

class CloudFormationService final : public Service {
 public:
  // `apis`: where stacks make API Gateway objects; `objects`: where TemplateURLs are read.
  CloudFormationService(ServiceHost& host, apigw::ApiGatewayModel& apis, ObjectSource& objects);
  ~CloudFormationService() override;

  std::string_view signing_name() const override { return "cloudformation"; }
  Status Start() override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  // Handle before its error flow returns a Status: throws ApiException.
  void HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info);
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;

 private:
  ServiceHost& host_;
  apigw::ApiGatewayModel& apis_;
  ObjectSource& objects_;
  std::unique_ptr<cfn::ResourceProviders> providers_;
  std::unique_ptr<cfn::StackEngine> engine_;
};

}  // namespace geysir::control
