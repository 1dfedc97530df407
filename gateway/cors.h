// CORS for function URLs, configured per URL with Lambda's Cors object
// ({AllowOrigins, AllowMethods, AllowHeaders, ExposeHeaders, AllowCredentials, MaxAge}).
//
// As on AWS, when a URL has a Cors configuration the edge owns the CORS headers: it answers
// preflight requests (OPTIONS with Origin and Access-Control-Request-Method) itself without
// invoking the function, and on every other response it replaces whatever Access-Control-*
// headers the function returned with the configured ones. Without a configuration (null) the
// function's own headers pass through untouched.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include "net/http_server.h"

namespace geysir::gateway {

// True for a CORS preflight request.
bool IsPreflight(const net::HttpRequest& request);

// The edge's answer to a preflight for a URL whose Cors is `cors` (an object).
net::HttpResponse PreflightResponse(const nlohmann::json& cors, const net::HttpRequest& request);

// Rewrites the Access-Control-* headers of a function's response (cors must be an object).
// `origin` is the request's Origin header, or nullptr.
void ApplyCors(const nlohmann::json& cors, const std::string* origin, net::HttpResponse& response);

}  // namespace geysir::gateway
