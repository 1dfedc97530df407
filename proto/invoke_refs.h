// Invoke headers that name the function's config by reference (docs/wire-formats.md, "invoke").
//
// A FunctionConfig (environment included) is most of an invoke header, and it is the same for
// every invocation of one revision. So on one connection the sender (InvokeRefSender, in
// InvokeClient) sends a config in full once, with a number ("function_ref") that the receiver
// (InvokeRefTable, in the scheduler, one per connection) keeps; later invocations with an equal
// config carry only the number. A changed config (new revision, new concurrency) goes in full
// again with a new number, replacing the function's entry on both sides. Both tables live and
// die with the connection, so the gateway still holds only caches: after a reconnect everything
// goes in full again. Both are bounded by kMaxFunctions names: past that, a new function's
// config goes in full every time, without a number, exactly as a header without refs.
//
// Thread safety: loop thread only, one of each per connection.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "proto/messages.h"
#include "base/status.h"

namespace geysir::proto {

inline constexpr size_t kMaxFunctionRefs = 1024;

class InvokeRefSender {
 public:
  // The header of an "invoke" frame for `r` ("type" is the caller's to add).
  nlohmann::json Encode(const InvokeRequest& r);
  // The connection is new: nothing was sent on it.
  void Clear() { sent_.clear(); }
  size_t size() const { return sent_.size(); }

 private:
  struct Sent {
    uint64_t ref;
    FunctionConfig config;
  };
  std::unordered_map<std::string, Sent> sent_;  // by function name
  uint64_t next_ref_ = 0;
};

class InvokeRefTable {
 public:
  // The request an "invoke" header describes. kInvalidArgument for a malformed header or a
  // "function_ref" this connection never defined.
  Result<InvokeRequest> Decode(const nlohmann::json& header);
  size_t size() const { return by_ref_.size(); }

 private:
  std::unordered_map<uint64_t, FunctionConfig> by_ref_;
  std::unordered_map<std::string, uint64_t> ref_of_;  // function name -> its current ref
};

}  // namespace geysir::proto
