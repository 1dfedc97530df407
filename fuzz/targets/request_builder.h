// Builds a net::HttpRequest from fuzz bytes, the shape the HTTP server hands to handlers:
//   line 1: method   line 2: request-target   then "Name: value" lines up to an empty line,
//   then the body. A seed written this way reads like the request it stands for.
#pragma once

#include <string>

#include "fuzz/targets/fuzz_input.h"
#include "net/http_server.h"

namespace geysir::fuzz {

inline net::HttpRequest RequestFrom(FuzzInput& in) {
  net::HttpRequest r;
  r.method = std::string(in.Line());
  r.target = std::string(in.Line());
  size_t q = r.target.find('?');
  r.path = r.target.substr(0, q);
  r.query = q == std::string::npos ? "" : r.target.substr(q + 1);
  for (int i = 0; i < 64 && !in.empty(); ++i) {
    std::string_view line = in.Line();
    if (line.empty()) break;
    size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.emplace_back(std::string(name), std::string(value));
  }
  r.body = std::string(in.Rest());
  r.remote_addr = "203.0.113.7";
  r.remote_port = 40000;
  r.received_at_ms = 1'700'000'000'000;
  return r;
}

}  // namespace geysir::fuzz
