// CloudWatch Logs (JSON 1.1, signing name "logs", X-Amz-Target "Logs_20140328.<Operation>")
// over the invocation logs control already keeps (Store::AppendLogs / QueryLogs): function NAME's
// lines are log group "/aws/lambda/NAME", each template's lines one log stream named as Lambda
// names them, "YYYY/MM/DD/[VERSION]<template id>".
//
// Operations: DescribeLogGroups, DescribeLogStreams (orderBy LogStreamName | LastEventTime,
// descending, prefix, limit, nextToken), FilterLogEvents (startTime/endTime, logStreamNames or
// logStreamNamePrefix, filterPattern with plain terms, "quoted phrases", ?optional and -excluded
// terms; every matching event in one page up to `limit`), GetLogEvents and DeleteLogGroup
// (deletes the stored lines). Log groups other than /aws/lambda/* do not exist here.
//
// Thread safety: loop thread only (like every Service).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "control/service.h"

namespace geysir::control {

std::unique_ptr<Service> MakeLogsService(ServiceHost& host);

// A CloudWatch Logs filter pattern compiled to a predicate over one message. Supported: ""
// (everything), terms (all must appear), "quoted phrases", ?term (at least one of the ? terms),
// -term (must not appear); matching is case-sensitive as in CloudWatch. JSON ({ $.x = 1 }) and
// space-delimited ([a, b]) patterns are refused with InvalidParameterException.
Result<std::function<bool(const std::string&)>> CompileFilterPattern(std::string_view pattern);

}  // namespace geysir::control
