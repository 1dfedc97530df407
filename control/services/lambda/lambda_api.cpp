#include "control/services/lambda/lambda_api.h"

#include "base/base64.h"

#include <algorithm>
#include <array>
#include <vector>

#include "control/aws_error.h"
#include "net/http_server.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;

[[noreturn]] void Invalid(std::string message) { throw ApiException(InvalidParameterValue(std::move(message))); }

std::string Quote(std::string_view s) {
  std::string out = "'";
  out.append(s.substr(0, 200));
  out += "'";
  return out;
}

bool IsDigits(std::string_view s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Typed field readers: a present field of the wrong JSON type is the client's error, worded
// the way Lambda words its serialization errors.
std::optional<std::string> OptString(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) Invalid(std::string(key) + " must be a string");
  return it->get<std::string>();
}

std::optional<int64_t> OptInt(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned()) Invalid(std::string(key) + " must be an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    Invalid(std::string(key) + " is out of range");
  }
  return it->get<int64_t>();
}

std::optional<bool> OptBool(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) Invalid(std::string(key) + " must be a boolean");
  return it->get<bool>();
}

const json* OptObject(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  if (!it->is_object()) Invalid(std::string(key) + " must be an object");
  return &*it;
}

void ValidateDescription(const std::string& d) {
  if (d.size() > 256) Invalid("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256");
}

uint32_t ValidateEphemeral(int64_t mb) {
  if (mb < 512 || mb > 10240) {
    Invalid("1 validation error detected: Value '" + std::to_string(mb) +
            "' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value between 512 and 10240");
  }
  return static_cast<uint32_t>(mb);
}

std::optional<uint32_t> ParseEphemeralStorage(const json& body) {
  const json* eph = OptObject(body, "EphemeralStorage");
  if (!eph) return std::nullopt;
  auto size = OptInt(*eph, "Size");
  if (!size) Invalid("EphemeralStorage.Size is required");
  return ValidateEphemeral(*size);
}

void ValidateRole(const std::string& role) {
  if (role.empty() || role.size() > 2048) Invalid("Role must be 1 to 2048 characters");
}

void ValidateArchitectures(const json& body) {
  auto it = body.find("Architectures");
  if (it == body.end() || it->is_null()) return;
  if (!it->is_array() || it->size() != 1 || !(*it)[0].is_string()) {
    Invalid("Architectures must be a list holding exactly one architecture");
  }
  if ((*it)[0].get<std::string>() != "x86_64") {
    Invalid("Architecture " + Quote((*it)[0].get<std::string>()) +
            " is not supported by Geysir: functions run on the host, which is x86_64");
  }
}

void RejectUnsupportedCodeSources(const json& code) {
  for (const char* key : {"S3ObjectVersion", "ImageUri"}) {
    auto it = code.find(key);
    if (it != code.end() && !it->is_null()) {
      Invalid(std::string("Code.") + key +
              " is not supported by Geysir yet: upload the package as ZipFile or as S3Bucket + S3Key");
    }
  }
}

}  // namespace

