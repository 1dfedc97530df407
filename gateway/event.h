// Building the Lambda event for a function URL request: API Gateway payload format 2.0 exactly
// as AWS documents it for function URLs ("Invoking Lambda function URLs", request payload).
//
//   version "2.0", routeKey "$default", rawPath, rawQueryString (as received, still encoded),
//   cookies   (every Cookie header split on ";", omitted when none),
//   headers   (names lower-cased, repeated headers joined with ",", Cookie moved into cookies),
//   queryStringParameters (decoded, repeated keys joined with ",", omitted without a query),
//   requestContext {accountId "anonymous", apiId, domainName, domainPrefix,
//                   http {method, path, protocol, sourceIp, userAgent}, requestId,
//                   routeKey "$default", stage "$default", time, timeEpoch},
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
#include <string>
#include <string_view>

#include "proto/http_server.h"

namespace geysir::gateway {

struct EventContext {
  std::string_view url_id;
  std::string_view domain_name;   // host without port, e.g. "abc.lambda-url.localhost"
  std::string_view request_id;    // UUID, also returned as x-amzn-RequestId
  uint64_t time_epoch_ms = 0;     // when the request arrived
  std::string_view forwarded_proto = "http";
  uint16_t forwarded_port = 0;    // the port the client connected to; 0 omits x-forwarded-port
};

std::string BuildFunctionUrlEvent(const proto::HttpRequest& request, const EventContext& ctx);

// "27/Nov/2026:05:30:00 +0000" (CLF format, as requestContext.time), independent of locale.
std::string FormatRequestTime(uint64_t epoch_ms);

}  // namespace geysir::gateway
