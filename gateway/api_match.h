// Matching a request to an API Gateway stage and route, with API Gateway's precedence.
//
// Stage: a REST API's stage is the first path segment ("/dev/users/7" -> stage "dev", path
// "/users/7"); no such stage is kNoStage (AWS answers 403 {"message":"Forbidden"}). An HTTP
// API serves a named stage the same way and its "$default" stage at the root, so the first
// segment is tried as a stage name first and "$default" otherwise.
//
// Route: among the routes whose method is the request's or ANY and whose path template matches,
// the most specific path wins, compared segment by segment from the left: a literal segment
// beats "{param}", which beats a greedy "{name+}" (which must be last and matches one or more
// segments). On equal paths an exact method beats ANY. An HTTP API falls back to its
// "$default" route. Nothing matching is kNoRoute (REST: 403 "Missing Authentication Token";
// HTTP API: 404 "Not Found"). Empty segments are ignored ("/a//b/" is "/a/b"), literal segments
// are compared after percent-decoding, and path parameters are percent-decoded.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/messages.h"
#include "proto/tls_state.h"

namespace geysir::gateway {

struct ApiMatch {
  enum class Result { kMatched, kNoStage, kNoRoute };
  Result result = Result::kNoStage;
  const proto::ApiStage* stage = nullptr;   // set unless kNoStage
  const proto::ApiRoute* route = nullptr;   // set when kMatched
  std::string path;                         // the path after the stage prefix, "/" at least (raw)
  std::vector<std::pair<std::string, std::string>> path_parameters;  // decoded, template order
};

// `raw_path` is the request path as received (percent-encoded, no query).
ApiMatch MatchApi(const proto::ApiGatewayApi& api, std::string_view method, std::string_view raw_path);

// The same through a custom domain's API mapping: the stage is the mapping's (no stage segment
// in the URL) and `path` is what follows the mapping's base path. A stage the API does not have
// (not deployed, or deleted since the mapping was made) is kNoStage.
ApiMatch MatchApiStage(const proto::ApiGatewayApi& api, std::string_view stage, std::string_view method,
                       std::string_view path);

// Custom domains with API mappings (API Gateway's base path mappings): the mapping of `mappings`
// (all for one host) whose base path is the longest segment-wise prefix of `raw_path`; the key
// "" matches every path. Keys compare case-sensitively with the raw path, as AWS does. `rest`
// gets the path after the base path ("/v1/users" under "v1" -> "/users", "/v1" -> "/").
// nullptr when none matches (AWS answers 403 Forbidden).
const proto::CustomDomainRoute* MatchMapping(const std::vector<proto::CustomDomainRoute>& mappings,
                                             std::string_view raw_path, std::string* rest);

// Whether `content_type` (parameters ignored, case-insensitive) matches one of the binary media
// types ("*/*", "image/*", "application/octet-stream"). An empty content type matches only "*/*".
bool MatchesMediaType(const std::vector<std::string>& types, std::string_view content_type);

}  // namespace geysir::gateway