const char* OperationName(Operation op) {
  switch (op) {
    case Operation::kUnknown: return "Unknown";
    case Operation::kCreateFunction: return "CreateFunction";
    case Operation::kListFunctions: return "ListFunctions";
    case Operation::kGetFunction: return "GetFunction";
    case Operation::kDeleteFunction: return "DeleteFunction";
    case Operation::kGetFunctionConfiguration: return "GetFunctionConfiguration";
    case Operation::kUpdateFunctionConfiguration: return "UpdateFunctionConfiguration";
    case Operation::kUpdateFunctionCode: return "UpdateFunctionCode";
    case Operation::kInvoke: return "Invoke";
    case Operation::kPublishVersion: return "PublishVersion";
    case Operation::kListVersionsByFunction: return "ListVersionsByFunction";
    case Operation::kCreateAlias: return "CreateAlias";
    case Operation::kListAliases: return "ListAliases";
    case Operation::kGetAlias: return "GetAlias";
    case Operation::kUpdateAlias: return "UpdateAlias";
    case Operation::kDeleteAlias: return "DeleteAlias";
    case Operation::kAddPermission: return "AddPermission";
    case Operation::kGetPolicy: return "GetPolicy";
    case Operation::kRemovePermission: return "RemovePermission";
    case Operation::kPutFunctionConcurrency: return "PutFunctionConcurrency";
    case Operation::kGetFunctionConcurrency: return "GetFunctionConcurrency";
    case Operation::kDeleteFunctionConcurrency: return "DeleteFunctionConcurrency";
    case Operation::kTagResource: return "TagResource";
    case Operation::kUntagResource: return "UntagResource";
    case Operation::kListTags: return "ListTags";
    case Operation::kGetAccountSettings: return "GetAccountSettings";
    case Operation::kCreateFunctionUrlConfig: return "CreateFunctionUrlConfig";
    case Operation::kGetFunctionUrlConfig: return "GetFunctionUrlConfig";
    case Operation::kUpdateFunctionUrlConfig: return "UpdateFunctionUrlConfig";
    case Operation::kDeleteFunctionUrlConfig: return "DeleteFunctionUrlConfig";
    case Operation::kListFunctionUrlConfigs: return "ListFunctionUrlConfigs";
    case Operation::kHealth: return "Health";
    case Operation::kGetLogs: return "GetLogs";
    case Operation::kGetCode: return "GetCode";
    case Operation::kPutFunctionEventInvokeConfig: return "PutFunctionEventInvokeConfig";
    case Operation::kGetFunctionEventInvokeConfig: return "GetFunctionEventInvokeConfig";
    case Operation::kUpdateFunctionEventInvokeConfig: return "UpdateFunctionEventInvokeConfig";
    case Operation::kDeleteFunctionEventInvokeConfig: return "DeleteFunctionEventInvokeConfig";
    case Operation::kListFunctionEventInvokeConfigs: return "ListFunctionEventInvokeConfigs";
    case Operation::kListSchedules: return "ListSchedules";
    case Operation::kListAsyncEvents: return "ListAsyncEvents";
    case Operation::kRedriveAsyncEvents: return "RedriveAsyncEvents";
  }
  return "Unknown";
}

std::string FunctionArn(const ApiContext& ctx, const std::string& name) {
  return "arn:aws:lambda:" + ctx.region + ":" + ctx.account_id + ":function:" + name;
}

std::string DefaultRole(const ApiContext& ctx) {
  return "arn:aws:iam::" + ctx.account_id + ":role/geysir-function";
}

std::string FunctionUrl(const ApiContext& ctx, const std::string& url_id) {
  std::string out = ctx.function_url_template;
  static constexpr std::string_view kPlaceholder = "{url_id}";
  size_t pos = out.find(kPlaceholder);
  if (pos != std::string::npos) out.replace(pos, kPlaceholder.size(), url_id);
  return out;
}

bool IsValidFunctionName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

FunctionRef ParseFunctionRef(std::string_view raw) {
  auto bad = [&]() -> FunctionRef {
    Invalid("1 validation error detected: Value " + Quote(raw) +
            " at 'functionName' failed to satisfy constraint: Member must be a function name (1-64 of "
            "[a-zA-Z0-9-_]), a partial ARN (123456789012:function:NAME) or a full ARN "
            "(arn:aws:lambda:REGION:123456789012:function:NAME), optionally with a :QUALIFIER");
  };
  if (raw.empty() || raw.size() > 170) return bad();
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (parts.size() <= 8) {  // more than 8 parts is malformed anyway
    size_t j = raw.find(':', i);
    if (j == std::string_view::npos) {
      parts.push_back(raw.substr(i));
      break;
    }
    parts.push_back(raw.substr(i, j - i));
    i = j + 1;
  }
  FunctionRef ref;
  size_t name_at = 0;
  if (parts[0] == "arn") {
    // arn:aws:lambda:us-east-1:123456789012:function:name[:qualifier]
    if (parts.size() < 7 || parts.size() > 8 || !parts[1].starts_with("aws") || parts[2] != "lambda" ||
        parts[3].empty() || !IsDigits(parts[4], 12) || parts[5] != "function") {
      return bad();
    }
    name_at = 6;
  } else if (parts.size() >= 3 && parts[1] == "function") {
    // 123456789012:function:name[:qualifier]
    if (!IsDigits(parts[0], 12) || parts.size() > 4) return bad();
    name_at = 2;
  } else if (parts.size() >= 2 && parts[0] == "function") {
    // function:name[:qualifier] — Lambda's pattern makes the account optional too (Zappa's
    // rollback sends "function:NAME:VERSION").
    if (parts.size() > 3) return bad();
    name_at = 1;
  } else {
    if (parts.size() > 2) return bad();
    name_at = 0;
  }
  ref.name = std::string(parts[name_at]);
  if (name_at + 1 < parts.size()) {
    ref.qualifier = std::string(parts[name_at + 1]);
    if (ref.qualifier.empty()) return bad();
  }
  if (!IsValidFunctionName(ref.name)) return bad();
  return ref;
}

