// API Gateway's custom domain operations, v1 (REST: /domainnames, .../basepathmappings) and v2
// (/v2/domainnames, .../apimappings), answered in AWS's shapes over control's one domain registry
// (control/services/domains.h). So a domain made here is listed by `geysir domain list` and one made by
// the CLI is visible here, and the certificate comes the same way: obtained from the ACME CA when
// the domain is created (or uploaded in CreateDomainName's certificateBody/certificatePrivateKey),
// never on a request.
//
// What AWS has and Geysir does not: ACM certificate ARNs (certificateArn is accepted and
// ignored: the certificate is Geysir's own), edge-optimized endpoints (every domain is served
// like a REGIONAL one, by this gateway), mutual TLS, and tags (accepted, not kept).
#include <nlohmann/json.hpp>

#include "control/services/domains.h"
#include "control/service.h"
#include "control/services/apigateway/apigateway_internal.h"
#include "control/services/protocol.h"
#include "base/log.h"
#include "base/json_bounds.h"

namespace geysir::control::apigw {
namespace {

json ParseBody(const net::HttpRequest& req) {
  if (req.body.empty()) return json::object();
  json j = ParseUntrustedJsonOrDiscarded(req.body);
  if (j.is_discarded() || !j.is_object()) throw ApiException(BadRequest("The request body is not a JSON object"));
  return j;
}

std::string Field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected a string"));
  return it->get<std::string>();
}

void Send(const Responder& resp, int status, const json& body, const std::string& rid) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", rid}};
  if (status != 204) r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  resp->Send(std::move(r));
}

// The registry's Status in API Gateway's words.
[[noreturn]] void Throw(const Status& st) {
  switch (st.code()) {
    case Code::kNotFound: throw ApiException(NotFound(st.message()));
    case Code::kAlreadyExists: throw ApiException(Conflict(st.message()));
    default: throw ApiException(BadRequest(st.message()));
  }
}

DomainRecord GetOr404(DomainRegistry& reg, const std::string& name) {
  auto r = reg.GetDomain(name);
  if (!r.ok()) throw ApiException(NotFound("Invalid domain name identifier specified"));
  return *r;
}

// The registry's certificate state as API Gateway's domainNameStatus.
std::string StatusOf(const DomainRecord& r, bool v2) {
  if (r.status == "issued" || r.status == "none") return "AVAILABLE";
  if (r.status == "failed") return r.serial.empty() ? "PENDING_CERTIFICATE_REIMPORT" : "AVAILABLE";
  return v2 ? "UPDATING" : "PENDING";
}

std::string StatusMessage(const DomainRecord& r) {
  if (!r.last_error.empty()) return "certificate: " + r.last_error;
  if (r.status == "pending") return "obtaining the certificate from the ACME CA";
  return "";
}

json V1Domain(const DomainRecord& r) {
  json d = {{"domainName", r.name},
            {"regionalDomainName", r.name},
            {"endpointConfiguration", {{"types", json::array({"REGIONAL"})}}},
            {"domainNameStatus", StatusOf(r, false)},
            {"securityPolicy", "TLS_1_2"}};
  if (std::string m = StatusMessage(r); !m.empty()) d["domainNameStatusMessage"] = m;
  if (r.not_before_s > 0) {
    d["certificateUploadDate"] = r.not_before_s;
    d["regionalCertificateName"] = r.certificate == "acme" ? "acme:" + r.serial : "uploaded:" + r.serial;
  }
  return d;
}

json V2Domain(const DomainRecord& r) {
  json conf = {{"apiGatewayDomainName", r.name},
               {"domainNameStatus", StatusOf(r, true)},
               {"endpointType", "REGIONAL"},
               {"securityPolicy", "TLS_1_2"}};
  if (std::string m = StatusMessage(r); !m.empty()) conf["domainNameStatusMessage"] = m;
  if (r.not_before_s > 0) {
    conf["certificateUploadDate"] = IsoTimestamp(r.not_before_s * 1000);
    conf["certificateName"] = r.certificate == "acme" ? "acme:" + r.serial : "uploaded:" + r.serial;
  }
  return json{{"apiMappingSelectionExpression", "$request.basepath"},
              {"domainName", r.name},
              {"domainNameConfigurations", json::array({conf})},
              {"tags", json::object()}};
}

json V1Mapping(const ApiMapping& m) {
  json j = {{"basePath", m.key.empty() ? "(none)" : m.key}, {"restApiId", m.api_id}};
  if (!m.stage.empty()) j["stage"] = m.stage;
  return j;
}

json V2Mapping(const ApiMapping& m) {
  return json{{"apiId", m.api_id}, {"apiMappingId", m.id}, {"apiMappingKey", m.key}, {"stage", m.stage}};
}

// The API `id` (REST or HTTP, as `kinds` allows) and whether it has `stage`; AWS's errors if not.
void CheckTarget(ApiGatewayModel::Impl& m, const std::string& id, const std::string& stage, bool rest_only) {
  json doc;
  try {
    doc = m.Load(id, kRest);
  } catch (const ApiException&) {
    if (rest_only) throw ApiException(NotFound("Invalid REST API identifier specified"));
    doc = m.Load(id, kHttp);  // NotFound "Invalid API identifier specified ..."
  }
  if (stage.empty()) return;
  auto stages = doc.find("stages");
  if (stages == doc.end() || !stages->is_object() || !stages->contains(stage))
    throw ApiException(BadRequest("Invalid stage identifier specified"));
}

