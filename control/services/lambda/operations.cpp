// Lambda's operation table: see operations.h.
#include "control/services/lambda/operations.h"

#include <algorithm>
#include <string>
#include <vector>

#include "control/aws_error.h"
#include "control/services/lambda/lambda_internal.h"
#include "net/http_server.h"

namespace geysir::control::lambda {
namespace {

using O = Operation;
using L = Lambda;

// Lambda's API reference gives each operation's method and path; the date is the API version
// that introduced the operation.
constexpr OperationSpec kOperations[] = {
    // Functions (2015-03-31)
    {"POST", "/2015-03-31/functions", O::kCreateFunction, &L::CreateFunction},
    {"GET", "/2015-03-31/functions", O::kListFunctions, &L::ListFunctions},
    {"GET", "/2015-03-31/functions/{FunctionName}", O::kGetFunction, &L::GetFunction},
    {"DELETE", "/2015-03-31/functions/{FunctionName}", O::kDeleteFunction, &L::DeleteFunction},
    {"GET", "/2015-03-31/functions/{FunctionName}/configuration", O::kGetFunctionConfiguration,
     &L::GetFunctionConfiguration},
    {"PUT", "/2015-03-31/functions/{FunctionName}/configuration", O::kUpdateFunctionConfiguration,
     &L::UpdateFunctionConfiguration},
    {"PUT", "/2015-03-31/functions/{FunctionName}/code", O::kUpdateFunctionCode, &L::UpdateFunctionCode},
    {"POST", "/2015-03-31/functions/{FunctionName}/invocations", O::kInvoke, &L::Invoke},
    // Versions, aliases, resource policy (2015-03-31)
    {"POST", "/2015-03-31/functions/{FunctionName}/versions", O::kPublishVersion, &L::PublishVersion},
    {"GET", "/2015-03-31/functions/{FunctionName}/versions", O::kListVersionsByFunction, &L::ListVersionsByFunction},
    {"POST", "/2015-03-31/functions/{FunctionName}/aliases", O::kCreateAlias, &L::CreateAlias},
    {"GET", "/2015-03-31/functions/{FunctionName}/aliases", O::kListAliases, &L::ListAliases},
    {"GET", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", O::kGetAlias, &L::GetAlias},
    {"PUT", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", O::kUpdateAlias, &L::UpdateAlias},
    {"DELETE", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", O::kDeleteAlias, &L::DeleteAlias},
    {"POST", "/2015-03-31/functions/{FunctionName}/policy", O::kAddPermission, &L::AddPermission},
    {"GET", "/2015-03-31/functions/{FunctionName}/policy", O::kGetPolicy, &L::GetPolicy},
    {"DELETE", "/2015-03-31/functions/{FunctionName}/policy/{StatementId}", O::kRemovePermission,
     &L::RemovePermission},
    // Concurrency (2017-10-31; GetFunctionConcurrency is 2019-09-30)
    {"PUT", "/2017-10-31/functions/{FunctionName}/concurrency", O::kPutFunctionConcurrency,
     &L::PutFunctionConcurrency},
    {"DELETE", "/2017-10-31/functions/{FunctionName}/concurrency", O::kDeleteFunctionConcurrency,
     &L::DeleteFunctionConcurrency},
    {"GET", "/2019-09-30/functions/{FunctionName}/concurrency", O::kGetFunctionConcurrency,
     &L::GetFunctionConcurrency},
    // Tags (2017-03-31), account settings (2016-08-19)
    {"POST", "/2017-03-31/tags/{ARN}", O::kTagResource, &L::TagResource},
    {"GET", "/2017-03-31/tags/{ARN}", O::kListTags, &L::ListTags},
    {"DELETE", "/2017-03-31/tags/{ARN}", O::kUntagResource, &L::UntagResource},
    {"GET", "/2016-08-19/account-settings", O::kGetAccountSettings, &L::GetAccountSettings},
    // Function URLs (2021-10-31)
    {"POST", "/2021-10-31/functions/{FunctionName}/url", O::kCreateFunctionUrlConfig, &L::CreateFunctionUrlConfig},
    {"GET", "/2021-10-31/functions/{FunctionName}/url", O::kGetFunctionUrlConfig, &L::GetFunctionUrlConfig},
    {"PUT", "/2021-10-31/functions/{FunctionName}/url", O::kUpdateFunctionUrlConfig, &L::UpdateFunctionUrlConfig},
    {"DELETE", "/2021-10-31/functions/{FunctionName}/url", O::kDeleteFunctionUrlConfig, &L::DeleteFunctionUrlConfig},
    {"GET", "/2021-10-31/functions/{FunctionName}/urls", O::kListFunctionUrlConfigs, &L::ListFunctionUrlConfigs},
    // Asynchronous invocation configs (2019-09-25)
    {"PUT", "/2019-09-25/functions/{FunctionName}/event-invoke-config", O::kPutFunctionEventInvokeConfig,
     &L::PutFunctionEventInvokeConfig},
    {"GET", "/2019-09-25/functions/{FunctionName}/event-invoke-config", O::kGetFunctionEventInvokeConfig,
     &L::GetFunctionEventInvokeConfig},
    {"POST", "/2019-09-25/functions/{FunctionName}/event-invoke-config", O::kUpdateFunctionEventInvokeConfig,
     &L::UpdateFunctionEventInvokeConfig},
    {"DELETE", "/2019-09-25/functions/{FunctionName}/event-invoke-config", O::kDeleteFunctionEventInvokeConfig,
     &L::DeleteFunctionEventInvokeConfig},
    {"GET", "/2019-09-25/functions/{FunctionName}/event-invoke-config/list", O::kListFunctionEventInvokeConfigs,
     &L::ListFunctionEventInvokeConfigs},
    // Geysir's native API
    {"GET", "/geysir/v1/health", O::kHealth, &L::Health, Authorisation::kNone},
    {"HEAD", "/geysir/v1/health", O::kHealth, &L::Health, Authorisation::kNone},
    {"GET", "/geysir/v1/schedules", O::kListSchedules, &L::ListSchedules},
    {"GET", "/geysir/v1/async-events", O::kListAsyncEvents, &L::ListAsyncEvents},
    {"POST", "/geysir/v1/async-events/redrive", O::kRedriveAsyncEvents, &L::RedriveAsyncEvents},
    {"GET", "/geysir/v1/functions/{FunctionName}/logs", O::kGetLogs, &L::GetLogs},
    {"GET", "/geysir/v1/code/{CodeZip}", O::kGetCode, &L::GetCode, Authorisation::kOwn},
};

// The path's segments, percent-decoded. "/2015-03-31/functions/" splits into
// [..., "functions"]: one trailing slash is allowed.
std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  if (!path.empty() && path[0] == '/') i = 1;
  // Bounded by the path length: every iteration consumes at least one character.
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(net::PercentDecode(path.substr(i, j - i), false));
    i = j + 1;
  }
  if (out.size() > 1 && out.back().empty()) out.pop_back();
  return out;
}

bool IsCodeZip(const std::string& file) {
  static constexpr std::string_view kSuffix = ".zip";
  if (file.size() != 64 + kSuffix.size() || !file.ends_with(kSuffix)) return false;
  return std::all_of(file.begin(), file.end() - static_cast<std::ptrdiff_t>(kSuffix.size()),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Whether `segments` have the shape of `pattern`; if so, its parameters go into `route`.
bool MatchPath(std::string_view pattern, const std::vector<std::string>& segments, Route& route) {
  const std::vector<std::string> parts = SplitPath(pattern);
  if (parts.size() != segments.size()) return false;
  Route r;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const std::string& seg = segments[i];
    if (part == "{FunctionName}") {
      r.function = seg;
    } else if (part == "{Name}" || part == "{StatementId}" || part == "{ARN}") {
      r.sub = seg;
    } else if (part == "{CodeZip}") {
      if (!IsCodeZip(seg)) return false;
      r.code_hex = seg.substr(0, 64);
    } else if (part != seg) {
      return false;
    }
  }
  route = std::move(r);
  return true;
}

}  // namespace

std::span<const OperationSpec> Operations() { return kOperations; }

const OperationSpec& MatchOperation(std::string_view method, std::string_view path, Route& route) {
  const std::vector<std::string> segments = SplitPath(path);
  bool path_known = false;
  for (const OperationSpec& spec : kOperations) {
    Route r;
    if (!MatchPath(spec.path, segments, r)) continue;
    path_known = true;
    if (spec.method != method) continue;
    r.op = spec.op;
    route = std::move(r);
    return spec;
  }
  if (path_known) {
    throw ApiException(MethodNotAllowed("Method " + std::string(method) + " is not allowed on " + std::string(path)));
  }
  throw ApiException(UnknownOperation("No Lambda or Geysir operation at " + std::string(method) + " " +
                                      std::string(path.substr(0, 200))));
}

}  // namespace geysir::control::lambda

namespace geysir::control {

Route MatchRoute(std::string_view method, std::string_view path) {
  Route route;
  (void)lambda::MatchOperation(method, path, route);
  return route;
}

}  // namespace geysir::control