bool IsVersionNumber(std::string_view q) {
  return !q.empty() && q.size() <= 10 && std::all_of(q.begin(), q.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsValidAliasName(std::string_view name) {
  if (name.empty() || name.size() > 128 || IsVersionNumber(name)) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::string QualifiedArn(const ApiContext& ctx, const std::string& name, const std::string& qualifier) {
  return qualifier.empty() ? FunctionArn(ctx, name) : FunctionArn(ctx, name) + ":" + qualifier;
}

FunctionRef ResolveFunctionRef(std::string_view raw, std::string_view query_qualifier) {
  FunctionRef ref = ParseFunctionRef(raw);
  if (!query_qualifier.empty()) {
    if (!ref.qualifier.empty() && ref.qualifier != query_qualifier) {
      Invalid("The derived qualifier from the function name does not match the specified qualifier.");
    }
    ref.qualifier = std::string(query_qualifier);
  }
  const std::string& q = ref.qualifier;
  if (!q.empty() && q != "$LATEST" && !IsVersionNumber(q) && !IsValidAliasName(q)) {
    Invalid("1 validation error detected: Value " + Quote(q) +
            " at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "(|[a-zA-Z0-9$_-]+)");
  }
  return ref;
}

std::string ResolveFunctionName(const ApiContext& ctx, std::string_view raw, std::string_view query_qualifier) {
  FunctionRef ref = ResolveFunctionRef(raw, query_qualifier);
  if (!ref.qualifier.empty() && ref.qualifier != "$LATEST") {
    (void)ctx;
    Invalid("This operation takes the unqualified function; remove the qualifier " + Quote(ref.qualifier) +
            " from " + Quote(raw));
  }
  return ref.name;
}

std::map<std::string, std::string> ParseQuery(std::string_view query, bool plus_is_space) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view pair = query.substr(i, j - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = net::PercentDecode(pair.substr(0, eq), plus_is_space);
      std::string value = eq == std::string_view::npos ? "" : net::PercentDecode(pair.substr(eq + 1), plus_is_space);
      out.emplace(std::move(key), std::move(value));
    }
    i = j + 1;
  }
  return out;
}

std::vector<std::string> QueryValues(std::string_view query, std::string_view key) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view pair = query.substr(i, j - i);
    size_t eq = pair.find('=');
    if (!pair.empty() && net::PercentDecode(pair.substr(0, eq), true) == key) {
      out.push_back(eq == std::string_view::npos ? "" : net::PercentDecode(pair.substr(eq + 1), true));
    }
    i = j + 1;
  }
  return out;
}

json ParseJsonObject(std::string_view body) {
  if (body.empty()) return json::object();
  auto parsed = ParseUntrustedJson(body);
  if (!parsed.ok() && parsed.status().code() == Code::kResourceExhausted) {
    throw ApiException(InvalidRequestContent("Could not parse request body into json: " + parsed.status().message()));
  }
  if (!parsed.ok()) throw ApiException(InvalidRequestContent("Could not parse request body into json: malformed JSON"));
  json j = std::move(parsed).value();
  if (!j.is_object()) throw ApiException(InvalidRequestContent("Could not parse request body into json: expected an object"));
  return j;
}

std::optional<std::string> Base64Decode(std::string_view in) { return DecodeBase64(in); }

