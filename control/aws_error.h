// AwsError: an error as the Lambda REST API reports it to a client, and the mapping from
// Geysir's Status into it.
//
// On the wire (what botocore parses): the HTTP status, the header `x-amzn-ErrorType: <Name>`,
// `x-amzn-RequestId`, and a JSON body `{"Type":"User"|"Service","message":"..."}`. Signature
// failures carry only `{"message":"..."}`, as AWS's front end sends them. Control's handlers
// return a Status (docs/errors.md); the host turns a failed one into an AwsError with
// FromStatus and answers it in the service's format (Service::ErrorResponse, control/service.h).
// Nothing in here changes state.
//
// Thread safety: values and pure functions.
#pragma once

#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "net/http_server.h"
#include "net/sigv4.h"
#include "base/status.h"

namespace geysir::control {

struct AwsError {
  int http_status = 500;
  std::string type;             // x-amzn-ErrorType, e.g. "ResourceNotFoundException"
  std::string message;
  bool user_fault = true;       // "Type":"User" (4xx) or "Service" (5xx)
  bool auth_error = false;      // body is only {"message": ...} (signature failures)
  std::string reason;           // optional "Reason" field (TooManyRequestsException)
  // Set by FromVerifyError: which signature check failed, for the services that name each one
  // differently (S3's AccessDenied vs RequestTimeTooSkewed vs SignatureDoesNotMatch).
  std::optional<net::sigv4::Failure> signature_failure;
};

// Any service's error: `type` is its error code, user_fault follows the status (4xx vs 5xx).
AwsError MakeAwsError(int status, std::string type, std::string message);

// The errors the Lambda API uses, with AWS's status codes.
AwsError ResourceNotFound(std::string message);          // 404
AwsError ResourceConflict(std::string message);          // 409
AwsError InvalidParameterValue(std::string message);     // 400
AwsError InvalidRequestContent(std::string message);     // 400 (body is not JSON / wrong shape)
AwsError RequestTooLarge(std::string message);           // 413 RequestTooLargeException
AwsError RequestEntityTooLarge(std::string message);     // 413 RequestEntityTooLargeException
AwsError TooManyRequests(std::string message, std::string reason = {});  // 429
AwsError PreconditionFailed(std::string message);        // 412
AwsError ServiceError(std::string message);              // 500 ServiceException
AwsError ServiceUnavailable(std::string message);        // 502 ServiceException (a peer is down)
AwsError UnknownOperation(std::string message);          // 404 UnknownOperationException
AwsError MethodNotAllowed(std::string message);          // 405

// The HTTP status with which a service answers one of its AWS error types where that is not the
// status the error's Code gives: EventBridge answers ResourceNotFoundException 400, S3
// InvalidRange 416, Lambda MethodNotAllowedException 405. Each service lists its own
// (Service::error_statuses), because the same type name has different statuses in different
// services.
struct ErrorStatus {
  std::string_view type;
  int http_status;
};

// A Status that names the AWS error type the client gets: Status(code, message) with type.
Status AwsStatus(Code code, std::string type, std::string message);

// Maps a Status from the store/code store by its code: kNotFound -> 404
// ResourceNotFoundException, kAlreadyExists and kConflict -> 409 ResourceConflictException,
// kInvalidArgument -> 400 InvalidParameterValueException, kResourceExhausted -> 413
// RequestEntityTooLargeException, kThrottled -> 429 TooManyRequestsException,
// kFailedPrecondition -> 412 PreconditionFailedException, kUnavailable and kDeadlineExceeded ->
// 502 ServiceException, kPermissionDenied -> 403 AccessDeniedException, kUnauthenticated -> 403
// UnrecognizedClientException, kUnimplemented -> 404 UnknownOperationException, everything else
// -> 500 ServiceException. A Status that names its AWS type (WithAwsType) keeps the status code
// of its Code and is answered with that type, unless `statuses` lists that type: then it gets the
// status listed there ("Type":"User" below 500, "Service" from 500 on).
AwsError FromStatus(const Status& status, std::span<const ErrorStatus> statuses = {});

// A signature failure from net::sigv4, as Lambda answers it (all 403):
//   kMissingAuthentication -> MissingAuthenticationTokenException
//   kIncompleteSignature   -> IncompleteSignatureException
//   kUnknownAccessKey      -> UnrecognizedClientException
//   kSignatureMismatch, kRequestExpired, kPresignExpired -> InvalidSignatureException
AwsError FromVerifyError(const net::sigv4::VerifyError& error);

// The HTTP response for `error`, with x-amzn-RequestId = request_id.
net::HttpResponse ToHttpResponse(const AwsError& error, const std::string& request_id);

// Thrown by API handlers; caught at the API boundary.
class ApiException : public std::exception {
 public:
  explicit ApiException(AwsError error) : error_(std::move(error)) {}
  const char* what() const noexcept override { return error_.message.c_str(); }
  const AwsError& error() const { return error_; }

 private:
  AwsError error_;
};

// Throws ApiException(FromStatus(status)) when status is not OK.
void ThrowIfError(const Status& status);
template <typename T>
T ValueOrThrow(Result<T> result) {
  if (!result.ok()) ThrowIfError(result.status());
  return std::move(result).value();
}

}  // namespace geysir::control

// Declares or assigns `lhs` from an expression returning Result<T>, or returns its non-OK Status
// (from a function returning Status or any Result<U>), the way GEYSIR_RETURN_IF_ERROR
// (base/status.h) propagates a Status:
//   GEYSIR_ASSIGN_OR_RETURN(auto name, Required(form, "Name"));
//   GEYSIR_ASSIGN_OR_RETURN(role.path, PathParam(form));
#define GEYSIR_ASSIGN_OR_RETURN(lhs, expr) \
  GEYSIR_ASSIGN_OR_RETURN_IMPL(GEYSIR_ASSIGN_OR_RETURN_CONCAT(geysir_result_, __LINE__), lhs, expr)
#define GEYSIR_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                 \
  if (!result.ok()) return result.status();             \
  lhs = std::move(result).value()
#define GEYSIR_ASSIGN_OR_RETURN_CONCAT(a, b) GEYSIR_ASSIGN_OR_RETURN_CONCAT_INNER(a, b)
#define GEYSIR_ASSIGN_OR_RETURN_CONCAT_INNER(a, b) a##b
