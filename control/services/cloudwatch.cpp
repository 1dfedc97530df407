// CloudWatch GetMetricStatistics over Geysir's per-minute invocation counters; see cloudwatch.h.
#include "control/services/cloudwatch.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;

constexpr std::string_view kXmlns = "http://monitoring.amazonaws.com/doc/2010-08-01/";
constexpr std::string_view kTargetPrefix = "GraniteServiceVersion20100801.";
constexpr std::string_view kCborPrefix = "/service/GraniteServiceVersion20100801/operation/";

enum class Wire { kQuery, kJson, kCbor };

// CloudWatch answers an action it does not know 400, as every other client error.
constexpr ErrorStatus kCloudWatchErrorStatuses[] = {
    {"InvalidAction", 400},
};

Status InvalidValue(std::string message) {
  return AwsStatus(Code::kInvalidArgument, "InvalidParameterValue", std::move(message));
}
Status Missing(const std::string& param) {
  return AwsStatus(Code::kInvalidArgument, "MissingParameter", "The parameter " + param + " is required.");
}

// GetMetricStatistics' input, whatever the wire.
struct StatsRequest {
  std::string ns, metric, unit;
  std::vector<std::pair<std::string, std::string>> dimensions;
  std::optional<int64_t> start_ms, end_ms, period_s;
  std::vector<std::string> statistics, extended;
};

Result<StatsRequest> FromForm(const std::map<std::string, std::string>& form) {
  StatsRequest r;
  auto get = [&](const char* k) -> std::string {
    auto it = form.find(k);
    return it == form.end() ? "" : it->second;
  };
  r.ns = get("Namespace");
  r.metric = get("MetricName");
  r.unit = get("Unit");
  auto names = ListMembers(form, "Dimensions.member", "Name");
  auto values = ListMembers(form, "Dimensions.member", "Value");
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) r.dimensions.emplace_back(names[i], values[i]);
  for (const char* k : {"StartTime", "EndTime"}) {
    std::string v = get(k);
    if (v.empty()) continue;
    auto ms = ParseTimestampMs(v);
    if (!ms) {
      return InvalidValue("The parameter " + std::string(k) + " must be a timestamp (ISO 8601), not '" +
                          v.substr(0, 60) + "'.");
    }
    (std::strcmp(k, "StartTime") == 0 ? r.start_ms : r.end_ms) = *ms;
  }
  if (std::string p = get("Period"); !p.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(p.c_str(), &end, 10);
    if (end == p.c_str() || *end != '\0') return InvalidValue("The parameter Period must be an integer.");
    r.period_s = v;
  }
  r.statistics = ListMembers(form, "Statistics.member");
  r.extended = ListMembers(form, "ExtendedStatistics.member");
  return r;
}

// JSON 1.0 and CBOR carry the same structure; timestamps are epoch seconds.
Result<StatsRequest> FromJson(const json& j) {
  StatsRequest r;
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  };
  r.ns = str("Namespace");
  r.metric = str("MetricName");
  r.unit = str("Unit");
  if (auto it = j.find("Dimensions"); it != j.end() && it->is_array()) {
    for (const json& d : *it) {
      if (d.is_object() && d.contains("Name") && d.contains("Value") && d["Name"].is_string() && d["Value"].is_string()) {
        r.dimensions.emplace_back(d["Name"].get<std::string>(), d["Value"].get<std::string>());
      }
    }
  }
  for (const char* k : {"StartTime", "EndTime"}) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    std::optional<int64_t> ms;
    // Seconds, range-checked before the conversion (1e300 would overflow it).
    if (it->is_number() && std::fabs(it->get<double>()) < 1e15) ms = static_cast<int64_t>(std::llround(it->get<double>() * 1000.0));
    if (it->is_string()) ms = ParseTimestampMs(it->get<std::string>());
    if (!ms) return InvalidValue("The parameter " + std::string(k) + " must be a timestamp.");
    (std::strcmp(k, "StartTime") == 0 ? r.start_ms : r.end_ms) = *ms;
  }
  if (auto it = j.find("Period"); it != j.end() && it->is_number()) {
    auto period = JsonInteger<int64_t>(*it);
    if (!period) return InvalidValue("The parameter Period must be an integer.");
    r.period_s = *period;
  }
  for (const char* k : {"Statistics", "ExtendedStatistics"}) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_array()) continue;
    for (const json& s : *it) {
      if (s.is_string()) (std::strcmp(k, "Statistics") == 0 ? r.statistics : r.extended).push_back(s.get<std::string>());
    }
  }
  return r;
}

