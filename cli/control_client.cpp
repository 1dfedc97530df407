#include "cli/control_client.h"

#include "net/http_server.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace geysir::cli {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* response = static_cast<ApiResponse*>(user);
  std::string line(data, size * nmemb);
  // A new status line (after a 100 Continue or a redirect) starts a new header block.
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();
    return size * nmemb;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    response->headers.emplace_back(Lower(Trim(line.substr(0, colon))), Trim(line.substr(colon + 1)));
  }
  return size * nmemb;
}

Code CodeForStatus(long status) {
  switch (status) {
    case 400: return Code::kInvalidArgument;
    case 401:
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409: return Code::kAlreadyExists;
    case 413: return Code::kResourceExhausted;
    case 429: return Code::kThrottled;
    case 502:
    case 503: return Code::kUnavailable;
    case 504: return Code::kDeadlineExceeded;
    default: return Code::kInternal;
  }
}

}  // namespace

const std::string* ApiResponse::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return &v;
  }
  return nullptr;
}

std::string ErrorType(const ApiResponse& response) {
  std::string type;
  if (const std::string* h = response.Header("x-amzn-errortype")) type = *h;
  if (type.empty()) {
    auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_object()) {
      for (const char* key : {"__type", "code", "Code", "Type"}) {
        if (body.contains(key) && body[key].is_string() && !body[key].get<std::string>().empty()) {
          type = body[key].get<std::string>();
          break;
        }
      }
    }
  }
  // "ResourceNotFoundException:http://internal.amazon.com/coral/..." and "com.amazon...#Name".
  if (size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
  if (size_t hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  return type;
}

std::string ErrorSummary(const ApiResponse& response) {
  std::string type = ErrorType(response);
  std::string message;
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_object()) {
    for (const char* key : {"message", "Message", "errorMessage"}) {
      if (body.contains(key) && body[key].is_string()) {
        message = body[key].get<std::string>();
        break;
      }
    }
  }
  if (message.empty() && !body.is_object() && !response.body.empty() && response.body.size() < 300) {
    message = Trim(response.body);
  }
  if (type.empty()) type = "HTTP " + std::to_string(response.status);
  return message.empty() ? type : type + ": " + message;
}

Status ApiError(const ApiResponse& response) {
  return Status::Error(CodeForStatus(response.status), ErrorSummary(response));
}

std::string EncodePathSegment(std::string_view segment) { return net::PercentEncode(segment); }

ControlClient::ControlClient(ClientConfig config) : config_(std::move(config)), curl_(curl_easy_init()) {}

Result<ApiResponse> ControlClient::Call(const std::string& method, const std::string& path, const std::string& body,
                                        const std::vector<std::pair<std::string, std::string>>& headers,
                                        const std::string& content_type, long timeout_s) {
  if (!curl_) return Status::Internal("curl_easy_init failed");
  CURL* c = curl_.get();
  curl_easy_reset(c);

  const std::string url = config_.endpoint + path;
  const std::string sigv4 = "aws:amz:" + config_.region + ":lambda";
  ApiResponse response;
  char errbuf[CURL_ERROR_SIZE] = {0};

  CurlSlist list;
  auto add = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(list.get(), line.c_str());
    if (next != nullptr) {
      (void)list.release();
      list.reset(next);
    }
  };
  for (const auto& [k, v] : headers) add(k + ": " + v);
  if (!body.empty() || method == "POST" || method == "PUT") add("Content-Type: " + content_type);
  add("Accept: application/json");

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "geysir-cli/0.1");
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(c, CURLOPT_USERNAME, config_.key.access_key_id.c_str());
  curl_easy_setopt(c, CURLOPT_PASSWORD, config_.key.secret_access_key.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &response);
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (body.empty() && method != "POST" && method != "PUT") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else {
    // POSTFIELDS for every method with a body: libcurl's SigV4 hashes exactly these bytes.
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    if (method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    switch (rc) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
        return Status::Unavailable("cannot reach Geysir control at " + config_.endpoint +
                                   ": is `geysir server` running?");
      case CURLE_OPERATION_TIMEDOUT:
        return Status::Error(Code::kDeadlineExceeded, "Geysir control at " + config_.endpoint +
                                                          " did not answer within " + std::to_string(timeout_s) + " s");
      default:
        return Status::Unavailable(std::string("request to ") + url + " failed: " +
                                   (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace geysir::cli
