#include "proto/invoke_refs.h"

namespace geysir::proto {

using nlohmann::json;

json InvokeRefSender::Encode(const InvokeRequest& r) {
  // The fields besides the config, as to_json(InvokeRequest) writes them.
  json j{{"id", r.id},
         {"request_id", r.request_id},
         {"source", r.source},
         {"want_log_tail", r.want_log_tail},
         {"client_context_b64", r.client_context_b64}};
  auto it = sent_.find(r.function.name);
  if (it != sent_.end() && it->second.config == r.function) {
    j["function_ref"] = it->second.ref;
    return j;
  }
  j["function"] = r.function;
  if (it != sent_.end()) {
    it->second = Sent{++next_ref_, r.function};
    j["function_ref"] = it->second.ref;
  } else if (sent_.size() < kMaxFunctionRefs) {
    const uint64_t ref = ++next_ref_;
    sent_.emplace(r.function.name, Sent{ref, r.function});
    j["function_ref"] = ref;
  }
  return j;
}

Result<InvokeRequest> InvokeRefTable::Decode(const json& header) {
  InvokeRequest r;
  try {
    r.id = header.at("id").get<uint64_t>();
    r.request_id = header.at("request_id").get<std::string>();
    r.source = header.value("source", InvokeSource::kApi);
    r.want_log_tail = header.value("want_log_tail", false);
    r.client_context_b64 = header.value("client_context_b64", "");
    auto ref = header.find("function_ref");
    if (ref != header.end() && (!ref->is_number_integer() || ref->get<int64_t>() < 0)) {
      return Status::Invalid("function_ref is not a number");
    }
    auto fn = header.find("function");
    if (fn != header.end()) {
      r.function = fn->get<FunctionConfig>();
      if (ref == header.end()) return r;
      const uint64_t n = ref->get<uint64_t>();
      auto named = ref_of_.find(r.function.name);
      if (named != ref_of_.end()) {
        by_ref_.erase(named->second);
        named->second = n;
      } else if (ref_of_.size() < kMaxFunctionRefs) {
        ref_of_.emplace(r.function.name, n);
      } else {
        // The sender keeps the same bound, so it never refers to what is not kept here.
        return Status::Invalid("function_ref beyond the table's bound");
      }
      by_ref_[n] = r.function;
      return r;
    }
    if (ref == header.end()) return Status::Invalid("invoke has neither function nor function_ref");
    auto known = by_ref_.find(ref->get<uint64_t>());
    if (known == by_ref_.end()) return Status::Invalid("unknown function_ref " + std::to_string(ref->get<uint64_t>()));
    r.function = known->second;
    return r;
  } catch (const json::exception& e) {
    return Status::Invalid(e.what());
  }
}

}  // namespace geysir::proto