void ValidateRuntime(const std::string& runtime) {
  // Every python3.x runtime Lambda has offered runs on the host's Python 3; the handler
  // conventions are the same.
  static constexpr std::array<std::string_view, 6> kPython = {"python3.8",  "python3.9",  "python3.10",
                                                              "python3.11", "python3.12", "python3.13"};
  if (std::find(kPython.begin(), kPython.end(), runtime) != kPython.end()) return;
  Invalid("Runtime " + Quote(runtime) +
          " is not supported by Geysir yet. Supported runtimes: python3.8 to python3.13 (they run on the host's "
          "Python 3; python3.11 is the reference)");
}

void ValidateHandler(const std::string& handler) {
  auto bad = [&](const std::string& why) {
    Invalid("Handler " + Quote(handler) + " is not valid: " + why +
            ". Use 'module.function', e.g. 'app.handler' or 'pkg.mod.handler'");
  };
  if (handler.empty() || handler.size() > 128) bad("it must be 1 to 128 characters");
  for (char c : handler) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') bad("it contains whitespace");
  }
  size_t dot = handler.rfind('.');
  if (dot == std::string::npos || dot == 0) bad("it has no module part");
  if (!IsIdentifier(std::string_view(handler).substr(dot + 1))) bad("the function name is not a Python identifier");
  // Module part: dotted components; Lambda also accepts a directory prefix ("src/app.handler").
  std::string_view module = std::string_view(handler).substr(0, dot);
  size_t slash = module.rfind('/');
  if (slash != std::string_view::npos) {
    std::string_view dir = module.substr(0, slash);
    if (dir.empty() || dir.front() == '/' || dir.find("..") != std::string_view::npos) bad("the directory part is not relative");
    module = module.substr(slash + 1);
  }
  size_t start = 0;
  for (int guard = 0; guard < 128; ++guard) {
    size_t end = module.find('.', start);
    std::string_view part = module.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!IsIdentifier(part)) bad("the module path is not a dotted Python module name");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

void ValidateMemory(int64_t mb) {
  if (mb < 128 || mb > 10240) {
    Invalid("1 validation error detected: Value '" + std::to_string(mb) +
            "' at 'memorySize' failed to satisfy constraint: Member must have value between 128 and 10240");
  }
}

void ValidateTimeout(int64_t s) {
  if (s < 1 || s > 900) {
    Invalid("1 validation error detected: Value '" + std::to_string(s) +
            "' at 'timeout' failed to satisfy constraint: Member must have value between 1 and 900");
  }
}

