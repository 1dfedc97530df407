// ControlClient: HTTP requests to the Geysir control API, signed with AWS Signature V4 by
// libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:lambda", key:secret as CURLOPT_USERPWD).
//
// Transport failures become Status errors a person can act on ("cannot reach Geysir control
// at URL: is `geysir server` running?"); HTTP error responses are returned as responses, and
// ApiError() turns them into "ResourceNotFoundException: Function not found: ...".
//
// Thread safety: one ControlClient per thread (it owns one CURL easy handle, reused so
// connections are kept alive between calls). curl_global_init must have run (main does it).
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/config.h"
#include "base/status.h"

namespace geysir::cli {

struct CurlEasyCleanup {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlHandle = std::unique_ptr<CURL, CurlEasyCleanup>;

struct CurlSlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistFree>;

struct ApiResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  const std::string* Header(std::string_view lower_name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

// "Type: message" from an AWS error response: the type from x-amzn-ErrorType, the JSON
// "__type", "code"/"Code" or "Type" (in that order; "com.amazon...#Name" shortened to Name),
// the message from "message"/"Message"/"errorMessage". Falls back to the HTTP status.
std::string ErrorSummary(const ApiResponse& response);
// The error type alone ("ResourceNotFoundException"), or "" when there is none.
std::string ErrorType(const ApiResponse& response);
// An error Status carrying ErrorSummary, coded by HTTP status (404 -> kNotFound, ...).
Status ApiError(const ApiResponse& response);

// Percent-encodes one path segment (function names, ARNs).
std::string EncodePathSegment(std::string_view segment);

class ControlClient {
 public:
  explicit ControlClient(ClientConfig config);

  // `path` starts with '/' and may carry a query string (keep its parameters sorted by name:
  // that is the order SigV4 signs them in). A non-empty body is sent with `content_type`.
  Result<ApiResponse> Call(const std::string& method, const std::string& path, const std::string& body = "",
                           const std::vector<std::pair<std::string, std::string>>& headers = {},
                           const std::string& content_type = "application/json", long timeout_s = 120);

  const ClientConfig& config() const { return config_; }

 private:
  ClientConfig config_;
  CurlHandle curl_;
};

}  // namespace geysir::cli
