// CloudWatch Logs over Geysir's stored function logs; see logs.h.
#include "control/services/logs.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "control/store.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;

constexpr std::string_view kGroupPrefix = "/aws/lambda/";
constexpr const char* kContentType = "application/x-amz-json-1.1";

AwsError LogsError(int status, std::string type, std::string message) {
  return MakeAwsError(status, std::move(type), std::move(message));
}

[[noreturn]] void InvalidParameter(std::string message) {
  throw ApiException(LogsError(400, "InvalidParameterException", std::move(message)));
}

[[noreturn]] void GroupNotFound() {
  throw ApiException(LogsError(400, "ResourceNotFoundException", "The specified log group does not exist."));
}

std::optional<std::string> OptString(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) InvalidParameter(std::string(key) + " must be a string");
  return it->get<std::string>();
}

std::optional<int64_t> OptInt(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned()) InvalidParameter(std::string(key) + " must be an integer");
  return it->get<int64_t>();
}

bool OptBool(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_boolean()) InvalidParameter(std::string(key) + " must be a boolean");
  return it->get<bool>();
}

std::vector<std::string> OptStrings(const json& body, const char* key) {
  std::vector<std::string> out;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) InvalidParameter(std::string(key) + " must be a list of strings");
  for (const json& v : *it) {
    if (!v.is_string()) InvalidParameter(std::string(key) + " must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

int Limit(const json& body, int fallback, int max) {
  auto v = OptInt(body, "limit");
  if (!v) return fallback;
  if (*v < 1 || *v > max) {
    InvalidParameter("1 validation error detected: Value '" + std::to_string(*v) +
                     "' at 'limit' failed to satisfy constraint: Member must have value between 1 and " +
                     std::to_string(max));
  }
  return static_cast<int>(*v);
}

// Offset tokens for the listing operations ("o/<n>").
size_t OffsetToken(const json& body) {
  auto t = OptString(body, "nextToken");
  if (!t) return 0;
  if (t->size() < 3 || t->rfind("o/", 0) != 0 || t->size() > 14 ||
      !std::all_of(t->begin() + 2, t->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    InvalidParameter("The specified nextToken is invalid.");
  }
  return static_cast<size_t>(std::stoull(t->substr(2)));
}

// Lambda ends every CloudWatch line with a newline; clients strip it.
std::string Message(const std::string& m) { return m + "\n"; }

class LogsService final : public Service {
 public:
  explicit LogsService(ServiceHost& host) : host_(host) {}
  std::string_view signing_name() const override { return "logs"; }

  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override {
    return JsonProtocolError(error, kContentType, request_id);
  }

  void Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override {
    const std::string* target = req.Header("X-Amz-Target");
    static constexpr std::string_view kPrefix = "Logs_20140328.";
    if (req.method != "POST" || !target || target->rfind(kPrefix, 0) != 0) {
      throw ApiException(LogsError(400, "UnknownOperationException",
                                   "CloudWatch Logs takes POST / with X-Amz-Target: Logs_20140328.<Operation>"));
    }
    const std::string op = target->substr(kPrefix.size());
    json body = req.body.empty() ? json::object() : ParseUntrustedJsonOrDiscarded(req.body);
    if (!body.is_object()) {
      throw ApiException(LogsError(400, "SerializationException", "The request body is not a JSON object"));
    }
    json out;
    if (op == "DescribeLogGroups") {
      out = DescribeLogGroups(body);
    } else if (op == "DescribeLogStreams") {
      out = DescribeLogStreams(body);
    } else if (op == "FilterLogEvents") {
      out = FilterLogEvents(body);
    } else if (op == "GetLogEvents") {
      out = GetLogEvents(body);
    } else if (op == "DeleteLogGroup") {
      DeleteLogGroup(body);
      out = json::object();
    } else {
      throw ApiException(LogsError(400, "UnknownOperationException",
                                   "Geysir's CloudWatch Logs does not implement " + op.substr(0, 100) +
                                       " (it serves DescribeLogGroups, DescribeLogStreams, FilterLogEvents, "
                                       "GetLogEvents and DeleteLogGroup over function logs)"));
    }
    net::HttpResponse r;
    r.status = 200;
    r.headers = {{"Content-Type", kContentType}, {"x-amzn-RequestId", info.request_id}};
    r.body = out.dump(-1, ' ', false, json::error_handler_t::replace);
    resp->Send(std::move(r));
  }

 private:
  // The function a log group name stands for; ResourceNotFoundException unless it is
  // /aws/lambda/NAME of a function that exists or has stored lines.
  std::string FunctionOf(const json& body) {
    auto group = OptString(body, "logGroupName");
    if (!group) group = OptString(body, "logGroupIdentifier");
    if (!group || group->empty()) InvalidParameter("logGroupName is required");
    std::string g = *group;
    // logGroupIdentifier may be the group's ARN: arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]
    if (size_t at = g.find(":log-group:"); g.rfind("arn:", 0) == 0 && at != std::string::npos) {
      g = g.substr(at + 11);
      if (g.ends_with(":*")) g.resize(g.size() - 2);
    }
    if (g.rfind(kGroupPrefix, 0) != 0) GroupNotFound();
    std::string name = g.substr(kGroupPrefix.size());
    if (!IsValidFunctionName(name)) GroupNotFound();
    if (!host_.store().GetFunction(name).ok() && ValueOrThrow(host_.store().CountLogs(name)) == 0) GroupNotFound();
    return name;
  }

  std::string GroupArn(const std::string& fn) const {
    return "arn:aws:logs:" + host_.api().region + ":" + host_.api().account_id + ":log-group:" +
           std::string(kGroupPrefix) + fn;
  }

  json DescribeLogGroups(const json& body) {
    const std::string prefix = OptString(body, "logGroupNamePrefix").value_or("");
    const int limit = Limit(body, 50, 50);
    size_t offset = OffsetToken(body);
    // Function-name prefix for the stored groups; a prefix outside /aws/lambda/ matches none.
    std::string fn_prefix;
    if (prefix.rfind(kGroupPrefix, 0) == 0) {
      fn_prefix = prefix.substr(kGroupPrefix.size());
    } else if (std::string(kGroupPrefix).rfind(prefix, 0) != 0) {
      return {{"logGroups", json::array()}};
    }
    std::vector<LogGroupInfo> groups = ValueOrThrow(host_.store().ListLogGroups(fn_prefix));
    json list = json::array();
    for (size_t i = offset; i < groups.size() && list.size() < static_cast<size_t>(limit); ++i) {
      const LogGroupInfo& g = groups[i];
      int64_t created = 0, bytes = 0;
      for (const LogStreamInfo& s : ValueOrThrow(host_.store().ListLogStreams(g.function_name))) {
        created = created == 0 ? s.first_ms : std::min(created, s.first_ms);
        bytes += s.stored_bytes;
      }
      list.push_back({{"logGroupName", std::string(kGroupPrefix) + g.function_name},
                      {"creationTime", created},
                      {"metricFilterCount", 0},
                      {"arn", GroupArn(g.function_name) + ":*"},
                      {"logGroupArn", GroupArn(g.function_name)},
                      {"storedBytes", bytes},
                      {"logGroupClass", "STANDARD"}});
    }
    json out = {{"logGroups", std::move(list)}};
    if (offset + static_cast<size_t>(limit) < groups.size()) out["nextToken"] = "o/" + std::to_string(offset + limit);
    return out;
  }

  json DescribeLogStreams(const json& body) {
    const std::string fn = FunctionOf(body);
    const std::string order = OptString(body, "orderBy").value_or("LogStreamName");
    if (order != "LogStreamName" && order != "LastEventTime") {
      InvalidParameter("1 validation error detected: Value '" + order.substr(0, 50) +
                       "' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: "
                       "[LogStreamName, LastEventTime]");
    }
    const std::string prefix = OptString(body, "logStreamNamePrefix").value_or("");
    if (!prefix.empty() && order == "LastEventTime") {
      InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.");
    }
    const bool descending = OptBool(body, "descending");
    const int limit = Limit(body, 50, 50);
    const size_t offset = OffsetToken(body);
    std::vector<LogStreamInfo> streams = ValueOrThrow(host_.store().ListLogStreams(fn));
    streams.erase(std::remove_if(streams.begin(), streams.end(),
                                 [&](const LogStreamInfo& s) { return s.name.rfind(prefix, 0) != 0; }),
                  streams.end());
    std::sort(streams.begin(), streams.end(), [&](const LogStreamInfo& a, const LogStreamInfo& b) {
      if (order == "LastEventTime" && a.last_ms != b.last_ms) return a.last_ms < b.last_ms;
      return a.name < b.name;
    });
    if (descending) std::reverse(streams.begin(), streams.end());
    json list = json::array();
    for (size_t i = offset; i < streams.size() && list.size() < static_cast<size_t>(limit); ++i) {
      const LogStreamInfo& s = streams[i];
      list.push_back({{"logStreamName", s.name},
                      {"creationTime", s.first_ms},
                      {"firstEventTimestamp", s.first_ms},
                      {"lastEventTimestamp", s.last_ms},
                      {"lastIngestionTime", s.last_ms},
                      {"uploadSequenceToken", "1"},
                      {"arn", GroupArn(fn) + ":log-stream:" + s.name},
                      {"storedBytes", s.stored_bytes}});
    }
    json out = {{"logStreams", std::move(list)}};
    if (offset + static_cast<size_t>(limit) < streams.size()) out["nextToken"] = "o/" + std::to_string(offset + limit);
    return out;
  }

  json FilterLogEvents(const json& body) {
    const std::string fn = FunctionOf(body);
    LogQuery q;
    q.function_name = fn;
    q.log_streams = OptStrings(body, "logStreamNames");
    if (q.log_streams.size() > 100) InvalidParameter("logStreamNames may list at most 100 streams");
    const std::string stream_prefix = OptString(body, "logStreamNamePrefix").value_or("");
    if (!stream_prefix.empty()) {
      if (!q.log_streams.empty()) InvalidParameter("logStreamNames and logStreamNamePrefix are mutually exclusive");
      for (const LogStreamInfo& s : ValueOrThrow(host_.store().ListLogStreams(fn))) {
        if (s.name.rfind(stream_prefix, 0) == 0) q.log_streams.push_back(s.name);
      }
      if (q.log_streams.empty()) return {{"events", json::array()}, {"searchedLogStreams", json::array()}};
    }
    q.start_ms = std::max<int64_t>(0, OptInt(body, "startTime").value_or(0));
    // CloudWatch's endTime is inclusive; the store's end is exclusive.
    const int64_t end = OptInt(body, "endTime").value_or(INT64_MAX - 1);
    q.end_ms = end >= INT64_MAX - 1 ? INT64_MAX : end + 1;
    q.limit = Limit(body, 10000, 10000);
    const std::string pattern = OptString(body, "filterPattern").value_or("");
    if (!pattern.empty()) q.filter = CompileFilterPattern(pattern);
    if (auto token = OptString(body, "nextToken")) q.next_token = *token;
    Result<LogPage> page = host_.store().QueryLogs(q);
    if (!page.ok() && page.status().code() == Code::kInvalidArgument) InvalidParameter(page.status().message());
    LogPage p = ValueOrThrow(std::move(page));
    json events = json::array();
    std::set<std::string> searched;
    for (const LogRecord& e : p.events) {
      searched.insert(e.log_stream);
      events.push_back({{"logStreamName", e.log_stream},
                        {"timestamp", e.timestamp_ms},
                        {"message", Message(e.message)},
                        {"ingestionTime", e.timestamp_ms},
                        {"eventId", std::to_string(e.id)}});
    }
    for (const std::string& s : q.log_streams) searched.insert(s);
    json searched_list = json::array();
    for (const std::string& s : searched) searched_list.push_back({{"logStreamName", s}, {"searchedCompletely", !p.more}});
    json out = {{"events", std::move(events)}, {"searchedLogStreams", std::move(searched_list)}};
    // Everything that matches comes in this one page unless `limit` cut it short: Zappa's tail
    // mangles startTime on every nextToken round.
    if (p.more) out["nextToken"] = p.next_token;
    return out;
  }

  json GetLogEvents(const json& body) {
    const std::string fn = FunctionOf(body);
    auto stream = OptString(body, "logStreamName");
    if (!stream || stream->empty()) InvalidParameter("logStreamName is required");
    bool exists = false;
    for (const LogStreamInfo& s : ValueOrThrow(host_.store().ListLogStreams(fn))) exists |= s.name == *stream;
    if (!exists) throw ApiException(LogsError(400, "ResourceNotFoundException", "The specified log stream does not exist."));
    LogQuery q;
    q.function_name = fn;
    q.log_streams = {*stream};
    q.start_ms = std::max<int64_t>(0, OptInt(body, "startTime").value_or(0));
    q.end_ms = OptInt(body, "endTime").value_or(INT64_MAX);  // exclusive, as GetLogEvents' is
    const int limit = Limit(body, 10000, 10000);
    const bool from_head = OptBool(body, "startFromHead");
    std::string token = OptString(body, "nextToken").value_or("");
    std::vector<LogRecord> events;
    std::string forward;
    if (token.rfind("f/", 0) == 0 || from_head) {
      // Forward: `limit` events after the token's position (or from the start).
      q.limit = limit;
      if (token.rfind("f/", 0) == 0) q.next_token = token.substr(2);
      Result<LogPage> page = host_.store().QueryLogs(q);
      if (!page.ok() && page.status().code() == Code::kInvalidArgument) InvalidParameter("The specified nextToken is invalid.");
      LogPage p = ValueOrThrow(std::move(page));
      events = std::move(p.events);
      forward = p.next_token;
    } else {
      if (!token.empty() && token.rfind("b/", 0) != 0) InvalidParameter("The specified nextToken is invalid.");
      // Backward (the default): the newest `limit` events, before the token's position if any.
      // Bounded by the store's retention (100k lines a function).
      q.limit = 10000;
      std::vector<LogRecord> all;
      for (int round = 0; round < 100; ++round) {
        LogPage p = ValueOrThrow(host_.store().QueryLogs(q));
        for (auto& e : p.events) all.push_back(std::move(e));
        if (!p.more) break;
        q.next_token = p.next_token;
      }
      size_t stop = all.size();
      if (token.rfind("b/", 0) == 0) {
        const std::string pos = token.substr(2);
        for (size_t i = 0; i < all.size(); ++i) {
          if (std::to_string(all[i].timestamp_ms) + "_" + std::to_string(all[i].id) == pos) {
            stop = i;
            break;
          }
        }
      }
      size_t begin = stop > static_cast<size_t>(limit) ? stop - static_cast<size_t>(limit) : 0;
      events.assign(all.begin() + static_cast<std::ptrdiff_t>(begin), all.begin() + static_cast<std::ptrdiff_t>(stop));
      forward = events.empty() ? "" : std::to_string(events.back().timestamp_ms) + "_" + std::to_string(events.back().id);
    }
    json list = json::array();
    for (const LogRecord& e : events) {
      list.push_back({{"timestamp", e.timestamp_ms}, {"message", Message(e.message)}, {"ingestionTime", e.timestamp_ms}});
    }
    std::string backward = events.empty() ? "" : std::to_string(events.front().timestamp_ms) + "_" + std::to_string(events.front().id);
    if (forward.empty()) forward = token.rfind("f/", 0) == 0 ? token.substr(2) : "0_0";
    if (backward.empty()) backward = forward;
    return {{"events", std::move(list)}, {"nextForwardToken", "f/" + forward}, {"nextBackwardToken", "b/" + backward}};
  }

  void DeleteLogGroup(const json& body) {
    const std::string fn = FunctionOf(body);
    int64_t n = ValueOrThrow(host_.store().DeleteLogs(fn));
    (void)n;
  }

  ServiceHost& host_;
};

}  // namespace

std::function<bool(const std::string&)> CompileFilterPattern(std::string_view pattern) {
  std::vector<std::string> required, optional, excluded;
  size_t i = 0;
  const size_t n = pattern.size();
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (i < n) {
    while (i < n && is_space(pattern[i])) ++i;
    if (i >= n) break;
    if (pattern[i] == '{' || pattern[i] == '[') {
      InvalidParameter("Geysir supports plain-term filter patterns (terms, \"quoted phrases\", ?optional, "
                       "-excluded); JSON and space-delimited patterns are not supported");
    }
    std::vector<std::string>* into = &required;
    if (pattern[i] == '?') {
      into = &optional;
      ++i;
    } else if (pattern[i] == '-' && i + 1 < n && !is_space(pattern[i + 1])) {
      into = &excluded;
      ++i;
    }
    std::string term;
    if (i < n && pattern[i] == '"') {
      size_t close = pattern.find('"', i + 1);
      if (close == std::string_view::npos) InvalidParameter("Invalid filter pattern: unterminated quoted phrase");
      term = std::string(pattern.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      size_t start = i;
      while (i < n && !is_space(pattern[i])) ++i;
      term = std::string(pattern.substr(start, i - start));
    }
    if (!term.empty()) into->push_back(std::move(term));
  }
  return [required, optional, excluded](const std::string& m) {
    for (const auto& t : required) {
      if (m.find(t) == std::string::npos) return false;
    }
    for (const auto& t : excluded) {
      if (m.find(t) != std::string::npos) return false;
    }
    if (optional.empty()) return true;
    return std::any_of(optional.begin(), optional.end(), [&](const std::string& t) { return m.find(t) != std::string::npos; });
  };
}

std::unique_ptr<Service> MakeLogsService(ServiceHost& host) { return std::make_unique<LogsService>(host); }

}  // namespace geysir::control
