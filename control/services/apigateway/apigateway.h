// The "apigateway" service: API Gateway's REST API (rest-json) on control's endpoint, both the
// v1 operations (/restapis..., /apikeys, /usageplans) and the v2 ones (/v2/apis...), which AWS
// signs with the same name "apigateway". Objects live in ApiGatewayModel
// (apigateway_model.h); this class parses requests, answers in AWS's JSON shapes and status
// codes, and contributes the APIs to the gateway's route table.
//
// Errors: x-amzn-ErrorType (NotFoundException, BadRequestException, ConflictException, ...) and
// a JSON body {"message": "..."}, as API Gateway sends them.
//
// Thread safety: control's loop thread only.
#pragma once

#include <memory>

#include "control/service.h"
#include "control/services/apigateway/apigateway_model.h"
#include "control/services/domains.h"

namespace geysir::control {

class ApiGatewayService final : public Service {
 public:
  // `domains`: the custom-domain registry that DomainName and ApiMapping operations work on.
  ApiGatewayService(ServiceHost& host, DomainRegistry& domains);
  std::string_view signing_name() const override { return "apigateway"; }
  Status Start() override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  // Handle before its error flow returns a Status: throws ApiException.
  void HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info);
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;
  void ContributeRoutes(proto::RouteTable& table) override;

  // The objects, for CloudFormation's API Gateway resources (handed over by the registry).
  apigw::ApiGatewayModel& model() { return model_; }

 private:
  ServiceHost& host_;
  DomainRegistry& domains_;
  apigw::ApiGatewayModel model_;
};

}  // namespace geysir::control
