// Code garbage collection: every interval, unpacked code that no function references is noted;
// once it has stayed unreferenced for the grace (LambdaOptions) it is removed. The grace covers
// invocations still running from a template of the old code (up to 900 s) and gateways whose
// route table is a moment behind.
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

void Lambda::CollectCode() {
  // A deploy in flight may have a finished tree that no row references yet.
  if (deploys_in_flight_ > 0 || shutting_down_) return;
  Result<std::set<std::string>> referenced = store_.ReferencedCodeHexes();
  Result<std::set<std::string>> stored = code_store_.List();
  if (!referenced.ok() || !stored.ok()) {
    log::Warn("code_gc_skipped", {{"error", (!referenced.ok() ? referenced.status() : stored.status()).ToString()}});
    return;
  }
  const int64_t now = NowMs();
  std::map<std::string, int64_t> still;
  for (const std::string& hex : *stored) {
    if (referenced->count(hex)) continue;
    auto it = unreferenced_since_.find(hex);
    int64_t since = it == unreferenced_since_.end() ? now : it->second;
    if (now - since >= opt_.code_gc_grace_ms) {
      Status st = code_store_.Remove(hex);
      if (st.ok()) {
        log::Info("code_removed", {{"sha256", hex}});
        continue;
      }
      log::Warn("code_remove_failed", {{"sha256", hex}, {"error", st.ToString()}});
    }
    still.emplace(hex, since);
  }
  unreferenced_since_ = std::move(still);
}

}  // namespace geysir::control::lambda