// CreateDomainName (both versions): a new domain, no target yet; its certificate is requested
// now. v1's certificateBody + certificatePrivateKey (+ certificateChain) upload a certificate.
DomainRecord Create(DomainRegistry& reg, const json& body) {
  DomainSpec spec;
  spec.name = Field(body, "domainName");
  if (spec.name.empty()) throw ApiException(BadRequest("domainName is required"));
  if (reg.GetDomain(spec.name).ok()) throw ApiException(Conflict("The domain name you provided already exists."));
  std::string cert = Field(body, "certificateBody");
  std::string key = Field(body, "certificatePrivateKey");
  if (!cert.empty() || !key.empty()) {
    spec.certificate = "manual";
    spec.cert_pem = cert;
    if (std::string chain = Field(body, "certificateChain"); !chain.empty()) {
      if (!spec.cert_pem.empty() && spec.cert_pem.back() != '\n') spec.cert_pem.push_back('\n');
      spec.cert_pem += chain;
    }
    spec.key_pem = key;
  }
  // Geysir's own knob, as a tag: which ACME challenge proves the name (default http-01).
  if (auto tags = body.find("tags"); tags != body.end() && tags->is_object()) {
    if (auto c = tags->find("geysir:acme-challenge"); c != tags->end() && c->is_string()) spec.challenge = *c;
  }
  auto made = reg.PutDomain(spec);
  if (!made.ok()) Throw(made.status());
  return *made;
}

const ApiMapping* FindKey(const DomainRecord& r, const std::string& key) {
  std::string k = key == "(none)" ? "" : key;
  for (const ApiMapping& m : r.mappings) {
    if (m.key == k) return &m;
  }
  return nullptr;
}

}  // namespace

bool HandleDomainNames(ApiGatewayModel::Impl& m, DomainRegistry& reg, net::HttpRequest& req, const std::vector<std::string>& seg,
                       const Responder& resp, const std::string& rid) {
  const bool v2 = seg.size() >= 2 && seg[0] == "v2" && seg[1] == "domainnames";
  if (!v2 && !(!seg.empty() && seg[0] == "domainnames")) return false;
  const size_t base = v2 ? 2 : 1;
  const size_t n = seg.size() - base;  // segments after ".../domainnames"
  const std::string& method = req.method;
  auto unknown = [&]() -> bool {
    AwsError e = NotFound("No API Gateway operation " + method + " " + req.path);
    throw ApiException(e);
  };

  if (n == 0) {
    if (method == "POST") {
      DomainRecord r = Create(reg, ParseBody(req));
      Send(resp, 201, v2 ? V2Domain(r) : V1Domain(r), rid);
      return true;
    }
    if (method == "GET") {
      auto all = reg.ListDomains();
      if (!all.ok()) Throw(all.status());
      json items = json::array();
      for (const DomainRecord& r : *all) items.push_back(v2 ? V2Domain(r) : V1Domain(r));
      Send(resp, 200, json{{v2 ? "items" : "item", items}}, rid);
      return true;
    }
    return unknown();
  }
  const std::string& name = seg[base];
  if (n == 1) {
    if (method == "GET") {
      DomainRecord r = GetOr404(reg, name);
      Send(resp, 200, v2 ? V2Domain(r) : V1Domain(r), rid);
      return true;
    }
    if (method == "DELETE") {
      GetOr404(reg, name);
      if (Status st = reg.DeleteDomain(name); !st.ok()) Throw(st);
      Send(resp, v2 ? 204 : 202, json::object(), rid);
      return true;
    }
    return unknown();
  }
  const std::string& coll = seg[base + 1];
  if ((v2 && coll != "apimappings") || (!v2 && coll != "basepathmappings")) return unknown();
  DomainRecord r = GetOr404(reg, name);

  if (n == 2 && method == "GET") {
    json items = json::array();
    for (const ApiMapping& am : r.mappings) items.push_back(v2 ? V2Mapping(am) : V1Mapping(am));
    Send(resp, 200, json{{v2 ? "items" : "item", items}}, rid);
    return true;
  }
  if (n == 2 && method == "POST") {
    json body = ParseBody(req);
    ApiMapping am;
    if (v2) {
      am.api_id = Field(body, "apiId");
      am.stage = Field(body, "stage");
      am.key = Field(body, "apiMappingKey");
      if (am.api_id.empty() || am.stage.empty()) throw ApiException(BadRequest("apiId and stage are required"));
    } else {
      am.api_id = Field(body, "restApiId");
      am.stage = Field(body, "stage");
      am.key = Field(body, "basePath");
      if (am.stage == "(none)") am.stage.clear();  // callers name the stage after the base path
      if (am.api_id.empty()) throw ApiException(BadRequest("restApiId is required"));
    }
    CheckTarget(m, am.api_id, am.stage, !v2);
    auto added = reg.AddMapping(name, am);
    if (!added.ok()) Throw(added.status());
    Send(resp, 201, v2 ? V2Mapping(*added) : V1Mapping(*added), rid);
    return true;
  }
  if (n == 3) {
    const std::string& id = seg[base + 2];
    const ApiMapping* found = nullptr;
    if (v2) {
      for (const ApiMapping& am : r.mappings) {
        if (am.id == id) found = &am;
      }
    } else {
      found = FindKey(r, id);
    }
    if (found == nullptr) {
      throw ApiException(NotFound(v2 ? "Invalid API mapping identifier specified" : "Invalid base path mapping identifier specified"));
    }
    if (method == "GET") {
      Send(resp, 200, v2 ? V2Mapping(*found) : V1Mapping(*found), rid);
      return true;
    }
    if (method == "DELETE") {
      if (Status st = reg.DeleteMapping(name, found->id); !st.ok()) Throw(st);
      Send(resp, v2 ? 204 : 202, json::object(), rid);
      return true;
    }
  }
  return unknown();
}

}  // namespace geysir::control::apigw