// A minimal CBOR writer for the answers (RFC 8949): maps and arrays of definite length, text
// strings, doubles, and tag 1 (epoch seconds) for timestamps, which is what botocore reads.
class Cbor {
 public:
  void Map(size_t n) { Head(5, n); }
  void Array(size_t n) { Head(4, n); }
  void Text(std::string_view s) {
    Head(3, s.size());
    out_.append(s);
  }
  void Double(double v) {
    out_.push_back(static_cast<char>(0xfb));
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (i * 8)) & 0xff));
  }
  void Timestamp(int64_t ms) {
    Head(6, 1);
    Double(static_cast<double>(ms) / 1000.0);
  }
  std::string Take() { return std::move(out_); }

 private:
  void Head(uint8_t major, uint64_t n) {
    const uint8_t m = static_cast<uint8_t>(major << 5);
    if (n < 24) {
      out_.push_back(static_cast<char>(m | n));
    } else if (n < 0x100) {
      out_.push_back(static_cast<char>(m | 24));
      out_.push_back(static_cast<char>(n));
    } else if (n < 0x10000) {
      out_.push_back(static_cast<char>(m | 25));
      out_.push_back(static_cast<char>(n >> 8));
      out_.push_back(static_cast<char>(n & 0xff));
    } else {
      out_.push_back(static_cast<char>(m | 26));
      for (int i = 3; i >= 0; --i) out_.push_back(static_cast<char>((n >> (i * 8)) & 0xff));
    }
  }
  std::string out_;
};

