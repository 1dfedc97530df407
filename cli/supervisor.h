// The supervisor: `geysir server`, the one command that runs the platform on one machine.
//
// It creates the data directory layout, binds the HTTP and control TCP ports itself (so a
// restarted gateway or control keeps the port and the connections waiting in its backlog),
// starts geysir-control, geysir-scheduler and geysir-gateway in that order (each once the one
// before it answers on its socket), restarts any of them that dies, writes run/server.json
// when everything is up, and on SIGTERM/SIGINT stops them gateway first (so in-flight requests
// drain while the scheduler and control still serve them), then scheduler, then control.
// docs/architecture.md ("Start-up order and supervision") and docs/operations.md describe it.
//
// A library (geysir_supervisor) under the thin cli/main.cpp, so that tests/unit/cli drives its
// flags, its isolation choice and its daemons (fake ones, from a directory of their own).
//
// Thread safety: ParseServerOptions and ChooseIsolation are pure. RunSupervisor runs a
// single-threaded poll loop and owns the process's signals (it blocks SIGCHLD, SIGTERM, SIGINT
// and SIGHUP and reads them from a signalfd): call it once per process, from its only thread.
#pragma once

#include <cstdio>
#include <string>

#include "base/status.h"

namespace geysir::cli {

// The flags of `geysir server` (PrintServerUsage says what each means).
struct ServerOptions {
  std::string data_dir = "/var/lib/geysir";
  std::string host = "127.0.0.1";
  int http_port = 8080;
  int control_port = 9000;
  std::string base_domain = "localhost";
  std::string user = "geysir";
  int grace_s = 30;
  // HTTPS (docs/internet.md): off unless --https-port is given.
  int https_port = -1;
  std::string tls_cert;
  std::string tls_key;
  bool https_redirect = false;
  std::string hsts_max_age;
  std::string max_connections_per_client;  // the gateway's default when empty
  std::string max_pools;                   // the scheduler's defaults when empty
  std::string max_prefork_total;
  std::string worker_idle_timeout_s;
  std::string acme_directory;
  std::string acme_ca;
  std::string acme_email;
  std::string isolation = "auto";  // auto, restore or fork; resolved by ChooseIsolation
};

void PrintServerUsage(FILE* out);

// Parses argv[1..] (argv[0] is "server") into *options. Returns 0 when parsed (with *help set
// when --help was asked), otherwise the exit code of a usage error (2).
int ParseServerOptions(int argc, char** argv, ServerOptions* options, bool* help);

// The isolation mode the daemons are told, and why: what `restore_detail` says was found, or
// what is missing.
struct IsolationChoice {
  std::string mode;  // "restore" or "fork", never "auto"
  std::string detail;
};

// Turns --isolation `requested` into the mode to run, given the kernel's restore support
// (worker::restore::Probe()) and whether we are root (restore needs the sandbox, which needs
// root). An explicit "restore" that cannot be had is kInvalidArgument, never a quiet fork.
Result<IsolationChoice> ChooseIsolation(const std::string& requested, bool restore_available,
                                        const std::string& restore_detail, bool root);

// Runs the platform with the daemons of `bin_dir` (geysir-control, geysir-scheduler,
// geysir-gateway and geysir-worker; the runtimes in <bin_dir>/../share/geysir/runtime) until
// SIGTERM or SIGINT. Returns the process exit code: 0 after a clean shutdown, 1 when the
// platform could not start.
int RunSupervisor(ServerOptions options, const std::string& bin_dir);

// `geysir server [--data-dir D] [--host H] [--http-port N] [--control-port N]
//                [--base-domain B] [--user U] [--grace-s N] ...`
// argv[0] is "server" (the subcommand). Parses the flags, then RunSupervisor with the directory
// this executable is in. Returns the exit code: RunSupervisor's, or 2 on a usage error.
int RunServer(int argc, char** argv);

}  // namespace geysir::cli
