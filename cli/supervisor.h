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
// Thread safety: RunServer runs a single-threaded poll loop and owns the process's signals;
// call it once, from main().
#pragma once

namespace geysir::cli {

// `geysir server [--data-dir D] [--host H] [--http-port N] [--control-port N]
//                [--base-domain B] [--user U] [--grace-s N]`
// argv[0] is "server" (the subcommand). Returns the process exit code: 0 after a clean
// shutdown, 1 when the platform could not start, 2 on a usage error.
int RunServer(int argc, char** argv);

}  // namespace geysir::cli
