#include "cli/domain.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/config.h"
#include "cli/control_client.h"

namespace geysir::cli {
namespace {

using nlohmann::json;

constexpr const char* kHelp = R"(Usage: geysir domain COMMAND ...

Custom domains served by the gateway, with certificates from the ACME CA (Let's Encrypt by
default; see `geysir server --acme-directory`) or your own PEM files.

  geysir domain add NAME (--function FN | --url-id ID | --api API_ID --stage STAGE [--base-path P])
                    [--challenge http-01|tls-alpn-01] [--cert PEM --key PEM | --no-tls] [--wait SECONDS]
      Route NAME to a function's URL, or to an API Gateway API's stage (under base path P, ""
      for the whole domain; this replaces the domain's other targets: more mappings per domain
      with `aws apigatewayv2 create-api-mapping`). Without --cert, a certificate is requested
      at once (HTTP-01 on the HTTP port by default, or TLS-ALPN-01 on the HTTPS port).
  geysir domain list                 every domain, its certificate status and expiry
  geysir domain show NAME            one domain as JSON (LastError holds the CA's words)
  geysir domain remove NAME          stop serving NAME and delete its certificate and key
  geysir domain renew NAME [--wait SECONDS]
      Order a new certificate now (renewal otherwise happens with a third of the lifetime left).
)";

struct Parsed {
  GlobalOptions global;
  std::string command;
  std::string name;
  std::string function;
  std::string url_id;
  std::string api_id;
  std::string stage;
  std::string base_path;
  std::string challenge;
  std::string cert_file;
  std::string key_file;
  bool no_tls = false;
  int wait_s = -1;
};

int Usage(const std::string& why) {
  std::cerr << "error: " << why << " (see `geysir domain --help`)\n";
  return 2;
}

Result<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DomainPath(const std::string& name) { return "/geysir/v1/domains/" + EncodePathSegment(name); }

std::string Str(const json& j, const char* k) {
  return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
}

std::string FormatTime(int64_t s) {
  if (s <= 0) return "-";
  time_t t = static_cast<time_t>(s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<json> CallJson(ControlClient& client, const std::string& method, const std::string& path,
                      const std::string& body = "") {
  auto r = client.Call(method, path, body);
  if (!r.ok()) return r.status();
  if (!r->ok()) return ApiError(*r);
  if (r->body.empty()) return json::object();
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return Status::Internal("control answered with something that is not JSON");
  return j;
}

// The function URL's id from GetFunctionUrlConfig: "http://<id>.lambda-url.<base>:<port>/".
Result<std::string> UrlIdOf(ControlClient& client, const std::string& function) {
  auto name = NormalizeFunctionName(function);
  if (!name.ok()) return name.status();
  auto j = CallJson(client, "GET", "/2021-10-31/functions/" + EncodePathSegment(*name) + "/url");
  if (!j.ok()) return j.status().Wrap("looking up the URL of " + function + " (create one with `geysir deploy --url`)");
  std::string url = Str(*j, "FunctionUrl");
  auto scheme = url.find("://");
  auto dot = url.find(".lambda-url.");
  if (scheme == std::string::npos || dot == std::string::npos || dot < scheme + 3)
    return Status::Invalid("unexpected FunctionUrl " + url);
  return url.substr(scheme + 3, dot - scheme - 3);
}

// Polls until the certificate is issued with a serial other than `old_serial`, or failed.
int Wait(ControlClient& client, const std::string& name, const std::string& old_serial, int wait_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  for (;;) {
    auto j = CallJson(client, "GET", DomainPath(name));
    if (!j.ok()) {
      std::cerr << "error: " << j.status().message() << "\n";
      return 1;
    }
    std::string status = Str(*j, "Status");
    std::string serial = Str(*j, "Serial");
    if (status == "issued" && serial != old_serial) {
      std::cout << j->dump(2) << "\n";
      return 0;
    }
    if (status == "failed" && (*j)["Failures"].get<int>() > 0) {
      std::cerr << "error: the certificate for " << name << " could not be obtained: " << Str(*j, "LastError") << "\n";
      if (!serial.empty()) std::cerr << "(still serving the certificate with serial " << serial << ")\n";
      return 1;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "error: no certificate for " << name << " after " << wait_s << " s (status " << status << ")\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

int RunDomainCommand(int argc, char** argv) {
  Parsed p;
  auto scanned = ScanSubcommandArgs(argc, argv, {"--no-tls"}, p.global,
                                    [&p](const std::string& a, const std::string& v) -> Status {
    if (a == "--function") p.function = v;
    else if (a == "--url-id") p.url_id = v;
    else if (a == "--api") p.api_id = v;
    else if (a == "--stage") p.stage = v;
    else if (a == "--base-path") p.base_path = v;
    else if (a == "--challenge") p.challenge = v;
    else if (a == "--cert") p.cert_file = v;
    else if (a == "--key") p.key_file = v;
    else if (a == "--wait") {
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 5)
        return Status::Invalid("--wait wants seconds");
      p.wait_s = std::stoi(v);
    } else {
      return Status::Invalid("unknown option " + a);
    }
    return Status::Ok();
  });
  if (!scanned.ok()) return Usage(scanned.status().message());
  if (scanned->help) {
    std::cout << kHelp;
    return 0;
  }
  p.no_tls = !scanned->flags_seen.empty();
  const std::vector<std::string>& positional = scanned->positional;
  if (positional.empty()) {
    std::cout << kHelp;
    return 2;
  }
  p.command = positional[0];
  const bool needs_name = p.command != "list";
  if (needs_name && positional.size() != 2) return Usage("geysir domain " + p.command + " takes one NAME");
  if (!needs_name && positional.size() != 1) return Usage("geysir domain list takes no arguments");
  if (needs_name) p.name = positional[1];

  auto config = ResolveConfig(p.global, ProcessEnv);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 1;
  }
  ControlClient client(*config);

  if (p.command == "list") {
    auto j = CallJson(client, "GET", "/geysir/v1/domains");
    if (!j.ok()) {
      std::cerr << "error: " << j.status().message() << "\n";
      return 1;
    }
    for (const auto& d : (*j)["Domains"]) {
      // "url:<id>", or each API mapping as "/<key> -> <api>/<stage>", or "-" (no target yet).
      std::string target = Str(d, "UrlId").empty() ? "" : "url:" + Str(d, "UrlId");
      if (d.contains("ApiMappings") && d["ApiMappings"].is_array()) {
        for (const auto& m : d["ApiMappings"]) {
          target += (target.empty() ? "" : ",") + std::string("/") + Str(m, "ApiMappingKey") + "->" + Str(m, "ApiId") +
                    "/" + Str(m, "Stage");
        }
      }
      if (target.empty()) target = "-";
      std::cout << Str(d, "DomainName") << "\t" << target << "\t" << Str(d, "Certificate") << "\t" << Str(d, "Status")
                << "\texpires " << FormatTime(d.value("NotAfter", int64_t{0}));
      if (!Str(d, "LastError").empty()) std::cout << "\t" << Str(d, "LastError");
      std::cout << "\n";
    }
    return 0;
  }
  if (p.command == "show") {
    auto j = CallJson(client, "GET", DomainPath(p.name));
    if (!j.ok()) {
      std::cerr << "error: " << j.status().message() << "\n";
      return 1;
    }
    std::cout << j->dump(2) << "\n";
    return 0;
  }
  if (p.command == "remove") {
    auto j = CallJson(client, "DELETE", DomainPath(p.name));
    if (!j.ok()) {
      std::cerr << "error: " << j.status().message() << "\n";
      return 1;
    }
    std::cerr << "Removed " << p.name << "\n";
    return 0;
  }
  if (p.command == "renew") {
    auto before = CallJson(client, "GET", DomainPath(p.name));
    if (!before.ok()) {
      std::cerr << "error: " << before.status().message() << "\n";
      return 1;
    }
    auto j = CallJson(client, "POST", DomainPath(p.name) + "/renew", "{}");
    if (!j.ok()) {
      std::cerr << "error: " << j.status().message() << "\n";
      return 1;
    }
    if (p.wait_s < 0) {
      std::cerr << "Renewal of " << p.name << " started\n";
      return 0;
    }
    return Wait(client, p.name, Str(*before, "Serial"), p.wait_s);
  }
  if (p.command != "add") return Usage("unknown domain command " + p.command);

  json body = json::object();
  if (int(!p.function.empty()) + int(!p.url_id.empty()) + int(!p.api_id.empty()) != 1)
    return Usage("give one of --function, --url-id and --api");
  if (!p.api_id.empty()) {
    if (p.stage.empty()) return Usage("--api needs --stage");
    body["ApiId"] = p.api_id;
    body["Stage"] = p.stage;
    body["BasePath"] = p.base_path;
  } else if (!p.function.empty()) {
    auto id = UrlIdOf(client, p.function);
    if (!id.ok()) {
      std::cerr << "error: " << id.status().message() << "\n";
      return 1;
    }
    body["UrlId"] = *id;
  } else if (!p.url_id.empty()) {
    body["UrlId"] = p.url_id;
  }
  if (!p.challenge.empty()) body["Challenge"] = p.challenge;
  if (p.cert_file.empty() != p.key_file.empty()) return Usage("--cert and --key go together");
  if (!p.cert_file.empty()) {
    auto cert = ReadAll(p.cert_file);
    auto key = ReadAll(p.key_file);
    if (!cert.ok() || !key.ok()) {
      std::cerr << "error: " << (!cert.ok() ? cert.status() : key.status()).message() << "\n";
      return 1;
    }
    body["Certificate"] = "manual";
    body["CertificatePem"] = *cert;
    body["PrivateKeyPem"] = *key;
  } else if (p.no_tls) {
    body["Certificate"] = "none";
  }
  auto j = CallJson(client, "PUT", DomainPath(p.name), body.dump());
  if (!j.ok()) {
    std::cerr << "error: " << j.status().message() << "\n";
    return 1;
  }
  if (p.wait_s >= 0 && Str(*j, "Status") == "pending") return Wait(client, p.name, "", p.wait_s);
  std::cout << j->dump(2) << "\n";
  return 0;
}

}  // namespace geysir::cli
