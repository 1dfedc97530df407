// The resource types Geysir's CloudFormation turns into real Geysir objects, one
// cfn::ResourceProvider each:
//   AWS::ApiGateway::RestApi, ::Resource, ::Method (with its Integration), ::Deployment, ::Stage
//     -> apigw::ApiGatewayModel (control/services/apigateway/apigateway_model.h), the same objects the
//        API Gateway API makes and the gateway serves;
//   AWS::ApiGatewayV2::Api (ProtocolType HTTP), ::Integration, ::Route, ::Stage -> the same model;
//   AWS::Lambda::Permission -> the function's resource policy in the Store (stored, not
//     enforced, as the Lambda API's AddPermission).
// Ref and Fn::GetAtt values are those AWS documents for each type (RestApi: the API id,
// GetAtt RootResourceId; ApiGatewayV2::Api: the ApiId, GetAtt ApiEndpoint; Stage: the stage
// name; ...). A property Geysir cannot honour (an OpenAPI Body, a WEBSOCKET API, an
// authorizer) fails the resource with a reason that names it, rather than being dropped.
//
// Thread safety: control's loop thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/services/cloudformation/cloudformation_stacks.h"

namespace geysir::control {

class ServiceHost;

namespace apigw {
class ApiGatewayModel;
}  // namespace apigw

namespace cfn {

class ResourceProviders {
 public:
  // `apis`: where the AWS::ApiGateway* and AWS::ApiGatewayV2* resources are made.
  ResourceProviders(ServiceHost& host, apigw::ApiGatewayModel& apis);
  ~ResourceProviders();
  // nullptr for a type Geysir does not make.
  ResourceProvider* Find(std::string_view type) const;
  // Every supported type, sorted (for docs and error messages).
  std::vector<std::string> Types() const;

 private:
  std::map<std::string, std::unique_ptr<ResourceProvider>, std::less<>> providers_;
};

// AWS::Lambda::Permission (cloudformation_lambda.cpp).
std::unique_ptr<ResourceProvider> MakeLambdaPermissionProvider(ServiceHost& host);

}  // namespace cfn
}  // namespace geysir::control
