#include "cli/args.h"

#include <cctype>
#include <charconv>
#include <set>
#include <algorithm>
#include <utility>

namespace geysir::cli {
namespace {

constexpr const char* kOverview = R"(geysir: deploy and run Python functions on a Geysir server (AWS Lambda compatible)

Usage: geysir [global options] COMMAND [arguments]

Commands:
  server                 start the platform on this machine (see `geysir server --help`)
  deploy PATH            create or update a function from a directory or a .zip
  list                   list functions
  invoke NAME [JSON]     call a function and print what it returned
  logs NAME              print a function's logs (--follow to keep watching)
  url NAME               print a function's URL
  delete NAME            delete a function

Global options (before or after the command):
  --endpoint URL         control API endpoint (env GEYSIR_ENDPOINT; default: from
                         <data-dir>/run/server.json)
  --data-dir DIR         the server's data directory (env GEYSIR_DATA_DIR, default /var/lib/geysir)
  --profile NAME         profile in the credentials file (default: "geysir", then "default";
                         else env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
  --region REGION        signing region (env AWS_REGION, default us-east-1)
  -h, --help             show help (`geysir COMMAND --help` for a command)
  --version              print the version

Exit status: 0 on success, 1 when the operation failed (or the function raised an error),
2 on a usage error.
)";

constexpr const char* kDeployHelp = R"(Usage: geysir deploy PATH --name NAME --handler MODULE.FUNCTION [options]

Packages PATH (a directory, zipped with relative paths and exec bits, without __pycache__ and
.git; or a ready .zip file) and creates the function, or, when it exists, updates its code and
then the configuration given by the flags. Waits until the function is ready.

Options:
  --name NAME            function name (required)
  --handler H            handler, e.g. app.handler (required when creating)
  --runtime R            runtime (default python3.11)
  --memory MB            memory limit in MB (128..10240)
  --timeout S            timeout in seconds (1..900)
  --env K=V              environment variable; repeat for more (replaces all variables)
  --url                  create a function URL (AuthType NONE) if there is none; print it
)";

constexpr const char* kListHelp = R"(Usage: geysir list

Lists the functions: name, runtime, memory, timeout, handler and last change.
)";

constexpr const char* kInvokeHelp = R"(Usage: geysir invoke NAME [JSON | --payload JSON] [--log]

Invokes the function synchronously and prints its response payload on stdout. Without a
payload the event is read from stdin when stdin is not a terminal, else it is {}.

Options:
  --payload JSON         the event, as JSON (or give it as the argument after NAME)
  --log                  print the tail of the invocation's log on stderr

Exits 1 when the function raised an error (the error object is still printed).
)";

constexpr const char* kLogsHelp = R"(Usage: geysir logs NAME [--since DURATION] [--follow]

Prints the function's log lines (its output and the START/END/REPORT lines).

Options:
  --since DURATION       how far back to start: 30s, 10m, 2h, 1d (default 10m)
  --follow, -f           keep printing new lines as they arrive (Ctrl-C to stop)
  --limit N              lines per request (default 1000)
)";

constexpr const char* kUrlHelp = R"(Usage: geysir url NAME

Prints the function's URL (create one with `geysir deploy --url`).
)";

constexpr const char* kDeleteHelp = R"(Usage: geysir delete NAME

Deletes the function, its URL and its versions.
)";

struct Spec {
  std::set<std::string> valued;    // options that take a value
  std::set<std::string> flags;     // boolean options
  std::set<std::string> repeated;  // valued options that may repeat
};

struct Raw {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;
  bool help = false;
};

Status Usage(const std::string& command, const std::string& message) {
  std::string hint = command.empty() ? "geysir --help" : "geysir " + command + " --help";
  return Status::Invalid(message + " (see `" + hint + "`)");
}

const std::set<std::string> kGlobalValued = {"--endpoint", "--data-dir", "--profile", "--region"};

Result<Raw> Tokenize(const std::vector<std::string>& args, size_t start, const std::string& command,
                     const Spec& spec, GlobalOptions* global) {
  Raw raw;
  bool only_positional = false;
  for (size_t i = start; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a.size() < 2 || a[0] != '-') {
      raw.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      raw.help = true;
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    if (name == "-f" && spec.flags.count("--follow")) name = "--follow";
    bool is_global = kGlobalValued.count(name) > 0;
    if (is_global || spec.valued.count(name)) {
      if (!value) {
        if (i + 1 >= args.size()) return Usage(command, name + " needs a value");
        value = args[++i];
      }
      if (is_global) {
        if (name == "--endpoint") global->endpoint = *value;
        if (name == "--data-dir") global->data_dir = *value;
        if (name == "--profile") global->profile = *value;
        if (name == "--region") global->region = *value;
        continue;
      }
      auto& slot = raw.values[name];
      if (!slot.empty() && !spec.repeated.count(name)) return Usage(command, name + " given twice");
      slot.push_back(*value);
      continue;
    }
    if (spec.flags.count(name)) {
      if (value) return Usage(command, name + " takes no value");
      raw.flags.insert(name);
      continue;
    }
    return Usage(command, "unknown option " + name + (command.empty() ? "" : " for `geysir " + command + "`"));
  }
  return raw;
}

