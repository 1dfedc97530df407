// The `geysir` commands a developer uses every day, over the control API (ControlClient).
//
// Each command writes its result to `out` (what a script would capture: the payload, the URL,
// the table) and progress and errors to `err`, and returns the process exit code: 0 success,
// 1 failure (including a function that raised an error), 2 usage error.
//
// Thread safety: single-threaded; Logs --follow installs a SIGINT handler for its loop.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>

#include "cli/args.h"
#include "cli/control_client.h"
#include "base/status.h"

namespace geysir::cli {

struct Io {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;
  bool in_is_tty = true;
  bool out_is_tty = false;  // a person reads stdout: label values ("Function URL: ...")
};

int Deploy(ControlClient& client, const DeployOptions& options, Io& io);
int List(ControlClient& client, Io& io);
int Invoke(ControlClient& client, const InvokeOptions& options, Io& io);
int Logs(ControlClient& client, const LogsOptions& options, Io& io);
int Delete(ControlClient& client, const NameOptions& options, Io& io);
int Url(ControlClient& client, const NameOptions& options, Io& io);

// Helpers shared with tests (base64 is base/base64.h's).
std::string FormatTimestampMs(int64_t unix_ms);  // "2026-11-27T05:30:00.123Z"

// The JSON bodies deploy sends, exposed so tests can check exactly what goes on the wire.
std::string CreateFunctionBody(const DeployOptions& options, const std::string& zip);
// Empty when no configuration flag was given (then nothing is sent).
std::string UpdateConfigurationBody(const DeployOptions& options);

}  // namespace geysir::cli
