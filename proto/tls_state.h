// The "tls" frame (control -> gateway on control.sock) and its reply "tls_applied": everything
// the gateway needs to terminate TLS for custom domains and to answer ACME challenges, pushed
// whole on subscribe and after every change (docs/wire-formats.md, "tls").
//
//   certificates  PEM chains + keys the HTTPS listener serves, chosen per handshake by SNI
//   http01        ACME HTTP-01 answers: token -> key authorization, served at
//                 /.well-known/acme-challenge/<token> on the HTTP port
//   alpn01        ACME TLS-ALPN-01 answers: host -> self-signed challenge certificate, served
//                 to handshakes that offer ALPN "acme-tls/1" on the HTTPS port
//   domains       custom host -> target (a function URL id, or an API id + stage)
//
// The gateway answers each applied frame with {"type":"tls_applied","generation":N} so that
// control knows a challenge answer is being served before it asks the CA to validate it.
// Private keys travel only over control.sock (a 0750 directory shared with the gateway's
// group) and are never logged on either side.
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace geysir::proto {

inline constexpr const char* kMsgTls = "tls";
inline constexpr const char* kMsgTlsApplied = "tls_applied";

struct TlsPemPair {
  std::string cert_pem;  // leaf first, then the chain
  std::string key_pem;
};

struct CustomDomainRoute {
  std::string name;       // lower-case host name
  std::string url_id;     // function URL target, or ""
  std::string api_id;     // API target, or ""
  std::string stage;
  std::string base_path;
};

struct TlsState {
  uint64_t generation = 0;
  std::vector<TlsPemPair> certificates;
  std::map<std::string, std::string> http01;
  std::map<std::string, TlsPemPair> alpn01;
  std::vector<CustomDomainRoute> domains;
};

void to_json(nlohmann::json& j, const TlsPemPair& p);
void from_json(const nlohmann::json& j, TlsPemPair& p);
void to_json(nlohmann::json& j, const CustomDomainRoute& d);
void from_json(const nlohmann::json& j, CustomDomainRoute& d);
void to_json(nlohmann::json& j, const TlsState& s);
void from_json(const nlohmann::json& j, TlsState& s);

}  // namespace geysir::proto
