// RouteIndex: the gateway's copy of control's route table: function URLs keyed by url_id and
// API Gateway APIs keyed by api id.
//
// Control pushes the whole table (a "routes" frame) on subscribe and after every change; the
// index replaces its contents only with a table at least as new as the one it holds. The first
// table after a reconnect is taken whatever its generation (NewSource()): a restarted control
// is the truth even if its counter went back (it seeds it from the clock, which can step). While
// control is down the last table keeps serving: the gateway holds only this cache.
//
// Thread safety: loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "proto/frame.h"
#include "proto/messages.h"
#include "base/status.h"

namespace geysir::gateway {

class RouteIndex {
 public:
  // Replaces the table when table.generation >= generation(). Returns whether it applied.
  bool Apply(proto::RouteTable table);
  // The next table comes from a new connection to control and is applied unconditionally.
  void NewSource() { accept_any_ = true; }
  // Parses a "routes" frame header (untrusted bytes from another process) and applies it.
  Status ApplyFrame(const proto::Frame& frame);

  // The route for url_id (lower-case), or nullptr. Shared so an in-flight request keeps its
  // route alive across a table swap.
  std::shared_ptr<const proto::FunctionUrlRoute> Find(std::string_view url_id) const;
  // The REST or HTTP API with this id (lower-case), or nullptr; shared for the same reason.
  std::shared_ptr<const proto::ApiGatewayApi> FindApi(std::string_view api_id) const;

  uint64_t generation() const { return generation_; }
  bool loaded() const { return loaded_; }
  size_t size() const { return by_id_.size(); }
  size_t api_count() const { return apis_.size(); }

 private:
  std::unordered_map<std::string, std::shared_ptr<const proto::FunctionUrlRoute>> by_id_;
  std::unordered_map<std::string, std::shared_ptr<const proto::ApiGatewayApi>> apis_;
  uint64_t generation_ = 0;
  bool loaded_ = false;
  bool accept_any_ = false;
};

}  // namespace geysir::gateway
