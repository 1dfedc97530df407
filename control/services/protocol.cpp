#include "control/services/protocol.h"

#include <ctime>

#include <nlohmann/json.hpp>

#include "control/services/lambda/lambda_api.h"

namespace geysir::control {

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

void XmlWriter::Declaration() { out_ += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"; }

void XmlWriter::Open(std::string_view name, std::string_view xmlns) {
  out_ += '<';
  out_ += name;
  if (!xmlns.empty()) {
    out_ += " xmlns=\"";
    out_ += XmlEscape(xmlns);
    out_ += '"';
  }
  out_ += '>';
}

void XmlWriter::Close(std::string_view name) {
  out_ += "</";
  out_ += name;
  out_ += '>';
}

void XmlWriter::Leaf(std::string_view name, std::string_view text) {
  Open(name);
  out_ += XmlEscape(text);
  Close(name);
}

void XmlWriter::Raw(std::string_view xml) { out_ += xml; }

net::HttpResponse QueryReply(std::string_view action, std::string_view xmlns, std::string_view result_xml,
                               const std::string& request_id, bool with_result) {
  XmlWriter x;
  x.Declaration();
  const std::string response = std::string(action) + "Response";
  const std::string result = std::string(action) + "Result";
  x.Open(response, xmlns);
  if (with_result) {
    x.Open(result);
    x.Raw(result_xml);
    x.Close(result);
  }
  x.Open("ResponseMetadata");
  x.Leaf("RequestId", request_id);
  x.Close("ResponseMetadata");
  x.Close(response);
  net::HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", "text/xml"}, {"x-amzn-RequestId", request_id}};
  r.body = x.Take();
  return r;
}

net::HttpResponse QueryError(const AwsError& error, std::string_view xmlns, const std::string& request_id) {
  XmlWriter x;
  x.Declaration();
  x.Open("ErrorResponse", xmlns);
  x.Open("Error");
  x.Leaf("Type", error.http_status >= 500 ? "Receiver" : "Sender");
  x.Leaf("Code", error.type);
  x.Leaf("Message", error.message);
  x.Close("Error");
  x.Leaf("RequestId", request_id);
  x.Close("ErrorResponse");
  net::HttpResponse r;
  r.status = error.http_status;
  r.headers = {{"Content-Type", "text/xml"}, {"x-amzn-RequestId", request_id}};
  r.body = x.Take();
  return r;
}

net::HttpResponse JsonProtocolError(const AwsError& error, std::string_view content_type,
                                      const std::string& request_id) {
  nlohmann::json body = {{"__type", error.type}, {"message", error.message}};
  net::HttpResponse r;
  r.status = error.http_status;
  r.headers = {{"Content-Type", std::string(content_type)},
               {"x-amzn-RequestId", request_id},
               {"x-amzn-ErrorType", error.type}};
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::map<std::string, std::string> ParseForm(std::string_view body) { return ParseQuery(body); }

std::vector<std::string> ListMembers(const std::map<std::string, std::string>& form, std::string_view prefix,
                                     std::string_view field) {
  std::vector<std::string> out;
  for (size_t i = 1;; ++i) {
    std::string key = std::string(prefix) + "." + std::to_string(i);
    if (!field.empty()) key += "." + std::string(field);
    auto it = form.find(key);
    if (it == form.end()) break;
    out.push_back(it->second);
  }
  return out;
}

std::string IsoTimestamp(int64_t ms) {
  time_t s = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace geysir::control