std::map<std::string, std::string> ParseEnvironment(const json& environment) {
  std::map<std::string, std::string> out;
  if (!environment.is_object()) Invalid("Environment must be an object");
  auto it = environment.find("Variables");
  if (it == environment.end() || it->is_null()) return out;
  if (!it->is_object()) Invalid("Environment.Variables must be a map of strings to strings");
  // Lambda's reserved names: the runtime sets them, so a function may not override them.
  static constexpr std::array<std::string_view, 16> kReserved = {
      "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_KEY",
      "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME",
      "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"};
  std::string reserved_used;
  size_t total = 0;
  for (const auto& [key, value] : it->items()) {
    bool key_ok = key.size() >= 2 && ((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z')) &&
                  IsIdentifier(key);
    if (!key_ok) {
      Invalid("1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys "
              "must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+] "
              "(key " + Quote(key) + ")");
    }
    if (!value.is_string()) Invalid("Environment variable " + Quote(key) + " must have a string value");
    if (std::find(kReserved.begin(), kReserved.end(), key) != kReserved.end()) {
      reserved_used += reserved_used.empty() ? key : "," + key;
    }
    total += key.size() + value.get_ref<const std::string&>().size();
    out.emplace(key, value.get<std::string>());
  }
  if (!reserved_used.empty()) {
    Invalid("Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. Reserved keys used "
            "in this request: " + reserved_used);
  }
  if (total > 4096) {
    Invalid("Lambda was unable to configure your environment variables because the environment variables you have "
            "provided exceeded the 4KB limit. String measured: " + std::to_string(total) + " bytes");
  }
  // Geysir's execution mode (docs/request-path.md): a typo must not silently mean per-request.
  if (auto mode = out.find(proto::kExecutionModeVariable);
      mode != out.end() && mode->second != "per-request" && mode->second != "reuse") {
    Invalid(std::string("Environment variable ") + proto::kExecutionModeVariable +
            " must be \"per-request\" or \"reuse\", not " + Quote(mode->second));
  }
  return out;
}

CreateFunctionInput ParseCreateFunction(const ApiContext& ctx, const json& body) {
  CreateFunctionInput in;
  FunctionRecord& f = in.record;
  auto name = OptString(body, "FunctionName");
  if (!name) Invalid("FunctionName is required");
  f.name = ResolveFunctionName(ctx, *name, "");
  f.arn = FunctionArn(ctx, f.name);

  auto package_type = OptString(body, "PackageType");
  if (package_type && *package_type != "Zip") {
    Invalid("PackageType " + Quote(*package_type) + " is not supported by Geysir yet: use Zip");
  }
  auto runtime = OptString(body, "Runtime");
  if (!runtime) Invalid("Runtime is required for .zip deployment packages");
  ValidateRuntime(*runtime);
  f.runtime = *runtime;
  auto handler = OptString(body, "Handler");
  if (!handler) Invalid("Handler is required for .zip deployment packages");
  ValidateHandler(*handler);
  f.handler = *handler;

  f.role = OptString(body, "Role").value_or(DefaultRole(ctx));
  ValidateRole(f.role);
  f.description = OptString(body, "Description").value_or("");
  ValidateDescription(f.description);
  if (auto m = OptInt(body, "MemorySize")) {
    ValidateMemory(*m);
    f.memory_mb = static_cast<uint32_t>(*m);
  }
  if (auto t = OptInt(body, "Timeout")) {
    ValidateTimeout(*t);
    f.timeout_s = static_cast<uint32_t>(*t);
  }
  if (auto e = ParseEphemeralStorage(body)) f.ephemeral_storage_mb = *e;
  if (const json* env = OptObject(body, "Environment")) f.environment = ParseEnvironment(*env);
  ValidateArchitectures(body);
  if (const json* tags = OptObject(body, "Tags")) {
    for (const auto& [k, v] : tags->items()) {
      if (!v.is_string()) Invalid("Tag " + Quote(k) + " must have a string value");
      f.tags.emplace(k, v.get<std::string>());
    }
    // Geysir's network mode (docs/security.md): a typo must not silently mean "none".
    if (auto it = f.tags.find("geysir:network"); it != f.tags.end() && it->second != "none" && it->second != "egress") {
      Invalid("Tag geysir:network must be \"none\" or \"egress\", not " + Quote(it->second));
    }
  }
  if (auto layers = body.find("Layers"); layers != body.end() && layers->is_array() && !layers->empty()) {
    Invalid("Layers are not supported by Geysir yet");
  }
  in.publish = OptBool(body, "Publish").value_or(false);

  const json* code = OptObject(body, "Code");
  if (!code) Invalid("Code is required");
  RejectUnsupportedCodeSources(*code);
  in.s3 = ParseS3CodeSource(*code);
  auto zip = OptString(*code, "ZipFile");
  if (in.s3) {
    if (zip) Invalid("Please specify only one of ZipFile or S3Bucket/S3Key in Code");
    return in;
  }
  if (!zip || zip->empty()) Invalid("Code.ZipFile or Code.S3Bucket + S3Key is required: the deployment package");
  in.zip_base64 = std::move(*zip);
  return in;
}

ConfigPatch ParseUpdateFunctionConfiguration(const json& body) {
  ConfigPatch p;
  if ((p.handler = OptString(body, "Handler"))) ValidateHandler(*p.handler);
  if ((p.runtime = OptString(body, "Runtime"))) ValidateRuntime(*p.runtime);
  if ((p.description = OptString(body, "Description"))) ValidateDescription(*p.description);
  if ((p.role = OptString(body, "Role"))) ValidateRole(*p.role);
  if (auto m = OptInt(body, "MemorySize")) {
    ValidateMemory(*m);
    p.memory_mb = static_cast<uint32_t>(*m);
  }
  if (auto t = OptInt(body, "Timeout")) {
    ValidateTimeout(*t);
    p.timeout_s = static_cast<uint32_t>(*t);
  }
  p.ephemeral_storage_mb = ParseEphemeralStorage(body);
  if (const json* env = OptObject(body, "Environment")) p.environment = ParseEnvironment(*env);
  if (auto layers = body.find("Layers"); layers != body.end() && layers->is_array() && !layers->empty()) {
    Invalid("Layers are not supported by Geysir yet");
  }
  p.revision_id = OptString(body, "RevisionId");
  return p;
}

void ApplyPatch(const ConfigPatch& p, FunctionRecord& f) {
  if (p.handler) f.handler = *p.handler;
  if (p.runtime) f.runtime = *p.runtime;
  if (p.description) f.description = *p.description;
  if (p.role) f.role = *p.role;
  if (p.memory_mb) f.memory_mb = *p.memory_mb;
  if (p.timeout_s) f.timeout_s = *p.timeout_s;
  if (p.ephemeral_storage_mb) f.ephemeral_storage_mb = *p.ephemeral_storage_mb;
  if (p.environment) f.environment = *p.environment;
}

CodeUpdateInput ParseUpdateFunctionCode(const json& body) {
  CodeUpdateInput in;
  RejectUnsupportedCodeSources(body);
  ValidateArchitectures(body);
  in.s3 = ParseS3CodeSource(body);
  auto zip = OptString(body, "ZipFile");
  if (in.s3 && zip) Invalid("Please specify only one of ZipFile or S3Bucket/S3Key");
  if (!in.s3) {
    if (!zip || zip->empty()) Invalid("ZipFile or S3Bucket + S3Key is required: the deployment package");
    in.zip_base64 = std::move(*zip);
  }
  in.dry_run = OptBool(body, "DryRun").value_or(false);
  in.publish = OptBool(body, "Publish").value_or(false);
  in.revision_id = OptString(body, "RevisionId");
  return in;
}

UrlConfigInput ParseUrlConfig(const json& body, bool create) {
  UrlConfigInput in;
  in.auth_type = OptString(body, "AuthType");
  if (create && !in.auth_type) Invalid("AuthType is required (NONE)");
  if (in.auth_type) {
    if (*in.auth_type == "AWS_IAM") {
      Invalid("AuthType AWS_IAM is not supported by Geysir yet: use NONE (function URLs are then public)");
    }
    if (*in.auth_type != "NONE") {
      Invalid("1 validation error detected: Value " + Quote(*in.auth_type) +
              " at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]");
    }
  }
  if (auto it = body.find("Cors"); it != body.end()) {
    if (!it->is_null() && !it->is_object()) Invalid("Cors must be an object");
    if (it->is_object()) {
      for (const auto& [k, v] : it->items()) {
        if (k == "AllowCredentials") {
          if (!v.is_boolean()) Invalid("Cors.AllowCredentials must be a boolean");
        } else if (k == "MaxAge") {
          if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 86400) {
            Invalid("Cors.MaxAge must be an integer between 0 and 86400");
          }
        } else if (k == "AllowHeaders" || k == "AllowMethods" || k == "AllowOrigins" || k == "ExposeHeaders") {
          if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); })) {
            Invalid("Cors." + k + " must be a list of strings");
          }
        } else {
          Invalid("Cors has an unknown field " + Quote(k));
        }
      }
    }
    in.cors = *it;
  }
  in.invoke_mode = OptString(body, "InvokeMode");
  if (in.invoke_mode && *in.invoke_mode != "BUFFERED") {
    Invalid("InvokeMode " + Quote(*in.invoke_mode) + " is not supported by Geysir yet: use BUFFERED");
  }
  return in;
}

