#include "cli/commands.h"


#include <algorithm>
#include <chrono>
#include <csignal>
#include <ctime>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "base/base64.h"
#include "cli/package.h"

namespace geysir::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kDefaultRuntime = "python3.11";
constexpr const char* kDummyRole = "arn:aws:iam::000000000000:role/geysir";
constexpr int kWaitTimeoutMs = 120'000;  // for a function to become Active / Successful

// A command that ran and failed exits 1. Usage errors (exit 2) never get here: the command line
// was parsed before the command ran, and main answers its errors itself.
int Fail(Io& io, const Status& status) {
  io.err << "error: " << status.message() << "\n";
  return 1;
}

int Fail(Io& io, const std::string& message) {
  io.err << "error: " << message << "\n";
  return 1;
}

std::string FunctionPath(const std::string& name) { return "/2015-03-31/functions/" + EncodePathSegment(name); }
std::string UrlConfigPath(const std::string& name) { return "/2021-10-31/functions/" + EncodePathSegment(name) + "/url"; }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string JsonString(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return "";
}

std::string Describe(const json& cfg) {
  std::ostringstream s;
  s << JsonString(cfg, "Runtime") << ", " << JsonString(cfg, "Handler");
  if (cfg.contains("MemorySize") && cfg["MemorySize"].is_number()) s << ", " << cfg["MemorySize"].get<int64_t>() << " MB";
  if (cfg.contains("Timeout") && cfg["Timeout"].is_number()) s << ", " << cfg["Timeout"].get<int64_t>() << " s";
  return s.str();
}

Result<json> ParseJsonBody(const ApiResponse& r, const std::string& what) {
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Internal(what + ": the server answered with something that is not a JSON object");
  }
  return j;
}

// Polls GetFunctionConfiguration until the function is Active and its last update succeeded.
Result<json> WaitUntilReady(ControlClient& client, const std::string& name, Io& io) {
  auto start = std::chrono::steady_clock::now();
  int delay_ms = 50;
  bool told = false;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto r = client.Call("GET", FunctionPath(name) + "/configuration");
    if (!r.ok()) return r.status();
    if (!r->ok()) return ApiError(*r);
    auto cfg = ParseJsonBody(*r, "GetFunctionConfiguration");
    if (!cfg.ok()) return cfg.status();
    std::string state = JsonString(*cfg, "State");
    std::string update = JsonString(*cfg, "LastUpdateStatus");
    if (state == "Failed") {
      return Status::Internal("function " + name + " failed to become active: " + JsonString(*cfg, "StateReason"));
    }
    if (update == "Failed") {
      return Status::Internal("the update of " + name + " failed: " + JsonString(*cfg, "LastUpdateStatusReason"));
    }
    if ((state.empty() || state == "Active") && (update.empty() || update == "Successful")) return *cfg;
    double waited = SecondsSince(start);
    if (waited * 1000 > kWaitTimeoutMs) {
      return Status::Error(Code::kDeadlineExceeded, "function " + name + " is still " + state + "/" + update +
                                                        " after " + std::to_string(kWaitTimeoutMs / 1000) + " s");
    }
    if (!told && waited > 1.0) {
      io.err << "Waiting for " << name << " to become ready (" << state << ", " << update << ")…\n";
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    delay_ms = std::min(delay_ms * 2, 500);
  }
  return Status::Error(Code::kDeadlineExceeded, "function " + name + " did not become ready");
}

Result<std::string> EnsureFunctionUrl(ControlClient& client, const std::string& name) {
  auto get = client.Call("GET", UrlConfigPath(name));
  if (!get.ok()) return get.status();
  if (get->ok()) {
    auto j = ParseJsonBody(*get, "GetFunctionUrlConfig");
    if (!j.ok()) return j.status();
    return JsonString(*j, "FunctionUrl");
  }
  if (get->status != 404) return ApiError(*get);
  auto create = client.Call("POST", UrlConfigPath(name), json{{"AuthType", "NONE"}}.dump());
  if (!create.ok()) return create.status();
  if (!create->ok()) return ApiError(*create);
  auto j = ParseJsonBody(*create, "CreateFunctionUrlConfig");
  if (!j.ok()) return j.status();
  return JsonString(*j, "FunctionUrl");
}

