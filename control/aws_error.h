// AwsError: an error as the Lambda REST API reports it to a client, and the mapping from
// Geysir's Status into it.
//
// On the wire (what botocore parses): the HTTP status, the header `x-amzn-ErrorType: <Name>`,
// `x-amzn-RequestId`, and a JSON body `{"Type":"User"|"Service","message":"..."}`. Signature
// failures carry only `{"message":"..."}`, as AWS's front end sends them. Control's handlers
// throw ApiException (control may throw inside, docs/style.md); the server catches it at the
// API boundary and answers with ToHttpResponse(). Nothing in here changes state.
//
// Thread safety: values and pure functions.
#pragma once

#include <exception>
#include <string>

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

// Maps a Status from the store/code store: kNotFound -> 404, kAlreadyExists -> 409,
// kInvalidArgument -> 400, kResourceExhausted -> 413 RequestEntityTooLargeException,
// kUnavailable -> 502, everything else -> 500 ServiceException.
AwsError FromStatus(const Status& status);

// A signature failure from net::sigv4, as Lambda answers it (all 403):
//   kMissingAuthentication -> MissingAuthenticationTokenException
//   kIncompleteSignature   -> IncompleteSignatureException
//   kUnknownAccessKey      -> UnrecognizedClientException
//   kSignatureMismatch, kRequestExpired -> InvalidSignatureException
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