std::string FormatDouble(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

class CloudWatchService final : public Service {
 public:
  explicit CloudWatchService(ServiceHost& host) : host_(host) {}
  std::string_view signing_name() const override { return "monitoring"; }

  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override {
    // The protocol of the request being answered; set in Handle before anything can fail.
    switch (wire_) {
      case Wire::kJson:
        return JsonProtocolError(error, "application/x-amz-json-1.0", request_id);
      case Wire::kCbor: {
        Cbor c;
        c.Map(2);
        c.Text("__type");
        c.Text(error.type);
        c.Text("message");
        c.Text(error.message);
        net::HttpResponse r;
        r.status = error.http_status;
        r.headers = {{"Content-Type", "application/cbor"}, {"smithy-protocol", "rpc-v2-cbor"}, {"x-amzn-RequestId", request_id}};
        r.body = c.Take();
        return r;
      }
      case Wire::kQuery:
        break;
    }
    return QueryError(error, kXmlns, request_id);
  }
  std::span<const ErrorStatus> error_statuses() const override { return kCloudWatchErrorStatuses; }

  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override {
    std::string op;
    StatsRequest in;
    const std::string* target = req.Header("X-Amz-Target");
    if (req.path.rfind(kCborPrefix, 0) == 0) {
      wire_ = Wire::kCbor;
      op = req.path.substr(kCborPrefix.size());
      json body = req.body.empty() ? json::object()
                                   : json::from_cbor(req.body, true, false, json::cbor_tag_handler_t::ignore);
      if (!body.is_object()) {
        return AwsStatus(Code::kInvalidArgument, "SerializationException", "The request body is not a CBOR map");
      }
      GEYSIR_ASSIGN_OR_RETURN(in, FromJson(body));
    } else if (target && target->rfind(kTargetPrefix, 0) == 0) {
      wire_ = Wire::kJson;
      op = target->substr(kTargetPrefix.size());
      json body = req.body.empty() ? json::object() : ParseUntrustedJsonOrDiscarded(req.body);
      if (!body.is_object()) {
        return AwsStatus(Code::kInvalidArgument, "SerializationException", "The request body is not a JSON object");
      }
      GEYSIR_ASSIGN_OR_RETURN(in, FromJson(body));
    } else {
      wire_ = Wire::kQuery;
      auto form = ParseForm(req.body.empty() ? std::string_view(req.query) : std::string_view(req.body));
      op = form.count("Action") ? form["Action"] : "";
      GEYSIR_ASSIGN_OR_RETURN(in, FromForm(form));
    }
    if (op != "GetMetricStatistics") {
      return AwsStatus(Code::kUnimplemented, "InvalidAction",
                       "Geysir's CloudWatch implements GetMetricStatistics only (for AWS/Lambda Invocations, "
                       "Errors and Duration), not " + op.substr(0, 100));
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::vector<Datapoint> points, Compute(in));
    const std::string unit = in.metric == "Duration" ? "Milliseconds" : "Count";
    auto value_of = [&](const Datapoint& d, const std::string& stat) -> double {
      if (stat == "Sum") return d.sum;
      if (stat == "SampleCount") return d.sample_count;
      if (stat == "Average") return d.sample_count > 0 ? d.sum / d.sample_count : 0;
      if (stat == "Minimum") return d.minimum;
      return d.maximum;
    };
    net::HttpResponse r;
    r.status = 200;
    if (wire_ == Wire::kQuery) {
      XmlWriter x;
      x.Leaf("Label", in.metric);
      x.Open("Datapoints");
      for (const Datapoint& d : points) {
        x.Open("member");
        x.Leaf("Timestamp", IsoTimestamp(d.timestamp_ms));
        for (const std::string& s : in.statistics) x.Leaf(s, FormatDouble(value_of(d, s)));
        x.Leaf("Unit", unit);
        x.Close("member");
      }
      x.Close("Datapoints");
      resp->Send(QueryReply("GetMetricStatistics", kXmlns, x.str(), info.request_id));
      return Status::Ok();
    }
    if (wire_ == Wire::kJson) {
      json list = json::array();
      for (const Datapoint& d : points) {
        json p = {{"Timestamp", static_cast<double>(d.timestamp_ms) / 1000.0}, {"Unit", unit}};
        for (const std::string& s : in.statistics) p[s] = value_of(d, s);
        list.push_back(std::move(p));
      }
      r.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"x-amzn-RequestId", info.request_id}};
      r.body = json({{"Label", in.metric}, {"Datapoints", std::move(list)}}).dump();
    } else {
      Cbor c;
      c.Map(2);
      c.Text("Label");
      c.Text(in.metric);
      c.Text("Datapoints");
      c.Array(points.size());
      for (const Datapoint& d : points) {
        c.Map(2 + in.statistics.size());
        c.Text("Timestamp");
        c.Timestamp(d.timestamp_ms);
        for (const std::string& s : in.statistics) {
          c.Text(s);
          c.Double(value_of(d, s));
        }
        c.Text("Unit");
        c.Text(unit);
      }
      r.headers = {{"Content-Type", "application/cbor"}, {"smithy-protocol", "rpc-v2-cbor"}, {"x-amzn-RequestId", info.request_id}};
      r.body = c.Take();
    }
    resp->Send(std::move(r));
    return Status::Ok();
  }

 private:
  Result<std::vector<Datapoint>> Compute(StatsRequest& in) {
    if (in.ns.empty()) return Missing("Namespace");
    if (in.metric.empty()) return Missing("MetricName");
    if (!in.start_ms) return Missing("StartTime");
    if (!in.end_ms) return Missing("EndTime");
    if (!in.period_s) return Missing("Period");
    if (in.statistics.empty() && in.extended.empty()) {
      return AwsStatus(Code::kInvalidArgument, "MissingParameter", "Must specify either Statistics or ExtendedStatistics.");
    }
    if (!in.extended.empty()) {
      return InvalidValue("ExtendedStatistics (percentiles) are not recorded by Geysir: use Sum, SampleCount, Average, "
                   "Minimum or Maximum");
    }
    for (const std::string& s : in.statistics) {
      if (s != "Sum" && s != "SampleCount" && s != "Average" && s != "Minimum" && s != "Maximum") {
        return InvalidValue("The parameter Statistics.member." + s.substr(0, 40) +
                     " must be one of SampleCount, Average, Sum, Minimum, Maximum.");
      }
    }
    const int64_t period = *in.period_s;
    if (period < 1 || (period < 60 && 60 % period != 0) || (period > 60 && period % 60 != 0)) {
      return InvalidValue("The parameter Period must be 1, 5, 10, 30, 60, or any multiple of 60.");
    }
    if (*in.end_ms <= *in.start_ms) {
      return InvalidValue("The parameter StartTime must be less than the parameter EndTime.");
    }
    const int64_t buckets = (*in.end_ms - *in.start_ms + period * 1000 - 1) / (period * 1000);
    if (buckets > 1440) {
      return AwsStatus(Code::kInvalidArgument, "InvalidParameterCombination",
                       "You have requested up to " + std::to_string(buckets) +
                           " datapoints, which exceeds the limit of 1440. You may reduce the datapoints "
                           "requested by increasing Period, or decreasing the time range.");
    }
    // Only AWS/Lambda's FunctionName-dimensioned Invocations / Errors / Duration have data.
    const std::vector<Datapoint> none;
    if (in.ns != "AWS/Lambda" || in.dimensions.size() != 1 || in.dimensions[0].first != "FunctionName") return none;
    if (in.metric != "Invocations" && in.metric != "Errors" && in.metric != "Duration") return none;
    const std::string unit = in.metric == "Duration" ? "Milliseconds" : "Count";
    if (!in.unit.empty() && in.unit != unit) return none;
    const std::string& fn = in.dimensions[0].second;
    const int64_t first_minute = *in.start_ms - ((*in.start_ms % 60000) + 60000) % 60000;
    GEYSIR_ASSIGN_OR_RETURN(const std::vector<MetricMinute> minutes,
                            host_.store().QueryMetrics(fn, first_minute, *in.end_ms));
    return Aggregate(minutes, in.metric, *in.start_ms, period);
  }

  ServiceHost& host_;
  Wire wire_ = Wire::kQuery;
};

}  // namespace

