// Wire helpers shared by control's AWS services: the XML that the query (IAM, STS,
// CloudFormation) and rest-xml (S3) protocols answer with, and the error bodies of the query
// and JSON 1.0/1.1 (EventBridge, CloudWatch Logs) protocols, in the shapes botocore parses.
//
// Thread safety: values and pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "control/aws_error.h"
#include "net/http_server.h"

namespace geysir::control {

// &, <, >, ", ' escaped for element text and attribute values.
std::string XmlEscape(std::string_view text);

// Appends well-formed XML: Open/Close pairs and Leaf elements with escaped text.
//   XmlWriter x; x.Declaration(); x.Open("Error"); x.Leaf("Code", "NoSuchKey"); x.Close("Error");
class XmlWriter {
 public:
  void Declaration();  // <?xml version="1.0" encoding="UTF-8"?>
  // <name xmlns="..."> (xmlns omitted when empty).
  void Open(std::string_view name, std::string_view xmlns = {});
  void Close(std::string_view name);
  void Leaf(std::string_view name, std::string_view text);
  // Text that is already XML (a fragment another writer made).
  void Raw(std::string_view xml);
  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// A query-protocol success reply:
//   <{action}Response xmlns="{xmlns}"><{action}Result>{result_xml}</{action}Result>
//   <ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{action}Response>
// `result_xml` empty and `with_result` false gives the bare form some actions use.
net::HttpResponse QueryReply(std::string_view action, std::string_view xmlns, std::string_view result_xml,
                               const std::string& request_id, bool with_result = true);

// A query-protocol error (IAM, STS, CloudFormation):
//   <ErrorResponse xmlns="{xmlns}"><Error><Type>Sender|Receiver</Type><Code>{type}</Code>
//   <Message>{message}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>
net::HttpResponse QueryError(const AwsError& error, std::string_view xmlns, const std::string& request_id);

// A JSON 1.0/1.1 protocol error (EventBridge, CloudWatch Logs): body
// {"__type":"{type}","message":"{message}"}, header x-amzn-ErrorType, with `content_type`
// ("application/x-amz-json-1.1" or "-1.0").
net::HttpResponse JsonProtocolError(const AwsError& error, std::string_view content_type,
                                      const std::string& request_id);

// The form-encoded body of a query-protocol request (Action=...&Version=...&Member.1=...),
// decoded ("+" is a space). The first of duplicate keys wins.
std::map<std::string, std::string> ParseForm(std::string_view body);

// Members of a query-protocol list: prefix "Tags.member" gives the values of Tags.member.1,
// Tags.member.2, ... in order, stopping at the first gap. For structures, pass the field
// suffix: ListMembers(form, "Tags.member", "Key").
std::vector<std::string> ListMembers(const std::map<std::string, std::string>& form, std::string_view prefix,
                                     std::string_view field = {});

// An ISO-8601 UTC timestamp with milliseconds, "2026-11-27T08:30:00.000Z", as the XML
// protocols write times.
std::string IsoTimestamp(int64_t ms_since_epoch);

}  // namespace geysir::control
