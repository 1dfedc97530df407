#include "control/aws_error.h"

#include <nlohmann/json.hpp>

namespace geysir::control {

AwsError MakeAwsError(int status, std::string type, std::string message) {
  AwsError e;
  e.http_status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.user_fault = status < 500;
  return e;
}

namespace {

AwsError Make(int status, const char* type, std::string message) { return MakeAwsError(status, type, std::move(message)); }

}  // namespace

AwsError ResourceNotFound(std::string m) { return Make(404, "ResourceNotFoundException", std::move(m)); }
AwsError ResourceConflict(std::string m) { return Make(409, "ResourceConflictException", std::move(m)); }
AwsError InvalidParameterValue(std::string m) { return Make(400, "InvalidParameterValueException", std::move(m)); }
AwsError InvalidRequestContent(std::string m) { return Make(400, "InvalidRequestContentException", std::move(m)); }
AwsError RequestTooLarge(std::string m) { return Make(413, "RequestTooLargeException", std::move(m)); }
AwsError RequestEntityTooLarge(std::string m) { return Make(413, "RequestEntityTooLargeException", std::move(m)); }
AwsError TooManyRequests(std::string m, std::string reason) {
  AwsError e = Make(429, "TooManyRequestsException", std::move(m));
  e.reason = std::move(reason);
  return e;
}
AwsError PreconditionFailed(std::string m) { return Make(412, "PreconditionFailedException", std::move(m)); }
AwsError ServiceError(std::string m) { return Make(500, "ServiceException", std::move(m)); }
AwsError ServiceUnavailable(std::string m) { return Make(502, "ServiceException", std::move(m)); }
AwsError UnknownOperation(std::string m) { return Make(404, "UnknownOperationException", std::move(m)); }
AwsError MethodNotAllowed(std::string m) { return Make(405, "MethodNotAllowedException", std::move(m)); }

namespace {

AwsError FromCode(const Status& status) {
  switch (status.code()) {
    case Code::kNotFound: return ResourceNotFound(status.message());
    case Code::kAlreadyExists:
    case Code::kConflict: return ResourceConflict(status.message());
    case Code::kInvalidArgument: return InvalidParameterValue(status.message());
    case Code::kResourceExhausted: return RequestEntityTooLarge(status.message());
    case Code::kThrottled: return TooManyRequests(status.message());
    case Code::kFailedPrecondition: return PreconditionFailed(status.message());
    case Code::kUnavailable: return ServiceUnavailable(status.message());
    case Code::kDeadlineExceeded: return ServiceUnavailable(status.message());
    case Code::kPermissionDenied: return Make(403, "AccessDeniedException", status.message());
    case Code::kUnauthenticated: {
      AwsError e = Make(403, "UnrecognizedClientException", status.message());
      e.auth_error = true;
      return e;
    }
    case Code::kUnimplemented: return UnknownOperation(status.message());
    case Code::kOk:
    case Code::kInternal:
      break;
  }
  // The client gets the message too: on a self-hosted platform the operator is the one who
  // reads it, and "disk I/O error" is more useful than a generic apology.
  return ServiceError(status.ok() ? "internal error" : status.message());
}

}  // namespace

Status AwsStatus(Code code, std::string type, std::string message) {
  return Status(code, std::move(message)).WithAwsType(std::move(type));
}

AwsError FromStatus(const Status& status, std::span<const ErrorStatus> statuses) {
  AwsError e = FromCode(status);
  if (status.aws_type().empty()) return e;
  e.type = status.aws_type();
  for (const ErrorStatus& s : statuses) {
    if (s.type != e.type) continue;
    e.http_status = s.http_status;
    e.user_fault = s.http_status < 500;
    break;
  }
  return e;
}

AwsError FromVerifyError(const net::sigv4::VerifyError& error) {
  using net::sigv4::Failure;
  const char* type = "InvalidSignatureException";
  switch (error.failure) {
    case Failure::kMissingAuthentication: type = "MissingAuthenticationTokenException"; break;
    case Failure::kIncompleteSignature: type = "IncompleteSignatureException"; break;
    case Failure::kUnknownAccessKey: type = "UnrecognizedClientException"; break;
    case Failure::kSignatureMismatch:
    case Failure::kRequestExpired:
    case Failure::kPresignExpired: type = "InvalidSignatureException"; break;
  }
  AwsError e = Make(403, type, error.message);
  e.auth_error = true;
  e.signature_failure = error.failure;
  return e;
}

net::HttpResponse ToHttpResponse(const AwsError& error, const std::string& request_id) {
  nlohmann::json body = nlohmann::json::object();
  if (!error.auth_error) body["Type"] = error.user_fault ? "User" : "Service";
  body["message"] = error.message;
  if (!error.reason.empty()) body["Reason"] = error.reason;
  net::HttpResponse r;
  r.status = error.http_status;
  r.headers = {{"Content-Type", "application/json"},
               {"x-amzn-RequestId", request_id},
               {"x-amzn-ErrorType", error.type}};
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

void ThrowIfError(const Status& status) {
  if (!status.ok()) throw ApiException(FromStatus(status));
}

}  // namespace geysir::control