volatile std::sig_atomic_t g_interrupted = 0;
void OnSigint(int) { g_interrupted = 1; }

}  // namespace

std::string FormatTimestampMs(int64_t unix_ms) {
  auto secs = static_cast<time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

std::string CreateFunctionBody(const DeployOptions& o, const std::string& zip) {
  json body = {{"FunctionName", o.name},
               {"Runtime", o.runtime.value_or(kDefaultRuntime)},
               {"Role", kDummyRole},
               {"Handler", o.handler.value_or("")},
               {"Code", {{"ZipFile", Base64Encode(zip)}}}};
  if (o.memory_mb) body["MemorySize"] = *o.memory_mb;
  if (o.timeout_s) body["Timeout"] = *o.timeout_s;
  if (o.env) body["Environment"] = {{"Variables", *o.env}};
  return body.dump();
}

std::string UpdateConfigurationBody(const DeployOptions& o) {
  json body = json::object();
  if (o.handler) body["Handler"] = *o.handler;
  if (o.runtime) body["Runtime"] = *o.runtime;
  if (o.memory_mb) body["MemorySize"] = *o.memory_mb;
  if (o.timeout_s) body["Timeout"] = *o.timeout_s;
  if (o.env) body["Environment"] = {{"Variables", *o.env}};
  return body.empty() ? "" : body.dump();
}

int Deploy(ControlClient& client, const DeployOptions& o, Io& io) {
  auto start = std::chrono::steady_clock::now();
  auto pkg = PackagePath(o.path);
  if (!pkg.ok()) return Fail(io, pkg.status());
  if (pkg->from_directory) {
    io.err << "Packaging " << o.path << ": " << pkg->file_count << (pkg->file_count == 1 ? " file, " : " files, ")
           << HumanBytes(pkg->zip.size()) << " zipped\n";
  } else {
    io.err << "Using " << o.path << ": " << pkg->file_count << (pkg->file_count == 1 ? " file, " : " files, ")
           << HumanBytes(pkg->zip.size()) << "\n";
  }

  auto existing = client.Call("GET", FunctionPath(o.name) + "/configuration");
  if (!existing.ok()) return Fail(io, existing.status());
  if (existing->status == 404) {
    if (!o.handler) {
      return Fail(io, "function " + o.name + " does not exist yet: --handler is required to create it "
                                             "(e.g. --handler app.handler)");
    }
    io.err << "Creating function " << o.name << "…\n";
    auto r = client.Call("POST", "/2015-03-31/functions", CreateFunctionBody(o, pkg->zip), {}, "application/json", 300);
    if (!r.ok()) return Fail(io, r.status());
    if (!r->ok()) return Fail(io, ApiError(*r));
  } else if (existing->ok()) {
    io.err << "Updating code of " << o.name << "…\n";
    json code = {{"ZipFile", Base64Encode(pkg->zip)}};
    auto r = client.Call("PUT", FunctionPath(o.name) + "/code", code.dump(), {}, "application/json", 300);
    if (!r.ok()) return Fail(io, r.status());
    if (!r->ok()) return Fail(io, ApiError(*r));
    std::string config = UpdateConfigurationBody(o);
    if (!config.empty()) {
      auto ready = WaitUntilReady(client, o.name, io);
      if (!ready.ok()) return Fail(io, ready.status());
      io.err << "Updating configuration of " << o.name << "…\n";
      auto c = client.Call("PUT", FunctionPath(o.name) + "/configuration", config);
      if (!c.ok()) return Fail(io, c.status());
      if (!c->ok()) return Fail(io, ApiError(*c));
    }
  } else {
    return Fail(io, ApiError(*existing));
  }

  auto ready = WaitUntilReady(client, o.name, io);
  if (!ready.ok()) return Fail(io, ready.status());
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.2f", SecondsSince(start));
  io.err << "Function " << o.name << " is ready (" << Describe(*ready) << ") in " << secs << " s\n";

  if (o.url) {
    auto url = EnsureFunctionUrl(client, o.name);
    if (!url.ok()) return Fail(io, url.status());
    // A script capturing stdout gets the bare URL; a person sees one labelled line.
    if (io.out_is_tty) {
      io.out << "Function URL: " << *url << "\n";
    } else {
      io.err << "Function URL: " << *url << "\n";
      io.out << *url << "\n";
    }
  }
  return 0;
}

int List(ControlClient& client, Io& io) {
  std::vector<json> functions;
  std::string marker;
  for (int page = 0; page < 200; ++page) {
    std::string path = "/2015-03-31/functions/";
    // Query parameters in sorted order: the order SigV4 canonicalises them in.
    if (!marker.empty()) path += "?Marker=" + EncodePathSegment(marker) + "&MaxItems=50";
    else path += "?MaxItems=50";
    auto r = client.Call("GET", path);
    if (!r.ok()) return Fail(io, r.status());
    if (!r->ok()) return Fail(io, ApiError(*r));
    auto j = ParseJsonBody(*r, "ListFunctions");
    if (!j.ok()) return Fail(io, j.status());
    if (j->contains("Functions") && (*j)["Functions"].is_array()) {
      for (auto& f : (*j)["Functions"]) functions.push_back(f);
    }
    marker = JsonString(*j, "NextMarker");
    if (marker.empty()) break;
  }
  if (functions.empty()) {
    io.err << "No functions yet. Deploy one with `geysir deploy DIR --name NAME --handler app.handler`.\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "RUNTIME", "MEMORY", "TIMEOUT", "HANDLER", "LAST MODIFIED"}};
  for (const auto& f : functions) {
    auto num = [&](const char* key, const char* unit) {
      return f.contains(key) && f[key].is_number() ? std::to_string(f[key].get<int64_t>()) + unit : std::string("-");
    };
    rows.push_back({JsonString(f, "FunctionName"), JsonString(f, "Runtime"), num("MemorySize", " MB"),
                    num("Timeout", " s"), JsonString(f, "Handler"), JsonString(f, "LastModified")});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    io.out << line << "\n";
  }
  return 0;
}

int Invoke(ControlClient& client, const InvokeOptions& o, Io& io) {
  std::string payload;
  if (o.payload) {
    payload = *o.payload;
  } else if (!io.in_is_tty) {
    std::ostringstream ss;
    ss << io.in.rdbuf();
    payload = ss.str();
  }
  if (payload.find_first_not_of(" \t\r\n") == std::string::npos) payload = "{}";
  if (json::parse(payload, nullptr, false).is_discarded()) {
    return Fail(io, "the payload is not valid JSON (Lambda events are JSON): " +
                        (payload.size() > 80 ? payload.substr(0, 80) + "…" : payload));
  }
  std::vector<std::pair<std::string, std::string>> headers = {{"X-Amz-Invocation-Type", "RequestResponse"}};
  if (o.log) headers.emplace_back("X-Amz-Log-Type", "Tail");
  auto r = client.Call("POST", FunctionPath(o.name) + "/invocations", payload, headers, "application/json", 960);
  if (!r.ok()) return Fail(io, r.status());
  if (!r->ok()) return Fail(io, ApiError(*r));
  if (o.log) {
    if (const std::string* tail = r->Header("x-amz-log-result")) {
      std::optional<std::string> decoded = DecodeBase64(*tail);
      if (decoded) {
        io.err << *decoded;
        if (!decoded->empty() && decoded->back() != '\n') io.err << "\n";
      } else {
        io.err << "(the log tail was not valid base64)\n";
      }
    }
  }
  io.out << r->body;
  if (r->body.empty() || r->body.back() != '\n') io.out << "\n";
  if (const std::string* fe = r->Header("x-amz-function-error"); fe != nullptr && !fe->empty()) {
    io.err << "error: the function raised an error (" << *fe << ")\n";
    return 1;
  }
  return 0;
}

int Logs(ControlClient& client, const LogsOptions& o, Io& io) {
  int64_t start_ms = std::max<int64_t>(0, NowMs() - o.since_ms);
  // Events at the newest timestamp already printed, so a cursor that repeats that timestamp
  // (inclusive start_time) does not print them twice.
  int64_t newest_ts = -1;
  std::set<std::string> printed_at_newest;
  auto print_page = [&](const json& events) {
    for (const auto& e : events) {
      int64_t ts = e.contains("timestamp") && e["timestamp"].is_number() ? e["timestamp"].get<int64_t>() : 0;
      std::string msg = JsonString(e, "message");
      std::string key = JsonString(e, "requestId") + '\n' + msg;
      if (ts < newest_ts) continue;
      if (ts == newest_ts && printed_at_newest.count(key)) continue;
      if (ts > newest_ts) {
        newest_ts = ts;
        printed_at_newest.clear();
      }
      printed_at_newest.insert(key);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
      io.out << FormatTimestampMs(ts) << "  " << msg << "\n";
    }
    io.out.flush();
  };

  std::string next_token;  // control's cursor within one millisecond, when a page ended there
  auto fetch = [&](bool* more) -> Status {
    *more = false;
    // Parameters in sorted order: the order SigV4 canonicalises them in.
    std::string path = "/geysir/v1/functions/" + EncodePathSegment(o.name) + "/logs?limit=" +
                       std::to_string(o.limit) +
                       (next_token.empty() ? "" : "&next_token=" + EncodePathSegment(next_token)) +
                       "&start_time=" + std::to_string(start_ms);
    auto r = client.Call("GET", path);
    if (!r.ok()) return r.status();
    if (!r->ok()) return ApiError(*r);
    auto j = ParseJsonBody(*r, "logs");
    if (!j.ok()) return j.status();
    size_t count = 0;
    if (j->contains("events") && (*j)["events"].is_array()) {
      count = (*j)["events"].size();
      print_page((*j)["events"]);
    }
    if (j->contains("more") && (*j)["more"].is_boolean()) {
      *more = (*j)["more"].get<bool>();
    } else {
      *more = count >= static_cast<size_t>(o.limit);
    }
    next_token = *more ? JsonString(*j, "nextToken") : "";
    if (!next_token.empty()) {
      // Keep start_time: the token continues this query where the page ended.
    } else if (j->contains("nextStartTime") && (*j)["nextStartTime"].is_number()) {
      int64_t next = (*j)["nextStartTime"].get<int64_t>();
      if (next <= start_ms) *more = false;  // no progress: do not spin
      start_ms = std::max(start_ms, next);
    } else if (newest_ts >= 0) {
      start_ms = std::max(start_ms, newest_ts);
    }
    return Status::Ok();
  };

  // Catch-up: page through what exists (bounded), then stop or follow.
  for (int page = 0; page < 1000; ++page) {
    bool more = false;
    Status st = fetch(&more);
    if (!st.ok()) return Fail(io, st);
    if (!more) break;
  }
  if (!o.follow) return 0;

  g_interrupted = 0;
  auto previous = std::signal(SIGINT, OnSigint);
  bool warned = false;
  while (!g_interrupted) {
    for (int i = 0; i < 10 && !g_interrupted; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_interrupted) break;
    bool more = true;
    for (int page = 0; more && page < 100 && !g_interrupted; ++page) {
      Status st = fetch(&more);
      if (!st.ok()) {
        // Keep following across a server restart; say so once.
        if (!warned) io.err << "warning: " << st.message() << " (retrying every second)\n";
        warned = true;
        break;
      }
      warned = false;
    }
  }
  std::signal(SIGINT, previous);
  return 0;
}

int Delete(ControlClient& client, const NameOptions& o, Io& io) {
  auto r = client.Call("DELETE", FunctionPath(o.name));
  if (!r.ok()) return Fail(io, r.status());
  if (!r->ok()) return Fail(io, ApiError(*r));
  io.err << "Deleted function " << o.name << "\n";
  return 0;
}

int Url(ControlClient& client, const NameOptions& o, Io& io) {
  auto r = client.Call("GET", UrlConfigPath(o.name));
  if (!r.ok()) return Fail(io, r.status());
  if (r->status == 404 && ErrorType(*r) == "ResourceNotFoundException") {
    return Fail(io, ErrorSummary(*r) + " (create a URL with `geysir deploy PATH --name " + o.name + " --url`)");
  }
  if (!r->ok()) return Fail(io, ApiError(*r));
  auto j = ParseJsonBody(*r, "GetFunctionUrlConfig");
  if (!j.ok()) return Fail(io, j.status());
  io.out << JsonString(*j, "FunctionUrl") << "\n";
  return 0;
}

}  // namespace geysir::cli
