// CloudWatch (signing name "monitoring"): GetMetricStatistics for the AWS/Lambda metrics that
// Geysir records per function and minute (Store::RecordInvocation, fed by the scheduler's log
// batches): Invocations and Errors (Count), Duration (Milliseconds), with the FunctionName
// dimension, Statistics Sum / SampleCount / Average / Minimum / Maximum, buckets of `Period`
// seconds from StartTime. Throttles and other metrics have no datapoints.
//
// Three wire protocols, because the SDKs moved: the query protocol (botocore <= 1.31, AWS CLI
// v2 of Debian 12), JSON 1.0 with X-Amz-Target GraniteServiceVersion20100801.<Op> (botocore
// 1.32+), and Smithy RPC v2 CBOR (POST /service/GraniteServiceVersion20100801/operation/<Op>,
// newer botocore). Each is answered in its own shape, errors included.
//
// Thread safety: loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/service.h"
#include "control/store.h"

namespace geysir::control {

std::unique_ptr<Service> MakeCloudWatchService(ServiceHost& host);

// One bucket of GetMetricStatistics' answer.
struct Datapoint {
  int64_t timestamp_ms = 0;
  double sum = 0, sample_count = 0, minimum = 0, maximum = 0;
};
// Aggregates per-minute counters into buckets of `period_s` starting at `start_ms` (buckets with
// no data are omitted, as CloudWatch omits them). `metric` is Invocations, Errors or Duration.
std::vector<Datapoint> Aggregate(const std::vector<MetricMinute>& minutes, std::string_view metric,
                                 int64_t start_ms, int64_t period_s);

// "2026-11-27T08:30:00Z", with optional fraction and numeric offset, or epoch seconds; nullopt
// when malformed.
std::optional<int64_t> ParseTimestampMs(std::string_view text);

}  // namespace geysir::control
