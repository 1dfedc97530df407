#include "cli/config.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace geysir::cli {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Sys(errno, "open " + path, errno == ENOENT ? Code::kNotFound : Code::kPermissionDenied);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::map<std::string, std::map<std::string, std::string>> ParseIni(const std::string& text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      if (section.rfind("profile ", 0) == 0) section = Trim(section.substr(8));
      out[section];
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    out[section][Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
  }
  return out;
}

std::optional<AccessKey> KeyFromProfile(const std::map<std::string, std::map<std::string, std::string>>& ini,
                                        const std::string& profile) {
  auto it = ini.find(profile);
  if (it == ini.end()) return std::nullopt;
  auto id = it->second.find("aws_access_key_id");
  auto secret = it->second.find("aws_secret_access_key");
  if (id == it->second.end() || secret == it->second.end() || id->second.empty() || secret->second.empty())
    return std::nullopt;
  return AccessKey{id->second, secret->second};
}

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

Result<ClientConfig> ResolveConfig(const GlobalOptions& global, const GetEnv& getenv) {
  ClientConfig cfg;
  std::string data_dir = global.data_dir.value_or(getenv("GEYSIR_DATA_DIR").value_or("/var/lib/geysir"));
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  const std::string server_json_path = data_dir + "/run/server.json";

  nlohmann::json server = nlohmann::json::object();
  auto server_text = ReadFile(server_json_path);
  if (server_text.ok()) {
    server = nlohmann::json::parse(*server_text, nullptr, /*allow_exceptions=*/false);
    if (!server.is_object()) {
      return Status::Invalid(server_json_path + " is not a JSON object; is `geysir server` writing it?");
    }
  }

  if (global.endpoint) {
    cfg.endpoint = *global.endpoint;
  } else if (auto e = getenv("GEYSIR_ENDPOINT")) {
    cfg.endpoint = *e;
  } else if (server.contains("control_endpoint") && server["control_endpoint"].is_string()) {
    cfg.endpoint = server["control_endpoint"].get<std::string>();
  } else if (!server_text.ok()) {
    return Status::Unavailable("cannot find the Geysir control endpoint: " + server_text.status().message() +
                               ". Is `geysir server` running with --data-dir " + data_dir +
                               "? Or pass --endpoint URL (or set GEYSIR_ENDPOINT).");
  } else {
    return Status::Invalid(server_json_path + " has no \"control_endpoint\"; pass --endpoint URL.");
  }
  while (!cfg.endpoint.empty() && cfg.endpoint.back() == '/') cfg.endpoint.pop_back();
  if (cfg.endpoint.rfind("http://", 0) != 0 && cfg.endpoint.rfind("https://", 0) != 0) {
    return Status::Invalid("endpoint must start with http:// or https://, got '" + cfg.endpoint + "'");
  }

  if (global.region) cfg.region = *global.region;
  else if (auto r = getenv("AWS_REGION")) cfg.region = *r;
  else if (auto r2 = getenv("AWS_DEFAULT_REGION")) cfg.region = *r2;
  else if (server.contains("region") && server["region"].is_string()) cfg.region = server["region"].get<std::string>();
  else cfg.region = "us-east-1";

  std::string credentials_path = data_dir + "/credentials";
  if (server.contains("credentials_file") && server["credentials_file"].is_string())
    credentials_path = server["credentials_file"].get<std::string>();
  auto credentials_text = ReadFile(credentials_path);
  auto ini = credentials_text.ok() ? ParseIni(*credentials_text)
                                   : std::map<std::string, std::map<std::string, std::string>>{};

  if (global.profile) {
    if (!credentials_text.ok()) {
      return Status::Error(Code::kPermissionDenied, "cannot read credentials for --profile " + *global.profile +
                                                        ": " + credentials_text.status().message());
    }
    auto key = KeyFromProfile(ini, *global.profile);
    if (!key) {
      return Status::Invalid("profile '" + *global.profile + "' with aws_access_key_id and aws_secret_access_key "
                             "not found in " + credentials_path);
    }
    cfg.key = *key;
    cfg.key_source = "profile " + *global.profile + " in " + credentials_path;
    return cfg;
  }
  for (const char* profile : {"geysir", "default"}) {
    if (auto key = KeyFromProfile(ini, profile)) {
      cfg.key = *key;
      cfg.key_source = std::string("profile ") + profile + " in " + credentials_path;
      return cfg;
    }
  }
  auto id = getenv("AWS_ACCESS_KEY_ID");
  auto secret = getenv("AWS_SECRET_ACCESS_KEY");
  if (id && secret) {
    cfg.key = AccessKey{*id, *secret};
    cfg.key_source = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY";
    return cfg;
  }
  std::string why = credentials_text.ok() ? credentials_path + " has no profile 'geysir' or 'default'"
                                          : credentials_text.status().message();
  return Status::Error(Code::kPermissionDenied,
                       "no credentials: " + why +
                           ", and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set. The server writes its "
                           "admin key to <data-dir>/credentials (readable by root only); pass --data-dir or run "
                           "as a user who can read it.");
}

}  // namespace geysir::cli
