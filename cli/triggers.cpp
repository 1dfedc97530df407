// `geysir schedules` / `geysir events`: see triggers.h.
#include "cli/triggers.h"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/config.h"
#include "cli/control_client.h"

namespace geysir::cli {
namespace {

using nlohmann::json;

constexpr const char* kHelp = R"(Usage: geysir schedules
       geysir events queued|failed [--function NAME] [--limit N]
       geysir events redrive ID|--all [--function NAME]

  schedules      EventBridge rules and Scheduler schedules with their next firing (UTC)
  events queued  async invocations waiting to run or to be retried
  events failed  async invocations that exhausted their retries and had no destination
  events redrive put failed events back in the queue (attempts and age start afresh)

Global options: --endpoint URL, --data-dir DIR, --profile NAME, --region REGION
)";

int Usage(const std::string& why) {
  std::cerr << "error: " << why << " (see `geysir events --help`)\n";
  return 2;
}

int Fail(const std::string& why) {
  std::cerr << "error: " << why << "\n";
  return 1;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

int RunTriggersCommand(int argc, char** argv) {
  GlobalOptions global;
  std::string function;
  int limit = 100;
  auto scanned = ScanSubcommandArgs(argc, argv, {"--all"}, global,
                                    [&](const std::string& a, const std::string& v) -> Status {
    if (a == "--function") {
      function = v;
    } else if (a == "--limit") {
      if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos) {
        return Status::Invalid("--limit wants a number");
      }
      limit = std::stoi(v);
    } else {
      return Status::Invalid("unknown option " + a);
    }
    return Status::Ok();
  });
  if (!scanned.ok()) return Usage(scanned.status().message());
  if (scanned->help) {
    std::cout << kHelp;
    return 0;
  }
  const bool all = !scanned->flags_seen.empty();
  const std::vector<std::string>& positional = scanned->positional;
  if (positional.empty()) return Usage("missing command");
  const std::string cmd = positional[0];
  auto config = ResolveConfig(global, ProcessEnv);
  if (!config.ok()) return Fail(config.status().message());
  ControlClient client(*config);
  auto get_json = [&](const std::string& method, const std::string& path, const std::string& body,
                      json* out) -> int {
    auto r = client.Call(method, path, body);
    if (!r.ok()) return Fail(r.status().message());
    if (!r->ok()) return Fail(ApiError(*r).message());
    *out = json::parse(r->body, nullptr, false);
    if (!out->is_object()) return Fail("control answered with something that is not JSON");
    return 0;
  };

  if (cmd == "schedules") {
    if (positional.size() != 1) return Usage("`geysir schedules` takes no arguments");
    json j;
    if (int rc = get_json("GET", "/geysir/v1/schedules", "", &j)) return rc;
    std::cout << std::left << std::setw(40) << "NAME" << std::setw(26) << "EXPRESSION" << std::setw(18) << "TIMEZONE"
              << std::setw(10) << "STATE" << std::setw(26) << "NEXT FIRING" << "TARGETS\n";
    for (const json& s : j.value("schedules", json::array())) {
      std::string name = Str(s, "name");
      if (Str(s, "kind") == "schedule") name = "schedule/" + name;
      std::string targets;
      for (const json& t : s.value("targets", json::array())) {
        std::string arn = Str(t, "arn");
        size_t fn = arn.find(":function:");
        targets += (targets.empty() ? "" : ",") + (fn == std::string::npos ? arn : arn.substr(fn + 10));
      }
      std::cout << std::setw(40) << name << std::setw(26) << Str(s, "expression") << std::setw(18)
                << Str(s, "timezone") << std::setw(10) << Str(s, "state") << std::setw(26) << Str(s, "next_fire")
                << (targets.empty() ? "-" : targets) << "\n";
    }
    return 0;
  }
  if (cmd != "events") return Usage("unknown command " + cmd);
  if (positional.size() < 2) return Usage("`geysir events` needs queued, failed or redrive");
  const std::string sub = positional[1];
  if (sub == "queued" || sub == "failed") {
    if (positional.size() != 2) return Usage("`geysir events " + sub + "` takes no arguments");
    // Query parameters in sorted order: the order SigV4 canonicalises them in.
    std::string path = "/geysir/v1/async-events?" + (function.empty() ? "" : "function=" + EncodePathSegment(function) + "&") +
                       "limit=" + std::to_string(limit) + "&state=" + sub;
    json j;
    if (int rc = get_json("GET", path, "", &j)) return rc;
    std::cout << std::left << std::setw(8) << "ID" << std::setw(38) << "REQUEST ID" << std::setw(28) << "FUNCTION"
              << std::setw(10) << "ATTEMPTS" << std::setw(26) << (sub == "failed" ? "FAILED" : "NEXT ATTEMPT")
              << "LAST ERROR\n";
    for (const json& e : j.value("events", json::array())) {
      std::cout << std::setw(8) << Str(e, "id") << std::setw(38) << Str(e, "request_id") << std::setw(28)
                << Str(e, "function") << std::setw(10) << Str(e, "attempts") << std::setw(26)
                << Str(e, sub == "failed" ? "failed" : "next_attempt") << Str(e, "last_error").substr(0, 100) << "\n";
    }
    return 0;
  }
  if (sub == "redrive") {
    json body = json::object();
    if (all) {
      if (positional.size() != 2) return Usage("give an event ID or --all, not both");
      body["all"] = true;
    } else {
      if (positional.size() != 3) return Usage("`geysir events redrive` needs an event ID or --all");
      const std::string& id = positional[2];
      if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos) {
        return Usage("the event ID is a number (see `geysir events failed`)");
      }
      body["id"] = std::stoll(id);
    }
    if (!function.empty()) body["function"] = function;
    json j;
    if (int rc = get_json("POST", "/geysir/v1/async-events/redrive", body.dump(), &j)) return rc;
    std::cout << "Re-drove " << j.value("redriven", 0) << " event(s)\n";
    return 0;
  }
  return Usage("unknown events command " + sub);
}

}  // namespace geysir::cli
