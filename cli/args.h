// Command-line parsing for `geysir`: turns argv into one command with its typed options.
//
// The grammar is `geysir [global options] COMMAND [arguments and options]`; global options
// (--endpoint, --data-dir, --profile, --region) are accepted before or after the command.
// Options take "--name value" or "--name=value"; repeatable ones (--env) collect every value.
// Parsing only checks shape (known options, required arguments, numbers); it reads no files
// and touches no network, so tests drive it directly.
//
// Thread safety: pure functions over values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace geysir::cli {

struct GlobalOptions {
  std::optional<std::string> endpoint;  // --endpoint URL
  std::optional<std::string> data_dir;  // --data-dir DIR
  std::optional<std::string> profile;   // --profile NAME
  std::optional<std::string> region;    // --region REGION
};

struct DeployOptions {
  std::string path;  // directory or .zip
  std::string name;
  std::optional<std::string> handler;  // required when the function is created
  std::optional<std::string> runtime;  // default python3.11 on create
  std::optional<int> memory_mb;
  std::optional<int> timeout_s;
  std::optional<std::map<std::string, std::string>> env;  // set when any --env was given
  bool url = false;
};

struct InvokeOptions {
  std::string name;
  std::optional<std::string> payload;  // nullopt: read stdin when it is not a terminal
  bool log = false;
};

struct LogsOptions {
  std::string name;
  bool follow = false;
  int64_t since_ms = 10 * 60 * 1000;  // --since, default 10 minutes
  int limit = 1000;
};

struct NameOptions {
  std::string name;
};

enum class Command { kHelp, kVersion, kServer, kDeploy, kList, kInvoke, kLogs, kDelete, kUrl };

struct CommandLine {
  Command command = Command::kHelp;
  std::string help_topic;  // for kHelp: "" (overview) or a command name
  GlobalOptions global;
  DeployOptions deploy;
  InvokeOptions invoke;
  LogsOptions logs;
  NameOptions name;  // delete, url
};

// Parses argv (argv[0] is the program). Errors are usage errors (exit code 2), their message
// says what was wrong and names the command's --help.
Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// A function name as the CLI sends it: a plain name (1-64 of letters, digits, '-', '_') or
// the name taken out of a function ARN ("arn:aws:lambda:<region>:<account>:function:<name>").
// Names are never percent-encoded on the wire: libcurl's SigV4 signs the path as sent, while
// AWS (and control) sign the encoded path again, so an encoded path would not verify.
Result<std::string> NormalizeFunctionName(const std::string& name_or_arn);

// "10m", "90s", "2h", "1d", "500ms" -> milliseconds.
Result<int64_t> ParseDuration(const std::string& text);

// The argv walk of the subcommands that parse their own options (`geysir domain`,
// `geysir events|schedules`): words not starting with "--" are positional; "-h"/"--help" sets
// `help`; each name in `flags` takes no value and is recorded in `flags_seen`; every other
// option takes one ("--x v" or "--x=v"): the global options fill `global`, the rest go to
// `on_option`, which returns an error to refuse the value or the option ("unknown option --x").
// Errors: kInvalidArgument, the message fit for the usage line ("--x needs a value").
struct SubcommandArgs {
  std::vector<std::string> positional;
  std::vector<std::string> flags_seen;
  bool help = false;
};
using OptionHandler = std::function<Status(const std::string& name, const std::string& value)>;
Result<SubcommandArgs> ScanSubcommandArgs(int argc, char** argv, const std::vector<std::string>& flags,
                                          GlobalOptions& global, const OptionHandler& on_option);

// The overview (`geysir --help`) and each command's help text.
std::string HelpText(const std::string& command);

}  // namespace geysir::cli
