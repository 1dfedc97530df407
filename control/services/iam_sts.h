// IamService and StsService: the parts of AWS IAM (signing name "iam") and STS ("sts") that
// deploy tools call, on control's endpoint, in the query protocol (form-encoded Action=...,
// XML replies, <ErrorResponse> errors).
//
// IAM: CreateRole, GetRole, DeleteRole, ListRoles, UpdateAssumeRolePolicy, UpdateRole
// (description, max session duration), PutRolePolicy, GetRolePolicy, DeleteRolePolicy,
// ListRolePolicies, TagRole/ListRoleTags. Roles and their inline policies are stored
// faithfully (schema track "iam") and returned as IAM returns them — policy documents
// URL-encoded, which botocore decodes back into dicts. Geysir does NOT evaluate or enforce
// IAM policies: any valid access key may do anything, and a function's role is a label.
//
// STS: GetCallerIdentity (Account = the configured account id; Arn names the IAM user the
// access key stands for: "arn:aws:iam::<account>:user/geysir-admin" for the admin key).
//
// Thread safety: control's loop thread only.
#pragma once

#include "control/service.h"

namespace geysir::control {

class IamService final : public Service {
 public:
  explicit IamService(ServiceHost& host) : host_(host) {}
  std::string_view signing_name() const override { return "iam"; }
  Status Start() override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;
  std::span<const ErrorStatus> error_statuses() const override;

 private:
  ServiceHost& host_;
};

class StsService final : public Service {
 public:
  explicit StsService(ServiceHost& host) : host_(host) {}
  std::string_view signing_name() const override { return "sts"; }
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;
  std::span<const ErrorStatus> error_statuses() const override;

 private:
  ServiceHost& host_;
};

}  // namespace geysir::control
