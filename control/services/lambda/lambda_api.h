// The pure half of control's Lambda REST API: its operations and routes (the table that maps a
// request to them is control/services/lambda/operations.h), function-name/ARN resolution, validation of request bodies, and the JSON shapes of responses,
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
#include <vector>

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
  // Versions, aliases, resource policy (2015-03-31)
  kPublishVersion,
  kListVersionsByFunction,
  kCreateAlias,
  kListAliases,
  kGetAlias,
  kUpdateAlias,
  kDeleteAlias,
  kAddPermission,
  kGetPolicy,
  kRemovePermission,
  // Concurrency (2017-10-31; GetFunctionConcurrency is 2019-09-30)
  kPutFunctionConcurrency,
  kGetFunctionConcurrency,
  kDeleteFunctionConcurrency,
  // Tags (2017-03-31), account settings (2016-08-19)
  kTagResource,
  kUntagResource,
  kListTags,
  kGetAccountSettings,
  // Lambda function URLs (2021-10-31)
  kCreateFunctionUrlConfig,
  kGetFunctionUrlConfig,
  kUpdateFunctionUrlConfig,
  kDeleteFunctionUrlConfig,
  kListFunctionUrlConfigs,
  // Lambda asynchronous invocation configs (2019-09-25)
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
  std::string sub;        // aliases/{Name}, policy/{StatementId}, tags/{ARN}: that segment, decoded
};


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
// Parses a reference and merges the Qualifier query parameter into it: the result's qualifier
// is "" (unqualified), "$LATEST", a version number or an alias name. A qualifier in the name
// that differs from the query's is InvalidParameterValueException, as Lambda words it; so is a
// malformed qualifier.
FunctionRef ResolveFunctionRef(std::string_view raw, std::string_view query_qualifier);
// For operations on the unqualified function only (UpdateFunctionCode, PublishVersion, aliases,
// concurrency, ...): the plain name; a qualifier other than "$LATEST" is
// InvalidParameterValueException.
std::string ResolveFunctionName(const ApiContext& ctx, std::string_view raw, std::string_view query_qualifier);
// True for a version number ("1", "42").
bool IsVersionNumber(std::string_view qualifier);
// Alias names: 1-128 of [a-zA-Z0-9-_], not all digits.
bool IsValidAliasName(std::string_view name);

// ARN with a qualifier: arn:...:function:NAME:QUALIFIER ("" gives the unqualified ARN).
std::string QualifiedArn(const ApiContext& ctx, const std::string& name, const std::string& qualifier);

bool IsValidFunctionName(std::string_view name);

// "a=1&b=x%20y" -> {a:1, b:"x y"}; later duplicates are ignored. `plus_is_space` false keeps
// '+' literal (S3: a key "a+b" arrives as prefix=a+b, botocore encoding spaces as %20).
std::map<std::string, std::string> ParseQuery(std::string_view query, bool plus_is_space = true);
// Every value of a repeated query key ("tagKeys=a&tagKeys=b"), in order.
std::vector<std::string> QueryValues(std::string_view query, std::string_view key);

// The request body as a JSON object; an empty body is {}. Anything else is
// InvalidRequestContentException.
nlohmann::json ParseJsonObject(std::string_view body);

// Standard base64 (padding optional, whitespace not allowed); nullopt when malformed.
std::optional<std::string> Base64Decode(std::string_view in);

// ---- request bodies ----

// CreateFunction: everything but the code is validated into `record` (name, arn, runtime,
// handler, role, description, memory, timeout, ephemeral storage, environment, tags);
// `zip_base64` is Code.ZipFile still encoded (decoding 70 MB belongs off the loop thread).
// Code.S3Bucket / S3Key (and S3ObjectVersion, refused): a package to copy from Geysir's S3.
struct S3CodeSource {
  std::string bucket;
  std::string key;
};
struct CreateFunctionInput {
  FunctionRecord record;
  std::string zip_base64;            // empty when the code comes from S3
  std::optional<S3CodeSource> s3;
  bool publish = false;
};
// Reads Code.S3Bucket/S3Key (CreateFunction's Code object, or UpdateFunctionCode's body);
// nullopt when absent. A bucket without key (or the reverse), S3ObjectVersion or ImageUri is
// InvalidParameterValueException.
std::optional<S3CodeSource> ParseS3CodeSource(const nlohmann::json& code);
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
  std::string zip_base64;            // empty when the code comes from S3
  std::optional<S3CodeSource> s3;
  bool publish = false;
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

// PublishVersion.
struct PublishInput {
  std::string description;
  std::optional<std::string> code_sha256, revision_id;  // preconditions
};
PublishInput ParsePublishVersion(const nlohmann::json& body);

// CreateAlias / UpdateAlias. `create` makes Name and FunctionVersion required.
struct AliasInput {
  std::optional<std::string> name, function_version, description, revision_id;
  std::optional<std::map<std::string, double>> weights;  // RoutingConfig.AdditionalVersionWeights
};
AliasInput ParseAlias(const nlohmann::json& body, bool create);

// AddPermission: the statement as GetPolicy will show it, built from the request the way
// Lambda builds it (Principal as Service / AWS / "*", SourceArn / SourceAccount /
// PrincipalOrgID / FunctionUrlAuthType / EventSourceToken as Conditions).
struct PermissionInput {
  std::string sid;
  nlohmann::json statement;
  std::optional<std::string> revision_id;
};
PermissionInput ParseAddPermission(const ApiContext& ctx, const std::string& resource_arn, const nlohmann::json& body);

// PutFunctionConcurrency: ReservedConcurrentExecutions (0..account limit).
uint32_t ParseReservedConcurrency(const nlohmann::json& body, uint32_t account_limit);

// TagResource: the Tags map. The ARN names the function (versions and aliases cannot be tagged).
std::map<std::string, std::string> ParseTags(const nlohmann::json& body);
// The function name of a tag resource ARN; InvalidParameterValueException when it is not a
// function ARN.
std::string FunctionNameFromTagArn(std::string_view arn);

// ---- responses ----
nlohmann::json FunctionConfigurationJson(const FunctionRecord& f);
nlohmann::json AliasJson(const ApiContext& ctx, const AliasRecord& a);
// Fields of a FunctionUrlConfig (GetFunctionUrlConfig, ListFunctionUrlConfigs items,
// UpdateFunctionUrlConfig); CreateFunctionUrlConfig's response has no LastModifiedTime.
nlohmann::json FunctionUrlConfigJson(const ApiContext& ctx, const FunctionUrlConfigRecord& c,
                                     bool include_last_modified);

// Lambda's synchronous and asynchronous payload limits (Invoke's reference: 6 MB synchronous,
// 1 MB asynchronous since AWS raised the asynchronous limit from 256 KB).
inline constexpr size_t kMaxSyncPayloadBytes = 6 * 1024 * 1024;  // 6291456
inline constexpr size_t kMaxAsyncPayloadBytes = 1024 * 1024;     // 1048576
inline constexpr size_t kLogTailBytes = 4096;
// Lambda's default account concurrency; UnreservedConcurrentExecutions may not go below 100.
inline constexpr uint32_t kAccountConcurrency = 1000;
inline constexpr uint32_t kMinUnreserved = 100;

}  // namespace geysir::control
