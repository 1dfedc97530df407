// Custom domains and their certificates: the registry control keeps of which host names Geysir
// serves besides its own (<url-id>.lambda-url.<base>, <api-id>.execute-api.<base>), what each
// one routes to, and the TLS certificate that is served for it.
//
//   domain -> target        a function URL (url_id), or API mappings: base path -> API + stage
//                           (API Gateway's CreateApiMapping / CreateBasePathMapping; several per
//                           domain, the longest matching base path wins, "" = the whole domain)
//   domain -> certificate   obtained from the ACME CA when the domain is added (never because a
//                           request for an unknown host arrived), renewed when a third of its
//                           lifetime is left, or supplied by the operator as PEM files.
//
// Storage: the table lives in SQLite (track "domains"); certificates and keys are files under
// <data>/tls/ (directory 0700, files 0600), never logged. Control pushes the gateway what it
// needs (certificates, keys, ACME challenge answers, the host -> target map) over control.sock
// as a "tls" frame (docs/wire-formats.md).
//
// How another part of control reaches it: the registry is a Service (signing name
// "geysir-domains"; it also serves the native API /geysir/v1/domains that `geysir domain
// add|list|remove` calls), and control/services/registry.cpp hands it as a DomainRegistry& to
// the services that use it (API Gateway's domain names and mappings).
//
// Thread safety: loop thread only, like every Service. Issuance and renewal run on a worker
// thread of their own (blocking HTTP to the CA) and report back to the loop; callers of this
// interface never see that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "control/service.h"

namespace geysir::control {

// One API mapping (API Gateway v2's ApiMapping, v1's BasePathMapping): requests whose path starts
// with `key`'s segments go to `stage` of `api_id`, with the key stripped.
struct ApiMapping {
  std::string id;                   // apiMappingId: [a-z0-9]{6}, made by AddMapping
  std::string api_id;
  std::string stage;                // "": callers name the stage after the base path (REST only)
  std::string key;                  // "" (the whole domain), "v1", "orders/v1": no leading or trailing '/'
};

// What an operator (CLI, native API) or API Gateway's CreateDomainName/CreateApiMapping asks for.
struct DomainSpec {
  std::string name;                 // "api.example.com": lower-cased and validated by PutDomain
  // At most one target. None (CreateDomainName) keeps an existing domain's target; a function
  // URL or an API replaces every target it had.
  std::string url_id;               // a function URL's id (the label before ".lambda-url.")
  std::string api_id;               // an API Gateway API ...
  std::string stage;                // ... and its stage
  std::string base_path;            // ... under this mapping key ("" = the whole domain)
  // Certificate: "acme" (obtain and renew from the configured CA), "manual" (cert_pem/key_pem
  // below, operator-supplied), "none" (plain HTTP only).
  std::string certificate = "acme";
  std::string challenge = "http-01";  // "http-01" or "tls-alpn-01"
  std::string cert_pem;             // manual: leaf first, then the chain
  std::string key_pem;              // manual: the leaf's private key (never logged or returned)
};

struct DomainRecord {
  std::string name;
  std::string url_id;
  std::vector<ApiMapping> mappings; // by key; empty when url_id is set
  std::string certificate;          // "acme" | "manual" | "none"
  std::string challenge;
  // "pending" (no certificate yet, issuance running or scheduled), "issued", "failed" (the
  // last attempt failed: see last_error; an older certificate, if any, keeps serving),
  // "none" (certificate "none").
  std::string status;
  std::string last_error;           // the CA's own words when it refused, "" otherwise
  std::string serial;               // hex serial of the certificate being served, "" if none
  int64_t not_before_s = 0;         // of that certificate (unix seconds), 0 if none
  int64_t not_after_s = 0;
  int64_t renew_at_s = 0;           // when renewal is due (or the next retry after a failure)
  int failures = 0;                 // consecutive failed attempts (drives the back-off)
  int64_t created_s = 0;
};

class DomainRegistry {
 public:
  virtual ~DomainRegistry() = default;
  // Creates or replaces a domain. With certificate "acme", issuance starts in the background
  // and the record comes back "pending"; with "manual" the PEMs are checked (key matches the
  // leaf, the leaf names the domain) and served at once. kInvalidArgument names what is wrong.
  virtual Result<DomainRecord> PutDomain(const DomainSpec& spec) = 0;
  // Changes only the target of an existing domain, as PutDomain would; kNotFound if unknown.
  virtual Result<DomainRecord> SetTarget(std::string_view name, const DomainSpec& target) = 0;
  // Adds an API mapping (its id is made here). kNotFound: no such domain; kAlreadyExists: the
  // key is taken; kInvalidArgument: a bad key, or the domain routes to a function URL.
  virtual Result<ApiMapping> AddMapping(std::string_view name, ApiMapping mapping) = 0;
  // kNotFound when the domain or the mapping does not exist.
  virtual Status DeleteMapping(std::string_view name, std::string_view mapping_id) = 0;
  virtual Result<DomainRecord> GetDomain(std::string_view name) = 0;
  virtual Result<std::vector<DomainRecord>> ListDomains() = 0;
  // Stops serving the domain and deletes its certificate and key. kNotFound if unknown.
  virtual Status DeleteDomain(std::string_view name) = 0;
  // Starts an ACME renewal now whatever the certificate's age (`geysir domain renew`).
  virtual Status RenewNow(std::string_view name) = 0;
};

// The Service (control/service.h) that is the registry; registry.cpp adds it to the services
// and hands it to those that need a DomainRegistry.
class DomainsService : public Service, public DomainRegistry {};

std::unique_ptr<DomainsService> MakeDomainsService(ServiceHost& host);

}  // namespace geysir::control
