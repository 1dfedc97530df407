// The pure half of control's Lambda REST API: routing of (method, path) to an operation,
// function-name/ARN resolution, validation of request bodies, and the JSON shapes of responses,
// all as AWS's Lambda API reference and botocore's service model define them. Nothing here does
// I/O or touches the store, so control can run the expensive parts (parsing a 70 MB
// CreateFunction body) on a worker thread, and tests can check every rule directly.
//
// Input errors are thrown as ApiException (control/aws_error.h) with the AWS error type and a
// message meant for the person who sent the request.
//
// Thread safety: pure functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "control/store.h"

namespace geysir::control {

enum class Operation {
  kUnknown,
  // Lambda (2015-03-31)
  kCreateFunction,
  kListFunctions,
  kGetFunction,
  kDeleteFunction,
  kGetFunctionConfiguration,
  kUpdateFunctionConfiguration,
  kUpdateFunctionCode,
  kInvoke,
  // Lambda function URLs (2021-10-31)
  kCreateFunctionUrlConfig,
  kGetFunctionUrlConfig,
  kUpdateFunctionUrlConfig,
  kDeleteFunctionUrlConfig,
  kListFunctionUrlConfigs,
  // Lambda asynchronous invocation configs (2019-09-25; control/services/events.cpp)
  kPutFunctionEventInvokeConfig,
  kGetFunctionEventInvokeConfig,
  kUpdateFunctionEventInvokeConfig,
  kDeleteFunctionEventInvokeConfig,
  kListFunctionEventInvokeConfigs,
  // Geysir's native API
  kHealth,
  kGetLogs,
  kGetCode,  // the Code.Location download: authorised by its own signed query, not SigV4
  kListSchedules,       // triggers: schedules and their next firing
  kListAsyncEvents,     // triggers: queued or failed async events
  kRedriveAsyncEvents,  // triggers: failed async events back to the queue
};

const char* OperationName(Operation op);

struct Route {
  Operation op = Operation::kUnknown;
  std::string function;   // the {FunctionName} path segment, percent-decoded (not yet resolved)
  std::string code_hex;   // kGetCode: the hash in /geysir/v1/code/<hex>.zip
};

// Maps a request to its operation. An unknown path gives UnknownOperationException (404); a
// known path with a method it does not take gives 405. `path` is still percent-encoded.
Route MatchRoute(std::string_view method, std::string_view path);

// Account-wide values the API needs to build ARNs and URLs.
struct ApiContext {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  std::string function_url_template = "http://{url_id}.lambda-url.localhost:8080/";
};

std::string FunctionArn(const ApiContext& ctx, const std::string& name);
std::string DefaultRole(const ApiContext& ctx);
// The template with "{url_id}" replaced.
std::string FunctionUrl(const ApiContext& ctx, const std::string& url_id);

// A function reference as clients send it: "name", "name:qualifier", a partial ARN
// "123456789012:function:name[:qualifier]" or a full ARN
// "arn:aws:lambda:region:123456789012:function:name[:qualifier]".
struct FunctionRef {
  std::string name;
  std::string qualifier;  // "" when absent
};
// Throws InvalidParameterValueException for anything that is not one of those forms or whose
// name is not 1-64 of [a-zA-Z0-9-_].
FunctionRef ParseFunctionRef(std::string_view raw);
// Parses and resolves to a plain name. Geysir has only $LATEST so far: a qualifier (in the
// reference or the Qualifier query parameter) other than "$LATEST" is ResourceNotFoundException,
// as Lambda answers for a version that does not exist.
std::string ResolveFunctionName(const ApiContext& ctx, std::string_view raw, std::string_view query_qualifier);

bool IsValidFunctionName(std::string_view name);

// "a=1&b=x%20y" -> {a:1, b:"x y"}; later duplicates are ignored.
std::map<std::string, std::string> ParseQuery(std::string_view query);

// The request body as a JSON object; an empty body is {}. Anything else is
// InvalidRequestContentException.
nlohmann::json ParseJsonObject(std::string_view body);

// Standard base64 (padding optional, whitespace not allowed); nullopt when malformed.
std::optional<std::string> Base64Decode(std::string_view in);

// ---- request bodies ----

// CreateFunction: everything but the code is validated into `record` (name, arn, runtime,
// handler, role, description, memory, timeout, ephemeral storage, environment, tags);
// `zip_base64` is Code.ZipFile still encoded (decoding 70 MB belongs off the loop thread).
struct CreateFunctionInput {
  FunctionRecord record;
  std::string zip_base64;
};
CreateFunctionInput ParseCreateFunction(const ApiContext& ctx, const nlohmann::json& body);

// UpdateFunctionConfiguration: the fields present in the request.
struct ConfigPatch {
  std::optional<std::string> handler, runtime, description, role;
  std::optional<uint32_t> memory_mb, timeout_s, ephemeral_storage_mb;
  std::optional<std::map<std::string, std::string>> environment;
  std::optional<std::string> revision_id;  // precondition
};
ConfigPatch ParseUpdateFunctionConfiguration(const nlohmann::json& body);
void ApplyPatch(const ConfigPatch& patch, FunctionRecord& f);

// UpdateFunctionCode.
struct CodeUpdateInput {
  std::string zip_base64;
  bool dry_run = false;
  std::optional<std::string> revision_id;
};
CodeUpdateInput ParseUpdateFunctionCode(const nlohmann::json& body);

// Create/UpdateFunctionUrlConfig. `create` makes AuthType required. AWS_IAM is refused with a
// clear InvalidParameterValueException (not supported yet).
struct UrlConfigInput {
  std::optional<std::string> auth_type;
  std::optional<nlohmann::json> cors;  // present in the request (may be JSON null)
  std::optional<std::string> invoke_mode;
};
UrlConfigInput ParseUrlConfig(const nlohmann::json& body, bool create);

// Single-field validators, exposed for tests. Each throws InvalidParameterValueException.
void ValidateRuntime(const std::string& runtime);
void ValidateHandler(const std::string& handler);
void ValidateMemory(int64_t mb);
void ValidateTimeout(int64_t s);
std::map<std::string, std::string> ParseEnvironment(const nlohmann::json& environment);

// ---- responses ----
nlohmann::json FunctionConfigurationJson(const FunctionRecord& f);
// Fields of a FunctionUrlConfig (GetFunctionUrlConfig, ListFunctionUrlConfigs items,
// UpdateFunctionUrlConfig); CreateFunctionUrlConfig's response has no LastModifiedTime.
nlohmann::json FunctionUrlConfigJson(const ApiContext& ctx, const FunctionUrlConfigRecord& c,
                                     bool include_last_modified);

// Lambda's synchronous and asynchronous payload limits.
inline constexpr size_t kMaxSyncPayloadBytes = 6 * 1024 * 1024;  // 6291456
inline constexpr size_t kMaxAsyncPayloadBytes = 256 * 1024;      // 262144
inline constexpr size_t kLogTailBytes = 4096;

}  // namespace geysir::control