std::optional<std::string> One(const Raw& raw, const std::string& name) {
  auto it = raw.values.find(name);
  if (it == raw.values.end() || it->second.empty()) return std::nullopt;
  return it->second.front();
}

Result<int> ParseInt(const std::string& command, const std::string& option, const std::string& text, int lo,
                     int hi) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    return Usage(command, option + " must be a whole number from " + std::to_string(lo) + " to " +
                              std::to_string(hi) + ", got '" + text + "'");
  }
  return v;
}

Status ExactlyOneName(const std::string& command, const Raw& raw, std::string* name) {
  if (raw.positional.empty()) return Usage(command, "`geysir " + command + "` needs a function NAME");
  if (raw.positional.size() > 1) return Usage(command, "unexpected argument '" + raw.positional[1] + "'");
  auto normalized = NormalizeFunctionName(raw.positional[0]);
  if (!normalized.ok()) return Usage(command, normalized.status().message());
  *name = *normalized;
  return Status::Ok();
}

}  // namespace

Result<std::string> NormalizeFunctionName(const std::string& name_or_arn) {
  std::string name = name_or_arn;
  if (name.rfind("arn:", 0) == 0) {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    std::vector<std::string> parts;
    size_t pos = 0;
    while (parts.size() < 16) {
      size_t colon = name.find(':', pos);
      parts.push_back(name.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
      if (colon == std::string::npos) break;
      pos = colon + 1;
    }
    if (parts.size() < 7 || parts[2] != "lambda" || parts[5] != "function") {
      return Status::Invalid("'" + name_or_arn + "' is not a Lambda function ARN");
    }
    if (parts.size() > 7 && parts[7] != "$LATEST") {
      return Status::Invalid("'" + name_or_arn + "' names a version or alias; the geysir CLI works on $LATEST");
    }
    name = parts[6];
  }
  bool valid = !name.empty() && name.size() <= 64;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) valid = false;
  }
  if (!valid) {
    return Status::Invalid("'" + name_or_arn + "' is not a valid function name (1 to 64 letters, digits, '-' or '_')");
  }
  return name;
}

Result<int64_t> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return Status::Invalid("not a duration: '" + text + "' (try 30s, 10m, 2h, 1d)");
  int64_t n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s" || unit.empty()) scale = 1000;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit == "d") scale = 86'400'000;
  else return Status::Invalid("not a duration: '" + text + "' (try 30s, 10m, 2h, 1d)");
  return n * scale;
}