std::vector<Datapoint> Aggregate(const std::vector<MetricMinute>& minutes, std::string_view metric, int64_t start_ms,
                                 int64_t period_s) {
  std::map<int64_t, Datapoint> buckets;
  std::map<int64_t, bool> seen;
  const int64_t period_ms = period_s * 1000;
  for (const MetricMinute& m : minutes) {
    if (m.invocations <= 0) continue;
    const int64_t offset = std::max<int64_t>(0, m.minute_ms - start_ms);
    const int64_t at = start_ms + offset / period_ms * period_ms;
    Datapoint& d = buckets[at];
    const bool first = !seen[at];
    seen[at] = true;
    d.timestamp_ms = at;
    const double n = static_cast<double>(m.invocations);
    d.sample_count += n;
    if (metric == "Invocations") {
      d.sum += n;
      d.minimum = 1;
      d.maximum = 1;
    } else if (metric == "Errors") {
      // Each invocation reports 0 or 1.
      d.sum += static_cast<double>(m.errors);
      const double lo = m.errors >= m.invocations ? 1 : 0;
      const double hi = m.errors > 0 ? 1 : 0;
      d.minimum = first ? lo : std::min(d.minimum, lo);
      d.maximum = first ? hi : std::max(d.maximum, hi);
    } else {
      d.sum += m.duration_sum_ms;
      d.minimum = first ? m.duration_min_ms : std::min(d.minimum, m.duration_min_ms);
      d.maximum = first ? m.duration_max_ms : std::max(d.maximum, m.duration_max_ms);
    }
  }
  std::vector<Datapoint> out;
  for (auto& [at, d] : buckets) out.push_back(d);
  return out;
}

std::optional<int64_t> ParseTimestampMs(std::string_view t) {
  if (t.empty() || t.size() > 40) return std::nullopt;
  // Epoch seconds (possibly fractional).
  if (std::all_of(t.begin(), t.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    std::string s(t);
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return std::nullopt;
    return static_cast<int64_t>(std::llround(v * 1000.0));
  }
  auto digits = [&](size_t at, size_t n) -> std::optional<int> {
    if (at + n > t.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  auto Y = digits(0, 4), M = digits(5, 2), D = digits(8, 2), h = digits(11, 2), m = digits(14, 2), s = digits(17, 2);
  if (!Y || !M || !D || !h || !m || !s || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ') || t[13] != ':' ||
      t[16] != ':') {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t ms = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    int64_t scale = 100;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      ms += (t[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  int64_t offset_s = 0;
  if (i < t.size()) {
    if (t[i] == 'Z' && i + 1 == t.size()) {
      ++i;
    } else if ((t[i] == '+' || t[i] == '-') && i + 6 == t.size() && t[i + 3] == ':') {
      auto oh = digits(i + 1, 2), om = digits(i + 4, 2);
      if (!oh || !om) return std::nullopt;
      offset_s = (t[i] == '+' ? 1 : -1) * (*oh * 3600 + *om * 60);
      i += 6;
    } else {
      return std::nullopt;
    }
  }
  struct tm tm {};
  tm.tm_year = *Y - 1900;
  tm.tm_mon = *M - 1;
  tm.tm_mday = *D;
  tm.tm_hour = *h;
  tm.tm_min = *m;
  tm.tm_sec = *s;
  const int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return secs * 1000 + ms;
}

std::unique_ptr<Service> MakeCloudWatchService(ServiceHost& host) { return std::make_unique<CloudWatchService>(host); }

}  // namespace geysir::control
