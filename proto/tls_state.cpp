#include "proto/tls_state.h"

namespace geysir::proto {

using nlohmann::json;

void to_json(json& j, const TlsPemPair& p) { j = json{{"cert_pem", p.cert_pem}, {"key_pem", p.key_pem}}; }

void from_json(const json& j, TlsPemPair& p) {
  p.cert_pem = j.at("cert_pem").get<std::string>();
  p.key_pem = j.at("key_pem").get<std::string>();
}

void to_json(json& j, const CustomDomainRoute& d) {
  j = json{{"name", d.name}, {"url_id", d.url_id}, {"api_id", d.api_id}, {"stage", d.stage}, {"base_path", d.base_path}};
}

void from_json(const json& j, CustomDomainRoute& d) {
  d.name = j.at("name").get<std::string>();
  d.url_id = j.value("url_id", "");
  d.api_id = j.value("api_id", "");
  d.stage = j.value("stage", "");
  d.base_path = j.value("base_path", "");
}

void to_json(json& j, const TlsState& s) {
  j = json{{"generation", s.generation},
           {"certificates", s.certificates},
           {"http01", s.http01},
           {"alpn01", s.alpn01},
           {"domains", s.domains}};
}

// Fields added later must have defaults (older controls omit them).
void from_json(const json& j, TlsState& s) {
  s.generation = j.value("generation", uint64_t{0});
  s.certificates = j.value("certificates", std::vector<TlsPemPair>{});
  s.http01 = j.value("http01", std::map<std::string, std::string>{});
  s.alpn01 = j.value("alpn01", std::map<std::string, TlsPemPair>{});
  s.domains = j.value("domains", std::vector<CustomDomainRoute>{});
}

}  // namespace geysir::proto
