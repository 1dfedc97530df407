// `geysir`: the command-line tool. Parses the command line, resolves endpoint and credentials,
// and runs one command (cli/commands.h); `geysir server` runs the supervisor (cli/supervisor.h).
#include <curl/curl.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "cli/control_client.h"
#include "cli/domain.h"
#include "cli/triggers.h"
#include "cli/supervisor.h"

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
  CurlGlobal(const CurlGlobal&) = delete;
  CurlGlobal& operator=(const CurlGlobal&) = delete;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace geysir::cli;
  // The supervisor parses its own flags; hand it argv from "server" on.
  if (argc >= 2 && std::string(argv[1]) == "server") return RunServer(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "domain") {
    CurlGlobal curl_global;
    return RunDomainCommand(argc - 1, argv + 1);
  }

  if (argc >= 2 && (std::string(argv[1]) == "schedules" || std::string(argv[1]) == "events")) {
    CurlGlobal curl_global;
    return RunTriggersCommand(argc, argv);
  }
  std::vector<std::string> args(argv, argv + argc);
  auto cl = ParseCommandLine(args);
  if (!cl.ok()) {
    std::cerr << "error: " << cl.status().message() << "\n";
    return 2;
  }
  switch (cl->command) {
    case Command::kHelp:
      std::cout << HelpText(cl->help_topic);
      return 0;
    case Command::kVersion:
      std::cout << "geysir 0.1.0\n";
      return 0;
    case Command::kServer:
      std::cerr << "error: global options go after `geysir server` (see `geysir server --help`)\n";
      return 2;
    default:
      break;
  }

  auto config = ResolveConfig(cl->global, ProcessEnv);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 1;
  }
  CurlGlobal curl_global;
  ControlClient client(*config);
  Io io{std::cout, std::cerr, std::cin, isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1};
  switch (cl->command) {
    case Command::kDeploy: return Deploy(client, cl->deploy, io);
    case Command::kList: return List(client, io);
    case Command::kInvoke: return Invoke(client, cl->invoke, io);
    case Command::kLogs: return Logs(client, cl->logs, io);
    case Command::kDelete: return Delete(client, cl->name, io);
    case Command::kUrl: return Url(client, cl->name, io);
    default: return 2;
  }
}
