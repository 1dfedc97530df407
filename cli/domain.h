// `geysir domain add|list|show|remove|renew`: custom domains and their HTTPS certificates,
// over the native API /geysir/v1/domains (control/services/domains.h).
//
//   geysir domain add NAME (--function FN | --url-id ID) [--challenge http-01|tls-alpn-01]
//                 [--cert PEM --key PEM | --no-tls] [--wait SECONDS]
//   geysir domain list
//   geysir domain show NAME
//   geysir domain remove NAME
//   geysir domain renew NAME [--wait SECONDS]
//
// Global options (--endpoint, --data-dir, --profile, --region) work as for every command.
// --wait polls until the certificate is issued (a new serial for renew) or the attempt failed,
// and prints the CA's reason on failure (exit 1).
//
// Thread safety: single-threaded.
#pragma once

namespace geysir::cli {

// argv starts at "domain". Returns the exit code.
int RunDomainCommand(int argc, char** argv);

}  // namespace geysir::cli