std::optional<S3CodeSource> ParseS3CodeSource(const json& code) {
  auto bucket = OptString(code, "S3Bucket");
  auto key = OptString(code, "S3Key");
  if (!bucket && !key) return std::nullopt;
  if (!bucket || bucket->empty()) Invalid("S3Bucket is required with S3Key");
  if (!key || key->empty()) Invalid("S3Key is required with S3Bucket");
  return S3CodeSource{*bucket, *key};
}

PublishInput ParsePublishVersion(const json& body) {
  PublishInput in;
  in.description = OptString(body, "Description").value_or("");
  ValidateDescription(in.description);
  in.code_sha256 = OptString(body, "CodeSha256");
  in.revision_id = OptString(body, "RevisionId");
  return in;
}

AliasInput ParseAlias(const json& body, bool create) {
  AliasInput in;
  in.name = OptString(body, "Name");
  in.function_version = OptString(body, "FunctionVersion");
  in.description = OptString(body, "Description");
  in.revision_id = OptString(body, "RevisionId");
  if (create) {
    if (!in.name) Invalid("Name is required");
    if (!in.function_version) Invalid("FunctionVersion is required");
  }
  if (in.name && !IsValidAliasName(*in.name)) {
    Invalid("1 validation error detected: Value " + Quote(*in.name) +
            " at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "(?!^[0-9]+$)([a-zA-Z0-9-_]+)");
  }
  if (in.function_version && *in.function_version != "$LATEST" && !IsVersionNumber(*in.function_version)) {
    Invalid("1 validation error detected: Value " + Quote(*in.function_version) +
            " at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "(\\$LATEST|[0-9]+)");
  }
  if (in.description) ValidateDescription(*in.description);
  if (const json* routing = OptObject(body, "RoutingConfig")) {
    std::map<std::string, double> weights;
    if (const json* w = OptObject(*routing, "AdditionalVersionWeights")) {
      if (w->size() > 1) Invalid("RoutingConfig.AdditionalVersionWeights may name one additional version");
      for (const auto& [v, weight] : w->items()) {
        if (!IsVersionNumber(v)) Invalid("AdditionalVersionWeights keys must be version numbers, not " + Quote(v));
        if (!weight.is_number() || weight.get<double>() < 0.0 || weight.get<double>() > 1.0) {
          Invalid("AdditionalVersionWeights values must be numbers between 0.0 and 1.0");
        }
        weights[v] = weight.get<double>();
      }
    }
    in.weights = std::move(weights);
  }
  return in;
}

PermissionInput ParseAddPermission(const ApiContext& ctx, const std::string& resource_arn, const json& body) {
  PermissionInput in;
  auto sid = OptString(body, "StatementId");
  if (!sid || sid->empty() || sid->size() > 100 ||
      !std::all_of(sid->begin(), sid->end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      })) {
    Invalid("1 validation error detected: Value at 'statementId' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: ([a-zA-Z0-9-_]+) and have length between 1 and 100");
  }
  auto action = OptString(body, "Action");
  if (!action || action->empty()) Invalid("Action is required (e.g. lambda:InvokeFunction)");
  auto principal = OptString(body, "Principal");
  if (!principal || principal->empty()) Invalid("Principal is required");
  in.sid = *sid;
  in.revision_id = OptString(body, "RevisionId");

  json p;
  if (*principal == "*") {
    p = "*";
  } else if (IsDigits(*principal, 12)) {
    p = {{"AWS", "arn:aws:iam::" + *principal + ":root"}};
  } else if (principal->rfind("arn:", 0) == 0) {
    p = {{"AWS", *principal}};
  } else {
    p = {{"Service", *principal}};
  }
  json st = {{"Sid", in.sid}, {"Effect", "Allow"}, {"Principal", p}, {"Action", *action}, {"Resource", resource_arn}};
  json condition = json::object();
  auto string_equals = [&](const char* key, const std::string& value) { condition["StringEquals"][key] = value; };
  if (auto acct = OptString(body, "SourceAccount")) string_equals("AWS:SourceAccount", *acct);
  if (auto org = OptString(body, "PrincipalOrgID")) string_equals("aws:PrincipalOrgID", *org);
  if (auto tok = OptString(body, "EventSourceToken")) string_equals("lambda:EventSourceToken", *tok);
  if (auto auth = OptString(body, "FunctionUrlAuthType")) {
    if (*auth != "NONE" && *auth != "AWS_IAM") {
      Invalid("1 validation error detected: Value " + Quote(*auth) +
              " at 'functionUrlAuthType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]");
    }
    string_equals("lambda:FunctionUrlAuthType", *auth);
  }
  if (auto src = OptString(body, "SourceArn")) condition["ArnLike"]["AWS:SourceArn"] = *src;
  if (!condition.empty()) st["Condition"] = condition;
  (void)ctx;
  in.statement = std::move(st);
  return in;
}

uint32_t ParseReservedConcurrency(const json& body, uint32_t account_limit) {
  auto v = OptInt(body, "ReservedConcurrentExecutions");
  if (!v) Invalid("ReservedConcurrentExecutions is required");
  if (*v < 0) {
    Invalid("1 validation error detected: Value '" + std::to_string(*v) +
            "' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or "
            "equal to 0");
  }
  if (*v > static_cast<int64_t>(account_limit)) {
    Invalid("Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
            "below its minimum value of [" + std::to_string(kMinUnreserved) + "].");
  }
  return static_cast<uint32_t>(*v);
}

std::map<std::string, std::string> ParseTags(const json& body) {
  const json* tags = OptObject(body, "Tags");
  if (!tags) Invalid("Tags is required");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : tags->items()) {
    if (k.empty() || k.size() > 128) Invalid("Tag keys must be 1 to 128 characters");
    if (!v.is_string()) Invalid("Tag " + Quote(k) + " must have a string value");
    if (v.get_ref<const std::string&>().size() > 256) Invalid("Tag values must be at most 256 characters");
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

std::string FunctionNameFromTagArn(std::string_view arn) {
  if (arn.rfind("arn:", 0) != 0) {
    Invalid("1 validation error detected: Value " + Quote(arn) +
            " at 'resource' failed to satisfy constraint: Member must be a Lambda function ARN");
  }
  FunctionRef ref = ParseFunctionRef(arn);
  if (!ref.qualifier.empty()) Invalid("Tags apply to the function: use the unqualified ARN, not " + Quote(arn));
  return ref.name;
}

json AliasJson(const ApiContext& ctx, const AliasRecord& a) {
  json j = {{"AliasArn", QualifiedArn(ctx, a.function_name, a.name)},
            {"Name", a.name},
            {"FunctionVersion", a.function_version},
            {"Description", a.description},
            {"RevisionId", a.revision_id}};
  if (!a.additional_weights.empty()) j["RoutingConfig"] = {{"AdditionalVersionWeights", a.additional_weights}};
  return j;
}

json FunctionConfigurationJson(const FunctionRecord& f) {
  json env_vars = json::object();
  for (const auto& [k, v] : f.environment) env_vars[k] = v;
  json j = {
      {"FunctionName", f.name},
      {"FunctionArn", f.arn},
      {"Runtime", f.runtime},
      {"Role", f.role},
      {"Handler", f.handler},
      {"CodeSize", f.code_size},
      {"Description", f.description},
      {"Timeout", f.timeout_s},
      {"MemorySize", f.memory_mb},
      {"LastModified", f.last_modified},
      {"CodeSha256", f.code_sha256},
      {"Version", f.version},
      {"Environment", {{"Variables", env_vars}}},
      {"TracingConfig", {{"Mode", "PassThrough"}}},
      {"RevisionId", f.revision_id},
      {"State", f.state},
      {"LastUpdateStatus", f.last_update_status},
      {"PackageType", "Zip"},
      {"Architectures", json::array({"x86_64"})},
      {"EphemeralStorage", {{"Size", f.ephemeral_storage_mb}}},
      {"SnapStart", {{"ApplyOn", "None"}, {"OptimizationStatus", "Off"}}},
      {"LoggingConfig", {{"LogFormat", "Text"}, {"LogGroup", "/aws/lambda/" + f.name}}},
  };
  if (!f.state_reason.empty()) j["StateReason"] = f.state_reason;
  if (!f.state_reason_code.empty()) j["StateReasonCode"] = f.state_reason_code;
  if (!f.last_update_status_reason.empty()) j["LastUpdateStatusReason"] = f.last_update_status_reason;
  return j;
}

json FunctionUrlConfigJson(const ApiContext& ctx, const FunctionUrlConfigRecord& c, bool include_last_modified) {
  json j = {
      {"FunctionUrl", FunctionUrl(ctx, c.url_id)},
      {"FunctionArn", FunctionArn(ctx, c.function_name)},
      {"AuthType", c.auth_type},
      {"CreationTime", c.creation_time},
      {"InvokeMode", c.invoke_mode.empty() ? "BUFFERED" : c.invoke_mode},
  };
  if (!c.cors.is_null()) j["Cors"] = c.cors;
  if (include_last_modified) j["LastModifiedTime"] = c.last_modified_time;
  return j;
}

}  // namespace geysir::control