std::string HelpText(const std::string& command) {
  if (command == "deploy") return kDeployHelp;
  if (command == "list") return kListHelp;
  if (command == "invoke") return kInvokeHelp;
  if (command == "logs") return kLogsHelp;
  if (command == "url") return kUrlHelp;
  if (command == "delete") return kDeleteHelp;
  return kOverview;
}

Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine cl;
  // Global options may precede the command; find the first word that is not one of them.
  size_t i = 1;
  while (i < args.size()) {
    const std::string& a = args[i];
    if (kGlobalValued.count(a)) {
      if (i + 1 >= args.size()) return Usage("", a + " needs a value");
      i += 2;
      continue;
    }
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos && kGlobalValued.count(a.substr(0, a.find('=')))) {
      ++i;
      continue;
    }
    break;
  }
  std::vector<std::string> leading(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
  auto lead = Tokenize(leading, 1, "", Spec{}, &cl.global);
  if (!lead.ok()) return lead.status();

  if (i >= args.size()) {
    cl.command = Command::kHelp;
    return cl;
  }
  const std::string command = args[i];
  if (command == "-h" || command == "--help" || command == "help") {
    cl.command = Command::kHelp;
    if (command == "help" && i + 1 < args.size()) cl.help_topic = args[i + 1];
    return cl;
  }
  if (command == "--version" || command == "version") {
    cl.command = Command::kVersion;
    return cl;
  }
  if (command == "server") {
    cl.command = Command::kServer;
    return cl;
  }

  Spec spec;
  if (command == "deploy") {
    spec.valued = {"--name", "--handler", "--runtime", "--memory", "--timeout", "--env"};
    spec.repeated = {"--env"};
    spec.flags = {"--url"};
  } else if (command == "invoke") {
    spec.valued = {"--payload"};
    spec.flags = {"--log"};
  } else if (command == "logs") {
    spec.valued = {"--since", "--limit"};
    spec.flags = {"--follow"};
  } else if (command == "list" || command == "url" || command == "delete") {
  } else {
    return Usage("", "unknown command '" + command + "'");
  }

  auto raw_or = Tokenize(args, i + 1, command, spec, &cl.global);
  if (!raw_or.ok()) return raw_or.status();
  const Raw& raw = *raw_or;
  if (raw.help) {
    cl.command = Command::kHelp;
    cl.help_topic = command;
    return cl;
  }

  if (command == "deploy") {
    cl.command = Command::kDeploy;
    DeployOptions& d = cl.deploy;
    if (raw.positional.empty()) return Usage(command, "`geysir deploy` needs a PATH (a directory or a .zip)");
    if (raw.positional.size() > 1) return Usage(command, "unexpected argument '" + raw.positional[1] + "'");
    d.path = raw.positional[0];
    auto name = One(raw, "--name");
    if (!name || name->empty()) return Usage(command, "--name is required");
    auto normalized = NormalizeFunctionName(*name);
    if (!normalized.ok()) return Usage(command, normalized.status().message());
    d.name = *normalized;
    d.handler = One(raw, "--handler");
    d.runtime = One(raw, "--runtime");
    if (auto m = One(raw, "--memory")) {
      auto v = ParseInt(command, "--memory", *m, 128, 10240);
      if (!v.ok()) return v.status();
      d.memory_mb = *v;
    }
    if (auto t = One(raw, "--timeout")) {
      auto v = ParseInt(command, "--timeout", *t, 1, 900);
      if (!v.ok()) return v.status();
      d.timeout_s = *v;
    }
    if (auto it = raw.values.find("--env"); it != raw.values.end()) {
      d.env.emplace();
      for (const auto& kv : it->second) {
        size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) return Usage(command, "--env wants KEY=VALUE, got '" + kv + "'");
        (*d.env)[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    }
    d.url = raw.flags.count("--url") > 0;
  } else if (command == "invoke") {
    cl.command = Command::kInvoke;
    // `geysir invoke NAME '{"k": 1}'` is accepted as a shorthand for --payload.
    Raw names = raw;
    std::optional<std::string> positional_payload;
    if (names.positional.size() == 2) {
      positional_payload = names.positional[1];
      names.positional.pop_back();
    }
    GEYSIR_RETURN_IF_ERROR(ExactlyOneName(command, names, &cl.invoke.name));
    cl.invoke.payload = One(raw, "--payload");
    if (positional_payload) {
      if (cl.invoke.payload) return Usage(command, "give the payload once: as an argument or with --payload");
      cl.invoke.payload = positional_payload;
    }
    cl.invoke.log = raw.flags.count("--log") > 0;
  } else if (command == "logs") {
    cl.command = Command::kLogs;
    GEYSIR_RETURN_IF_ERROR(ExactlyOneName(command, raw, &cl.logs.name));
    cl.logs.follow = raw.flags.count("--follow") > 0;
    if (auto s = One(raw, "--since")) {
      auto v = ParseDuration(*s);
      if (!v.ok()) return Usage(command, v.status().message());
      cl.logs.since_ms = *v;
    }
    if (auto l = One(raw, "--limit")) {
      auto v = ParseInt(command, "--limit", *l, 1, 10000);
      if (!v.ok()) return v.status();
      cl.logs.limit = *v;
    }
  } else if (command == "list") {
    cl.command = Command::kList;
    if (!raw.positional.empty()) return Usage(command, "unexpected argument '" + raw.positional[0] + "'");
  } else if (command == "url") {
    cl.command = Command::kUrl;
    GEYSIR_RETURN_IF_ERROR(ExactlyOneName(command, raw, &cl.name.name));
  } else if (command == "delete") {
    cl.command = Command::kDelete;
    GEYSIR_RETURN_IF_ERROR(ExactlyOneName(command, raw, &cl.name.name));
  }
  return cl;
}

Result<SubcommandArgs> ScanSubcommandArgs(int argc, char** argv, const std::vector<std::string>& flags,
                                          GlobalOptions& global, const OptionHandler& on_option) {
  SubcommandArgs out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    bool inline_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (a == "-h" || a == "--help") {
      out.help = true;
      return out;
    }
    if (std::find(flags.begin(), flags.end(), a) != flags.end()) {
      out.flags_seen.push_back(a);
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) return Status::Invalid(a + " needs a value");
      v = argv[++i];
    }
    if (a == "--endpoint") global.endpoint = v;
    else if (a == "--data-dir") global.data_dir = v;
    else if (a == "--profile") global.profile = v;
    else if (a == "--region") global.region = v;
    else GEYSIR_RETURN_IF_ERROR(on_option(a, v));
  }
  return out;
}

}  // namespace geysir::cli
