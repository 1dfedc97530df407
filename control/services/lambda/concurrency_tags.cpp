// Reserved concurrency, tags and account settings.
#include "control/services/lambda/lambda_internal.h"

#include "control/zip_extract.h"
#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;

void Lambda::PutFunctionConcurrency(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  (void)GetOrThrow(name);  // the function must exist
  const int64_t others = ValueOrThrow(store_.TotalReservedConcurrency(name));
  const int64_t room = std::max<int64_t>(0, int64_t{kAccountConcurrency} - kMinUnreserved - others);
  uint32_t v = ParseReservedConcurrency(ParseJsonObject(req.body), static_cast<uint32_t>(room));
  ThrowIfError(store_.SetReservedConcurrency(name, v));
  log::Info("reserved_concurrency_set", {{"function", name}, {"reserved", v}});
  // Gateways carry each function's config in their route table: the new limit goes with it.
  PushRoutes();
  resp->Send(JsonReply(200, {{"ReservedConcurrentExecutions", v}}, rid));
}

void Lambda::GetFunctionConcurrency(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  FunctionRecord f = GetOrThrow(name);
  json body = json::object();
  if (f.reserved_concurrency) body["ReservedConcurrentExecutions"] = *f.reserved_concurrency;
  resp->Send(JsonReply(200, body, rid));
}

void Lambda::DeleteFunctionConcurrency(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  FunctionRecord f = GetOrThrow(name);
  ThrowIfError(store_.SetReservedConcurrency(name, std::nullopt));
  if (f.reserved_concurrency) {
    log::Info("reserved_concurrency_deleted", {{"function", name}});
    PushRoutes();
  }
  resp->Send(EmptyReply(204, rid));
}

void Lambda::TagResource(Call& call) {
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string name = FunctionNameFromTagArn(call.route.sub);
  auto missing = [&]() { return ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name))); };
  auto tags = ParseTags(ParseJsonObject(req.body));
  Status st = store_.UpdateTags(name, [&](std::map<std::string, std::string>& t) {
    for (auto& [k, v] : tags) t[k] = v;
  });
  if (st.code() == Code::kNotFound) throw missing();
  ThrowIfError(st);
  resp->Send(EmptyReply(204, rid));
}

void Lambda::UntagResource(Call& call) {
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string name = FunctionNameFromTagArn(call.route.sub);
  auto missing = [&]() { return ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name))); };
  std::vector<std::string> keys = QueryValues(req.query, "tagKeys");
  Status st = store_.UpdateTags(name, [&](std::map<std::string, std::string>& t) {
    for (const auto& k : keys) t.erase(k);
  });
  if (st.code() == Code::kNotFound) throw missing();
  ThrowIfError(st);
  resp->Send(EmptyReply(204, rid));
}

void Lambda::ListTags(Call& call) {
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string name = FunctionNameFromTagArn(call.route.sub);
  auto missing = [&]() { return ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name))); };
  Result<FunctionRecord> f = store_.GetFunction(name);
  if (!f.ok() && f.status().code() == Code::kNotFound) throw missing();
  FunctionRecord rec = ValueOrThrow(std::move(f));
  resp->Send(JsonReply(200, {{"Tags", rec.tags}}, rid));
}

void Lambda::GetAccountSettings(Call& call) {
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  int64_t count = 0, code_size = 0;
  std::string marker;
  // Bounded by the number of functions: each page advances the marker.
  for (int page = 0; page < 100000; ++page) {
    FunctionPage p = ValueOrThrow(store_.ListFunctions(marker, 10000));
    for (const FunctionRecord& f : p.functions) {
      ++count;
      code_size += f.code_size;
    }
    if (p.next_marker.empty()) break;
    marker = p.next_marker;
  }
  const int64_t reserved = ValueOrThrow(store_.TotalReservedConcurrency(""));
  json body = {
      {"AccountLimit",
       {{"TotalCodeSize", int64_t{80} * 1024 * 1024 * 1024},
        {"CodeSizeUnzipped", ZipLimits{}.max_unzipped_bytes},
        {"CodeSizeZipped", ZipLimits{}.max_zip_bytes},
        {"ConcurrentExecutions", kAccountConcurrency},
        {"UnreservedConcurrentExecutions", int64_t{kAccountConcurrency} - reserved}}},
      {"AccountUsage", {{"TotalCodeSize", code_size}, {"FunctionCount", count}}},
  };
  resp->Send(JsonReply(200, body, rid));
}

}  // namespace geysir::control::lambda
