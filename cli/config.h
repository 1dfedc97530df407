// Where the CLI finds the control API and the key pair to sign with.
//
// Endpoint: --endpoint, else env GEYSIR_ENDPOINT, else "control_endpoint" of
// <data-dir>/run/server.json (written by `geysir server`), with the data directory from
// --data-dir, env GEYSIR_DATA_DIR or /var/lib/geysir.
// Credentials: an explicit --profile must exist in the credentials file; otherwise profile
// "geysir", then "default" of the credentials file (server.json's "credentials_file", else
// <data-dir>/credentials), then env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. The server's own
// file wins over the environment on purpose: a developer's real AWS keys in the environment
// must not be sent to a local Geysir by accident.
//
// Thread safety: pure functions, except that ResolveConfig reads files and the environment.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "cli/args.h"
#include "base/status.h"

namespace geysir::cli {

struct AccessKey {
  std::string access_key_id;
  std::string secret_access_key;
};

struct ClientConfig {
  std::string endpoint;  // "http://127.0.0.1:9000", no trailing slash
  std::string region;    // signing region
  AccessKey key;
  std::string key_source;  // "profile geysir in /var/lib/geysir/credentials", for error messages
};

// Profiles of an AWS shared-credentials (INI) file: section name -> key -> value. Accepts
// "[name]" and "[profile name]", '#' and ';' comments, whitespace around '='.
std::map<std::string, std::map<std::string, std::string>> ParseIni(const std::string& text);

// The key pair of `profile`, or nullopt when the profile or one of its two keys is missing.
std::optional<AccessKey> KeyFromProfile(const std::map<std::string, std::map<std::string, std::string>>& ini,
                                        const std::string& profile);

using GetEnv = std::function<std::optional<std::string>(const std::string&)>;

// Resolves endpoint, region and key as described above. `getenv` is injected for tests.
Result<ClientConfig> ResolveConfig(const GlobalOptions& global, const GetEnv& getenv);

// The process environment.
std::optional<std::string> ProcessEnv(const std::string& name);

}  // namespace geysir::cli
