#include "gateway/routes.h"

#include "gateway/codec.h"

namespace geysir::gateway {

bool RouteIndex::Apply(proto::RouteTable table) {
  if (loaded_ && !accept_any_ && table.generation < generation_) return false;
  accept_any_ = false;
  std::unordered_map<std::string, std::shared_ptr<const proto::FunctionUrlRoute>> next;
  next.reserve(table.function_urls.size());
  for (auto& route : table.function_urls) {
    std::string id = AsciiLower(route.url_id);
    route.url_id = id;
    next[std::move(id)] = std::make_shared<const proto::FunctionUrlRoute>(std::move(route));
  }
  by_id_ = std::move(next);
  std::unordered_map<std::string, std::shared_ptr<const proto::ApiGatewayApi>> apis;
  apis.reserve(table.apis.size());
  for (auto& api : table.apis) {
    std::string id = AsciiLower(api.api_id);
    api.api_id = id;
    apis[std::move(id)] = std::make_shared<const proto::ApiGatewayApi>(std::move(api));
  }
  apis_ = std::move(apis);
  generation_ = table.generation;
  loaded_ = true;
  return true;
}

Status RouteIndex::ApplyFrame(const proto::Frame& frame) {
  // nlohmann's typed getters throw on a wrong type; this is the one place the gateway turns
  // another process's JSON into structs, so the exception stops here and becomes a Status.
  proto::RouteTable table;
  try {
    table = frame.header.get<proto::RouteTable>();
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("malformed routes frame: ") + e.what());
  }
  Apply(std::move(table));
  return Status::Ok();
}

std::shared_ptr<const proto::FunctionUrlRoute> RouteIndex::Find(std::string_view url_id) const {
  auto it = by_id_.find(std::string(url_id));
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<const proto::ApiGatewayApi> RouteIndex::FindApi(std::string_view api_id) const {
  auto it = apis_.find(std::string(api_id));
  return it == apis_.end() ? nullptr : it->second;
}

}  // namespace geysir::gateway
