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

// CloudWatch Logs answers every client error 400 (awsJson1_1), whatever the type.
constexpr ErrorStatus kLogsErrorStatuses[] = {
    {"ResourceNotFoundException", 400},
    {"UnknownOperationException", 400},
};

Status InvalidParameter(std::string message) {
  return AwsStatus(Code::kInvalidArgument, "InvalidParameterException", std::move(message));
}

Status GroupNotFound() {
  return AwsStatus(Code::kNotFound, "ResourceNotFoundException", "The specified log group does not exist.");
}

Status UnknownOperation(std::string message) {
  return AwsStatus(Code::kUnimplemented, "UnknownOperationException", std::move(message));
}

Result<std::optional<std::string>> OptString(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return InvalidParameter(std::string(key) + " must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::string> StringOr(const json& body, const char* key, std::string fallback) {
  GEYSIR_ASSIGN_OR_RETURN(std::optional<std::string> value, OptString(body, key));
  return value ? std::move(*value) : std::move(fallback);
}

Result<std::optional<int64_t>> OptInt(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    return InvalidParameter(std::string(key) + " must be an integer");
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<bool> OptBool(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_boolean()) return InvalidParameter(std::string(key) + " must be a boolean");
  return it->get<bool>();
}

Result<std::vector<std::string>> OptStrings(const json& body, const char* key) {
  std::vector<std::string> out;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) return InvalidParameter(std::string(key) + " must be a list of strings");
  for (const json& v : *it) {
    if (!v.is_string()) return InvalidParameter(std::string(key) + " must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<int> Limit(const json& body, int fallback, int max) {
  GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> v, OptInt(body, "limit"));
  if (!v) return fallback;
  if (*v < 1 || *v > max) {
    return InvalidParameter("1 validation error detected: Value '" + std::to_string(*v) +
                            "' at 'limit' failed to satisfy constraint: Member must have value between 1 and " +
                            std::to_string(max));
  }
  return static_cast<int>(*v);
}

// Offset tokens for the listing operations ("o/<n>").
Result<size_t> OffsetToken(const json& body) {
  GEYSIR_ASSIGN_OR_RETURN(const std::optional<std::string> t, OptString(body, "nextToken"));
  if (!t) return size_t{0};
  if (t->size() < 3 || t->rfind("o/", 0) != 0 || t->size() > 14 ||
      !std::all_of(t->begin() + 2, t->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidParameter("The specified nextToken is invalid.");
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
  std::span<const ErrorStatus> error_statuses() const override { return kLogsErrorStatuses; }

  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override {
    const std::string* target = req.Header("X-Amz-Target");
    static constexpr std::string_view kPrefix = "Logs_20140328.";
    if (req.method != "POST" || !target || target->rfind(kPrefix, 0) != 0) {
      return UnknownOperation("CloudWatch Logs takes POST / with X-Amz-Target: Logs_20140328.<Operation>");
    }
    const std::string op = target->substr(kPrefix.size());
    json body = req.body.empty() ? json::object() : ParseUntrustedJsonOrDiscarded(req.body);
    if (!body.is_object()) {
      return AwsStatus(Code::kInvalidArgument, "SerializationException", "The request body is not a JSON object");
    }
    Result<json> out = json::object();
    if (op == "DescribeLogGroups") {
      out = DescribeLogGroups(body);
    } else if (op == "DescribeLogStreams") {
      out = DescribeLogStreams(body);
    } else if (op == "FilterLogEvents") {
      out = FilterLogEvents(body);
    } else if (op == "GetLogEvents") {
      out = GetLogEvents(body);
    } else if (op == "DeleteLogGroup") {
      GEYSIR_RETURN_IF_ERROR(DeleteLogGroup(body));
    } else {
      return UnknownOperation("Geysir's CloudWatch Logs does not implement " + op.substr(0, 100) +
                              " (it serves DescribeLogGroups, DescribeLogStreams, FilterLogEvents, "
                              "GetLogEvents and DeleteLogGroup over function logs)");
    }
    if (!out.ok()) return out.status();
    net::HttpResponse r;
    r.status = 200;
    r.headers = {{"Content-Type", kContentType}, {"x-amzn-RequestId", info.request_id}};
    r.body = out->dump(-1, ' ', false, json::error_handler_t::replace);
    resp->Send(std::move(r));
    return Status::Ok();
  }

 private:
  // The function a log group name stands for; ResourceNotFoundException unless it is
  // /aws/lambda/NAME of a function that exists or has stored lines.
  Result<std::string> FunctionOf(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(std::optional<std::string> group, OptString(body, "logGroupName"));
    if (!group) {
      GEYSIR_ASSIGN_OR_RETURN(group, OptString(body, "logGroupIdentifier"));
    }
    if (!group || group->empty()) return InvalidParameter("logGroupName is required");
    std::string g = *group;
    // logGroupIdentifier may be the group's ARN: arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]
    if (size_t at = g.find(":log-group:"); g.rfind("arn:", 0) == 0 && at != std::string::npos) {
      g = g.substr(at + 11);
      if (g.ends_with(":*")) g.resize(g.size() - 2);
    }
    if (g.rfind(kGroupPrefix, 0) != 0) return GroupNotFound();
    std::string name = g.substr(kGroupPrefix.size());
    if (!IsValidFunctionName(name)) return GroupNotFound();
    if (!host_.store().GetFunction(name).ok()) {
      GEYSIR_ASSIGN_OR_RETURN(const int64_t lines, host_.store().CountLogs(name));
      if (lines == 0) return GroupNotFound();
    }
    return name;
  }

  std::string GroupArn(const std::string& fn) const {
    return "arn:aws:logs:" + host_.api().region + ":" + host_.api().account_id + ":log-group:" +
           std::string(kGroupPrefix) + fn;
  }

  Result<json> DescribeLogGroups(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(const std::string prefix, StringOr(body, "logGroupNamePrefix", ""));
    GEYSIR_ASSIGN_OR_RETURN(const int limit, Limit(body, 50, 50));
    GEYSIR_ASSIGN_OR_RETURN(const size_t offset, OffsetToken(body));
    // Function-name prefix for the stored groups; a prefix outside /aws/lambda/ matches none.
    std::string fn_prefix;
    if (prefix.rfind(kGroupPrefix, 0) == 0) {
      fn_prefix = prefix.substr(kGroupPrefix.size());
    } else if (std::string(kGroupPrefix).rfind(prefix, 0) != 0) {
      return json{{"logGroups", json::array()}};
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::vector<LogGroupInfo> groups, host_.store().ListLogGroups(fn_prefix));
    json list = json::array();
    for (size_t i = offset; i < groups.size() && list.size() < static_cast<size_t>(limit); ++i) {
      const LogGroupInfo& g = groups[i];
      int64_t created = 0, bytes = 0;
      GEYSIR_ASSIGN_OR_RETURN(const std::vector<LogStreamInfo> streams, host_.store().ListLogStreams(g.function_name));
      for (const LogStreamInfo& s : streams) {
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

  Result<json> DescribeLogStreams(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(const std::string fn, FunctionOf(body));
    GEYSIR_ASSIGN_OR_RETURN(const std::string order, StringOr(body, "orderBy", "LogStreamName"));
    if (order != "LogStreamName" && order != "LastEventTime") {
      return InvalidParameter("1 validation error detected: Value '" + order.substr(0, 50) +
                       "' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: "
                       "[LogStreamName, LastEventTime]");
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::string prefix, StringOr(body, "logStreamNamePrefix", ""));
    if (!prefix.empty() && order == "LastEventTime") {
      return InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.");
    }
    GEYSIR_ASSIGN_OR_RETURN(const bool descending, OptBool(body, "descending"));
    GEYSIR_ASSIGN_OR_RETURN(const int limit, Limit(body, 50, 50));
    GEYSIR_ASSIGN_OR_RETURN(const size_t offset, OffsetToken(body));
    GEYSIR_ASSIGN_OR_RETURN(std::vector<LogStreamInfo> streams, host_.store().ListLogStreams(fn));
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

  Result<json> FilterLogEvents(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(const std::string fn, FunctionOf(body));
    LogQuery q;
    q.function_name = fn;
    GEYSIR_ASSIGN_OR_RETURN(q.log_streams, OptStrings(body, "logStreamNames"));
    if (q.log_streams.size() > 100) return InvalidParameter("logStreamNames may list at most 100 streams");
    GEYSIR_ASSIGN_OR_RETURN(const std::string stream_prefix, StringOr(body, "logStreamNamePrefix", ""));
    if (!stream_prefix.empty()) {
      if (!q.log_streams.empty()) {
        return InvalidParameter("logStreamNames and logStreamNamePrefix are mutually exclusive");
      }
      GEYSIR_ASSIGN_OR_RETURN(const std::vector<LogStreamInfo> streams, host_.store().ListLogStreams(fn));
      for (const LogStreamInfo& s : streams) {
        if (s.name.rfind(stream_prefix, 0) == 0) q.log_streams.push_back(s.name);
      }
      if (q.log_streams.empty()) return json{{"events", json::array()}, {"searchedLogStreams", json::array()}};
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> start, OptInt(body, "startTime"));
    q.start_ms = std::max<int64_t>(0, start.value_or(0));
    // CloudWatch's endTime is inclusive; the store's end is exclusive.
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> end_time, OptInt(body, "endTime"));
    const int64_t end = end_time.value_or(INT64_MAX - 1);
    q.end_ms = end >= INT64_MAX - 1 ? INT64_MAX : end + 1;
    GEYSIR_ASSIGN_OR_RETURN(q.limit, Limit(body, 10000, 10000));
    GEYSIR_ASSIGN_OR_RETURN(const std::string pattern, StringOr(body, "filterPattern", ""));
    if (!pattern.empty()) {
      GEYSIR_ASSIGN_OR_RETURN(q.filter, CompileFilterPattern(pattern));
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<std::string> token, OptString(body, "nextToken"));
    if (token) q.next_token = *token;
    Result<LogPage> page = host_.store().QueryLogs(q);
    if (!page.ok() && page.status().code() == Code::kInvalidArgument) return InvalidParameter(page.status().message());
    if (!page.ok()) return page.status();
    LogPage p = std::move(page).value();
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

  Result<json> GetLogEvents(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(const std::string fn, FunctionOf(body));
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<std::string> stream, OptString(body, "logStreamName"));
    if (!stream || stream->empty()) return InvalidParameter("logStreamName is required");
    bool exists = false;
    GEYSIR_ASSIGN_OR_RETURN(const std::vector<LogStreamInfo> streams, host_.store().ListLogStreams(fn));
    for (const LogStreamInfo& s : streams) exists |= s.name == *stream;
    if (!exists) {
      return AwsStatus(Code::kNotFound, "ResourceNotFoundException", "The specified log stream does not exist.");
    }
    LogQuery q;
    q.function_name = fn;
    q.log_streams = {*stream};
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> start, OptInt(body, "startTime"));
    q.start_ms = std::max<int64_t>(0, start.value_or(0));
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> end, OptInt(body, "endTime"));
    q.end_ms = end.value_or(INT64_MAX);  // exclusive, as GetLogEvents' is
    GEYSIR_ASSIGN_OR_RETURN(const int limit, Limit(body, 10000, 10000));
    GEYSIR_ASSIGN_OR_RETURN(const bool from_head, OptBool(body, "startFromHead"));
    GEYSIR_ASSIGN_OR_RETURN(const std::string token, StringOr(body, "nextToken", ""));
    std::vector<LogRecord> events;
    std::string forward;
    if (token.rfind("f/", 0) == 0 || from_head) {
      // Forward: `limit` events after the token's position (or from the start).
      q.limit = limit;
      if (token.rfind("f/", 0) == 0) q.next_token = token.substr(2);
      Result<LogPage> page = host_.store().QueryLogs(q);
      if (!page.ok() && page.status().code() == Code::kInvalidArgument) {
        return InvalidParameter("The specified nextToken is invalid.");
      }
      if (!page.ok()) return page.status();
      LogPage p = std::move(page).value();
      events = std::move(p.events);
      forward = p.next_token;
    } else {
      if (!token.empty() && token.rfind("b/", 0) != 0) return InvalidParameter("The specified nextToken is invalid.");
      // Backward (the default): the newest `limit` events, before the token's position if any.
      // Bounded by the store's retention (100k lines a function).
      q.limit = 10000;
      std::vector<LogRecord> all;
      for (int round = 0; round < 100; ++round) {
        GEYSIR_ASSIGN_OR_RETURN(LogPage p, host_.store().QueryLogs(q));
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
    return json{{"events", std::move(list)}, {"nextForwardToken", "f/" + forward}, {"nextBackwardToken", "b/" + backward}};
  }

  Status DeleteLogGroup(const json& body) {
    GEYSIR_ASSIGN_OR_RETURN(const std::string fn, FunctionOf(body));
    return host_.store().DeleteLogs(fn).status();
  }

  ServiceHost& host_;
};

}  // namespace

Result<std::function<bool(const std::string&)>> CompileFilterPattern(std::string_view pattern) {
  std::vector<std::string> required, optional, excluded;
  size_t i = 0;
  const size_t n = pattern.size();
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (i < n) {
    while (i < n && is_space(pattern[i])) ++i;
    if (i >= n) break;
    if (pattern[i] == '{' || pattern[i] == '[') {
      return InvalidParameter("Geysir supports plain-term filter patterns (terms, \"quoted phrases\", ?optional, "
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
      if (close == std::string_view::npos) return InvalidParameter("Invalid filter pattern: unterminated quoted phrase");
      term = std::string(pattern.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      size_t start = i;
      while (i < n && !is_space(pattern[i])) ++i;
      term = std::string(pattern.substr(start, i - start));
    }
    if (!term.empty()) into->push_back(std::move(term));
  }
  return std::function<bool(const std::string&)>([required, optional, excluded](const std::string& m) {
    for (const auto& t : required) {
      if (m.find(t) == std::string::npos) return false;
    }
    for (const auto& t : excluded) {
      if (m.find(t) != std::string::npos) return false;
    }
    if (optional.empty()) return true;
    return std::any_of(optional.begin(), optional.end(), [&](const std::string& t) { return m.find(t) != std::string::npos; });
  });
}

std::unique_ptr<Service> MakeLogsService(ServiceHost& host) { return std::make_unique<LogsService>(host); }

}  // namespace geysir::control
