// Building the Lambda event for a function URL or API Gateway request: payload format 2.0
// exactly as AWS documents it for function URLs ("Invoking Lambda function URLs", request
// payload) and HTTP APIs, and the REST API proxy event (payload format 1.0, BuildRestEvent).
//
//   version "2.0", routeKey (ctx), rawPath, rawQueryString (as received, still encoded),
//   cookies   (every Cookie header split on ";", omitted when none),
//   headers   (names lower-cased, repeated headers joined with ",", Cookie moved into cookies),
//   queryStringParameters (decoded, repeated keys joined with ",", omitted without a query),
//   pathParameters, stageVariables (HTTP APIs; omitted when empty),
//   requestContext {accountId ("anonymous" for function URLs), apiId, domainName, domainPrefix,
//                   http {method, path, protocol, sourceIp, userAgent}, requestId,
//                   routeKey, stage ("$default" for function URLs), time, timeEpoch},
//   body (omitted when empty), isBase64Encoded.
//
// The body is sent as text only for textual media types that are valid UTF-8 (see
// IsTextualContentType); otherwise it is base64-encoded and isBase64Encoded is true, as AWS
// does. The event is written straight into one string (no JSON DOM) because this runs for
// every function call.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http_server.h"

namespace geysir::gateway {

using NameValueList = std::vector<std::pair<std::string, std::string>>;

struct EventContext {
  std::string_view url_id;        // function URL id, or API id
  std::string_view domain_name;   // host without port, e.g. "abc.lambda-url.localhost"
  std::string_view request_id;    // UUID, also returned as x-amzn-RequestId
  uint64_t time_epoch_ms = 0;     // when the request arrived
  std::string_view forwarded_proto = "http";
  uint16_t forwarded_port = 0;    // the port the client connected to; 0 omits x-forwarded-port
  // API Gateway (HTTP APIs, and REST APIs for the 1.0 event); function URLs keep the defaults.
  std::string_view account_id = "anonymous";
  std::string_view route_key = "$default";
  std::string_view stage = "$default";
  const NameValueList* path_parameters = nullptr;               // omitted when null or empty
  const std::map<std::string, std::string>* stage_variables = nullptr;  // likewise
};

// Payload format 2.0: function URLs and HTTP APIs.
std::string BuildFunctionUrlEvent(const net::HttpRequest& request, const EventContext& ctx);

// Payload format 1.0, the REST API proxy event (API Gateway's "Lambda proxy integration"
// input format): resource, path, httpMethod, headers + multiValueHeaders (names as sent; the
// single-value map holds the last value), queryStringParameters +
// multiValueQueryStringParameters (decoded), pathParameters, stageVariables (null when empty),
// requestContext {accountId, apiId, domainName, domainPrefix, extendedRequestId, httpMethod,
// identity {sourceIp, userAgent, ...null}, path (with the stage), protocol, requestId,
// requestTime, requestTimeEpoch, resourceId, resourcePath, stage}, body (null when empty),
// isBase64Encoded. The body travels base64 when `binary_body` says so (the REST API's
// binaryMediaTypes matched the Content-Type); otherwise as text. `version_field` adds
// "version":"1.0" (HTTP APIs with payload format 1.0 send it; REST APIs do not).
struct RestEventContext {
  EventContext base;
  std::string_view resource_path;  // the matched template, "/{proxy+}"
  std::string_view resource_id;
  std::string_view path;           // the request path after the stage, "/users/7"
  bool binary_body = false;
  bool version_field = false;
};
std::string BuildRestEvent(const net::HttpRequest& request, const RestEventContext& ctx);

// "27/Nov/2026:05:30:00 +0000" (CLF format, as requestContext.time), independent of locale.
std::string FormatRequestTime(uint64_t epoch_ms);

}  // namespace geysir::gateway
