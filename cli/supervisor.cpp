// `geysir server`: see supervisor.h. One poll loop over a signalfd; children are plain
// fork+exec with everything they need (argv, fds) prepared before fork.
#include "cli/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "worker/restore/restore.h"

extern char** environ;

namespace geysir::cli {
namespace {

constexpr int64_t kBackoffStartMs = 100;
constexpr int64_t kBackoffMaxMs = 5000;
constexpr int64_t kHealthyResetMs = 30000;   // up this long: the next crash backs off from the start
constexpr int64_t kStartupDeadlineMs = 60000;
constexpr int kListenBacklog = 1024;
// Our own long-lived fds live at or above this number so that dup2(fd, 3) in a child can never
// clobber one we still need (the listening sockets would otherwise often be fds 3 and 4).
constexpr int kHighFd = 10;

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

void PrintServerUsage(FILE* out) {
  std::fputs(
      "usage: geysir server [--data-dir DIR] [--host ADDR] [--http-port N] [--control-port N]\n"
      "                     [--base-domain DOMAIN] [--user USER] [--grace-s N]\n"
      "                     [--https-port N [--tls-cert PEM --tls-key PEM] [--https-redirect]\n"
      "                      [--hsts-max-age S]] [--acme-directory URL] [--acme-ca FILE] [--acme-email ADDR]\n"
      "                     [--isolation auto|restore|fork]\n"
      "\n"
      "Runs Geysir on this machine: control, scheduler and gateway, supervised.\n"
      "  --data-dir      all state lives here (default /var/lib/geysir)\n"
      "  --host          address both ports bind to (default 127.0.0.1)\n"
      "  --http-port     function URLs and /healthz (default 8080; 0 picks a free port)\n"
      "  --control-port  the AWS-compatible control API (default 9000; 0 picks a free port)\n"
      "  --base-domain   function URLs are http://<url-id>.lambda-url.<base-domain>:<port>/\n"
      "                  (default localhost)\n"
      "  --user          unprivileged user the gateway runs as (default geysir, else nobody)\n"
      "  --grace-s       seconds each daemon gets to stop on shutdown before SIGKILL (default 30)\n"
      "  --https-port    serve HTTPS here too (443 on the internet; 0 picks a free port); certificates\n"
      "                  come from `geysir domain add` (ACME) and --tls-cert/--tls-key\n"
      "  --tls-cert, --tls-key  a PEM certificate chain and key served for every other host name\n"
      "  --https-redirect       answer plain-HTTP requests for hosts with a certificate with 308 to https\n"
      "  --hsts-max-age  send Strict-Transport-Security: max-age=S on HTTPS responses\n"
      "  --max-connections-per-client  open connections one client address may hold at the\n"
      "                  gateway and at the control API (default 256; more are answered 429)\n"
      "  --max-pools     function revisions the scheduler keeps a template for at once (default 64;\n"
      "                  the least recently used idle one is stopped first; 0: no bound)\n"
      "  --max-prefork-total  pre-forked children waiting for work over all functions (default 128)\n"
      "  --worker-idle-timeout-s  a reuse-mode worker (GEYSIR_EXECUTION_MODE=reuse) idle this long\n"
      "                  is stopped (default 60)\n"
      "  --isolation     how invocations of a per-request function are kept apart: restore (one\n"
      "                  worker per slot, restored to its post-init snapshot after each request;\n"
      "                  needs Linux >= 6.7 and root), fork (a fresh child per request), or auto\n"
      "                  (default: restore where available, else fork). GET /geysir/v1/health\n"
      "                  on the control port shows the mode in use\n"
      "  --acme-directory  the ACME CA (default Let's Encrypt production; try staging first:\n"
      "                  https://acme-staging-v02.api.letsencrypt.org/directory)\n"
      "  --acme-ca       PEM bundle to trust for the ACME directory (default: the system's)\n"
      "  --acme-email    contact address for the ACME account\n",
      out);
}

namespace {

bool ParsePort(const std::string& s, int* out) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  int v = std::atoi(s.c_str());
  if (v > 65535) return false;
  *out = v;
  return true;
}

}  // namespace

int ParseServerOptions(int argc, char** argv, ServerOptions* o, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    auto eq = a.find('=');
    bool has_inline = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_inline) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (a == "-h" || a == "--help") {
      *help = true;
      return 0;
    }
    auto value = [&](std::string* dst) {
      if (has_inline) {
        *dst = v;
        return true;
      }
      if (i + 1 >= argc) return false;
      *dst = argv[++i];
      return true;
    };
    std::string s;
    if (a == "--data-dir") {
      if (!value(&o->data_dir) || o->data_dir.empty()) return 2;
    } else if (a == "--host") {
      if (!value(&o->host) || o->host.empty()) return 2;
    } else if (a == "--http-port") {
      if (!value(&s) || !ParsePort(s, &o->http_port)) return 2;
    } else if (a == "--control-port") {
      if (!value(&s) || !ParsePort(s, &o->control_port)) return 2;
    } else if (a == "--base-domain") {
      if (!value(&o->base_domain) || o->base_domain.empty()) return 2;
    } else if (a == "--user") {
      if (!value(&o->user) || o->user.empty()) return 2;
    } else if (a == "--https-port") {
      if (!value(&s) || !ParsePort(s, &o->https_port)) return 2;
    } else if (a == "--tls-cert") {
      if (!value(&o->tls_cert) || o->tls_cert.empty()) return 2;
    } else if (a == "--tls-key") {
      if (!value(&o->tls_key) || o->tls_key.empty()) return 2;
    } else if (a == "--https-redirect") {
      o->https_redirect = true;
    } else if (a == "--hsts-max-age") {
      if (!value(&o->hsts_max_age) || o->hsts_max_age.empty() ||
          o->hsts_max_age.find_first_not_of("0123456789") != std::string::npos)
        return 2;
    } else if (a == "--max-connections-per-client") {
      if (!value(&o->max_connections_per_client) || o->max_connections_per_client.empty() ||
          o->max_connections_per_client.size() > 6 ||
          o->max_connections_per_client.find_first_not_of("0123456789") != std::string::npos)
        return 2;
    } else if (a == "--max-pools" || a == "--max-prefork-total" || a == "--worker-idle-timeout-s") {
      std::string* bound = a == "--max-pools"           ? &o->max_pools
                           : a == "--max-prefork-total" ? &o->max_prefork_total
                                                        : &o->worker_idle_timeout_s;
      if (!value(bound) || bound->empty() || bound->size() > 6 ||
          bound->find_first_not_of("0123456789") != std::string::npos)
        return 2;
    } else if (a == "--acme-directory") {
      if (!value(&o->acme_directory) || o->acme_directory.empty()) return 2;
    } else if (a == "--acme-ca") {
      if (!value(&o->acme_ca) || o->acme_ca.empty()) return 2;
    } else if (a == "--acme-email") {
      if (!value(&o->acme_email) || o->acme_email.empty()) return 2;
    } else if (a == "--isolation") {
      if (!value(&o->isolation)) return 2;
      if (o->isolation != "auto" && o->isolation != "restore" && o->isolation != "fork") {
        std::fprintf(stderr, "error: --isolation is auto, restore or fork, got '%s'\n", o->isolation.c_str());
        return 2;
      }
    } else if (a == "--grace-s") {
      if (!value(&s) || s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
        return 2;
      o->grace_s = std::max(1, std::atoi(s.c_str()));
    } else {
      std::fprintf(stderr, "error: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  return 0;
}

Result<IsolationChoice> ChooseIsolation(const std::string& requested, bool restore_available,
                                        const std::string& restore_detail, bool root) {
  std::string missing;
  if (!restore_available) missing = restore_detail;
  else if (!root) missing = "restore mode needs the sandbox, which needs root";
  if (requested == "restore" && !missing.empty()) {
    return Status::Invalid("--isolation restore is not available here: " + missing);
  }
  IsolationChoice choice;
  choice.mode = requested == "auto" ? (missing.empty() ? "restore" : "fork") : requested;
  choice.detail = missing.empty() ? restore_detail : missing;
  return choice;
}

namespace {

// Moves fd to kHighFd or above, close-on-exec.
Result<UniqueFd> MoveHigh(UniqueFd fd) {
  int high = fcntl(fd.get(), F_DUPFD_CLOEXEC, kHighFd);
  if (high < 0) return Status::Sys(errno, "fcntl F_DUPFD_CLOEXEC");
  return UniqueFd(high);
}

// Binds and listens on host:port (port 0: the kernel picks); reports the real port.
Result<UniqueFd> BindTcp(const std::string& host, int port, int* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) return Status::Invalid("cannot resolve --host " + host + ": " + gai_strerror(rc));
  Status last = Status::Invalid("no address for " + host);
  UniqueFd result;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last = Status::Sys(errno, "socket");
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Status::Sys(errno, "bind " + host + ":" + port_s);
      continue;
    }
    if (listen(fd.get(), kListenBacklog) != 0) {
      last = Status::Sys(errno, "listen " + host + ":" + port_s);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      last = Status::Sys(errno, "getsockname");
      continue;
    }
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    result = std::move(fd);
    break;
  }
  freeaddrinfo(res);
  if (!result) return last;
  return MoveHigh(std::move(result));
}

Status EnsureDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return Status::Sys(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return Status::Invalid(path + " exists and is not a directory");
  return Status::Ok();
}

// A connect() that succeeds means a server is accepting there; a stale socket file refuses.
bool UnixSocketAccepts(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
}

// GET /healthz on the gateway's port: the gateway is up when it answers 200.
bool GatewayHealthy(const std::string& host, int port) {
  std::string addr = host;
  if (addr == "0.0.0.0" || addr.empty()) addr = "127.0.0.1";
  if (addr == "::") addr = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  if (res != nullptr) {
    UniqueFd fd(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{0, 300000};
    if (fd) {
      setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd && connect(fd.get(), res->ai_addr, res->ai_addrlen) == 0) {
      static const char kReq[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
      if (send(fd.get(), kReq, sizeof kReq - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof kReq - 1)) {
        char buf[64] = {};
        ssize_t n = recv(fd.get(), buf, sizeof buf - 1, 0);
        ok = n >= 12 && std::strncmp(buf, "HTTP/1.1 200", 12) == 0;
      }
    }
  }
  freeaddrinfo(res);
  return ok;
}

// Fixed-size record a child writes to its close-on-exec error pipe when it cannot exec.
struct ExecFailure {
  int32_t stage;
  int32_t err;
};
enum : int32_t { kStageDup = 1, kStageExec = 2, kStageParent = 3 };

struct Child {
  std::string name;            // "control", "scheduler", "gateway"
  std::string binary;
  std::vector<std::string> args;  // argv[1..]
  int listen_fd = -1;          // passed as fd 3, or -1
  int tls_listen_fd = -1;      // passed as fd 4, or -1 (the gateway's HTTPS port)
  std::string ready_socket;    // control/scheduler: ready when this accepts

  pid_t pid = -1;
  bool ready = false;
  int64_t started_ms = 0;
  int64_t backoff_ms = kBackoffStartMs;
  int64_t restart_at_ms = -1;  // >= 0: start again at this time
  int restarts = 0;
};

class Supervisor {
 public:
  Supervisor(ServerOptions o, std::string bin_dir) : opt_(std::move(o)), bin_dir_(std::move(bin_dir)) {}

  int Run() {
    Status st = Setup();
    if (!st.ok()) {
      log::Error("startup_failed", {{"error", st.ToString()}});
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return 1;
    }
    int code = Loop();
    Shutdown();
    return code;
  }

 private:
  Status Setup() {
    // Signals arrive through a signalfd; children get the mask and dispositions reset.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return Status::Sys(errno, "sigprocmask");
    UniqueFd sfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd) return Status::Sys(errno, "signalfd");
    auto high = MoveHigh(std::move(sfd));
    if (!high.ok()) return high.status();
    signal_fd_ = std::move(*high);
    signal(SIGPIPE, SIG_IGN);

    if (geteuid() != 0) {
      log::Warn("not_root", {{"message", "geysir server normally runs as root: the scheduler needs it "
                                          "for sandboxes and the gateway to drop to --user"}});
    }

    GEYSIR_RETURN_IF_ERROR(ResolveIsolation());

    const std::string& bin_dir = bin_dir_;
    std::string share = bin_dir.substr(0, bin_dir.rfind('/')) + "/share/geysir";
    // The scheduler takes the runtimes' root and appends the language ("python").
    runtime_dir_ = share + "/runtime";
    for (const char* b : {"geysir-control", "geysir-scheduler", "geysir-gateway", "geysir-worker"}) {
      std::string p = bin_dir + "/" + b;
      if (access(p.c_str(), X_OK) != 0)
        return Status::Sys(errno, "cannot run " + p + " (it belongs next to the geysir binary)");
    }
    if (access((runtime_dir_ + "/python/bootstrap.py").c_str(), R_OK) != 0)
      log::Warn("runtime_missing", {{"path", runtime_dir_ + "/python/bootstrap.py"}});

    // The gateway's identity decides the group of run/.
    GEYSIR_RETURN_IF_ERROR(ResolveUser());

    // Data directory layout (docs/architecture.md). Absolute, so children agree on paths.
    if (opt_.data_dir[0] != '/') {
      char cwd[4096];
      if (getcwd(cwd, sizeof cwd) == nullptr) return Status::Sys(errno, "getcwd");
      opt_.data_dir = std::string(cwd) + "/" + opt_.data_dir;
    }
    while (opt_.data_dir.size() > 1 && opt_.data_dir.back() == '/') opt_.data_dir.pop_back();
    const std::string& d = opt_.data_dir;
    // 0711: the gateway (another uid) must traverse to run/, nobody may list the directory.
    GEYSIR_RETURN_IF_ERROR(EnsureDir(d, 0711));
    // An existing directory (e.g. from mktemp -d, 0700) must still let the gateway reach run/
    // and function uids reach their code under code/: add search permission, nothing else.
    struct stat dst{};
    if (stat(d.c_str(), &dst) == 0 && (dst.st_mode & 0011) != 0011) {
      mode_t mode = (dst.st_mode & 07777) | 0011;
      if (chmod(d.c_str(), mode) != 0) return Status::Sys(errno, "chmod " + d);
      log::Info("data_dir_searchable", {{"path", d}, {"mode", mode}});
    }
    GEYSIR_RETURN_IF_ERROR(EnsureDir(d + "/tmp", 0700));
    chmod((d + "/tmp").c_str(), 0700);
    run_dir_ = d + "/run";
    GEYSIR_RETURN_IF_ERROR(EnsureDir(run_dir_, 0750));
    // setgid: sockets created inside inherit the gateway's group, so the gateway can connect.
    if (geteuid() == 0 && chown(run_dir_.c_str(), 0, gateway_gid_) != 0)
      return Status::Sys(errno, "chown " + run_dir_);
    if (chmod(run_dir_.c_str(), 02750) != 0) return Status::Sys(errno, "chmod " + run_dir_);
    server_json_ = run_dir_ + "/server.json";
    unlink(server_json_.c_str());
    control_sock_ = run_dir_ + "/control.sock";
    scheduler_sock_ = run_dir_ + "/scheduler.sock";
    // Stale sockets of a previous run would only refuse connections; remove them for clarity.
    unlink(control_sock_.c_str());
    unlink(scheduler_sock_.c_str());

    auto http = BindTcp(opt_.host, opt_.http_port, &http_port_);
    if (!http.ok()) return http.status().Wrap("binding the HTTP port");
    http_fd_ = std::move(*http);
    if (opt_.https_port >= 0) {
      auto https = BindTcp(opt_.host, opt_.https_port, &https_port_);
      if (!https.ok()) return https.status().Wrap("binding the HTTPS port");
      https_fd_ = std::move(*https);
    }
    // Control's ACME client reads its settings from the environment (control/services/domains.cpp).
    // Paths are made absolute: control runs with another working directory in mind.
    auto absolute = [](const std::string& path) {
      if (path.empty() || path[0] == '/') return path;
      char cwd[4096];
      return getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
    };
    if (!opt_.acme_directory.empty()) setenv("GEYSIR_ACME_DIRECTORY", opt_.acme_directory.c_str(), 1);
    if (!opt_.acme_ca.empty()) setenv("GEYSIR_ACME_CA", absolute(opt_.acme_ca).c_str(), 1);
    if (!opt_.acme_email.empty()) setenv("GEYSIR_ACME_EMAIL", opt_.acme_email.c_str(), 1);
    opt_.tls_cert = absolute(opt_.tls_cert);
    opt_.tls_key = absolute(opt_.tls_key);
    auto ctl = BindTcp(opt_.host, opt_.control_port, &control_port_);
    if (!ctl.ok()) return ctl.status().Wrap("binding the control port");
    control_fd_ = std::move(*ctl);

    UniqueFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!devnull) return Status::Sys(errno, "open /dev/null");
    auto dn = MoveHigh(std::move(devnull));
    if (!dn.ok()) return dn.status();
    devnull_ = std::move(*dn);

    std::string url_template = "http://{url_id}.lambda-url." + opt_.base_domain + ":" +
                               std::to_string(http_port_) + "/";
    children_.resize(3);
    Child& c = children_[kControl];
    c.name = "control";
    c.binary = bin_dir + "/geysir-control";
    c.args = {"--data-dir", d, "--listen-fd", "3", "--socket", control_sock_, "--scheduler-socket",
              scheduler_sock_, "--function-url-template", url_template, "--region", "us-east-1",
              "--account-id", "000000000000", "--isolation", opt_.isolation};
    if (!opt_.max_connections_per_client.empty()) {
      c.args.insert(c.args.end(), {"--max-connections-per-client", opt_.max_connections_per_client});
    }
    c.listen_fd = control_fd_.get();
    c.ready_socket = control_sock_;
    Child& s = children_[kScheduler];
    s.name = "scheduler";
    s.binary = bin_dir + "/geysir-scheduler";
    s.args = {"--data-dir", d, "--socket", scheduler_sock_, "--control-socket", control_sock_,
              "--worker-binary", bin_dir + "/geysir-worker", "--runtime-dir", runtime_dir_,
              "--isolation", opt_.isolation};
    if (!opt_.max_pools.empty()) s.args.insert(s.args.end(), {"--max-pools", opt_.max_pools});
    if (!opt_.max_prefork_total.empty()) s.args.insert(s.args.end(), {"--max-prefork-total", opt_.max_prefork_total});
    if (!opt_.worker_idle_timeout_s.empty()) {
      s.args.insert(s.args.end(), {"--worker-idle-timeout-s", opt_.worker_idle_timeout_s});
    }
    s.ready_socket = scheduler_sock_;
    Child& g = children_[kGateway];
    g.name = "gateway";
    g.binary = bin_dir + "/geysir-gateway";
    g.args = {"--listen-fd", "3", "--scheduler-socket", scheduler_sock_, "--control-socket", control_sock_,
              "--base-domain", opt_.base_domain, "--user", gateway_user_};
    g.listen_fd = http_fd_.get();
    if (!opt_.max_connections_per_client.empty()) {
      g.args.insert(g.args.end(), {"--max-connections-per-client", opt_.max_connections_per_client});
    }
    if (https_fd_) {
      g.tls_listen_fd = https_fd_.get();
      g.args.insert(g.args.end(), {"--tls-listen-fd", "4", "--https-public-port", std::to_string(https_port_)});
      if (!opt_.tls_cert.empty()) g.args.insert(g.args.end(), {"--tls-cert", opt_.tls_cert, "--tls-key", opt_.tls_key});
      if (opt_.https_redirect) g.args.push_back("--https-redirect");
      if (!opt_.hsts_max_age.empty()) g.args.insert(g.args.end(), {"--hsts-max-age", opt_.hsts_max_age});
    }

    log::Info("starting", {{"data_dir", d}, {"host", opt_.host}, {"http_port", http_port_},
                           {"control_port", control_port_}, {"gateway_user", gateway_user_},
                           {"bin_dir", bin_dir}});
    return Status::Ok();
  }

  Status ResolveUser() {
    for (const std::string& name : {opt_.user, std::string("nobody")}) {
      errno = 0;
      passwd* pw = getpwnam(name.c_str());
      if (pw != nullptr) {
        if (name != opt_.user)
          log::Warn("user_fallback", {{"wanted", opt_.user}, {"using", name},
                                      {"hint", "create it: useradd --system --user-group geysir"}});
        gateway_user_ = name;
        gateway_gid_ = pw->pw_gid;
        return Status::Ok();
      }
    }
    return Status::NotFound("neither user '" + opt_.user + "' nor 'nobody' exists");
  }

  // fork+exec one child. Everything the child touches is prepared first: between fork and
  // exec it only calls async-signal-safe functions and allocates nothing.
  void Start(Child& c) {
    std::vector<char*> argv;
    argv.reserve(c.args.size() + 2);
    argv.push_back(const_cast<char*>(c.binary.c_str()));
    for (auto& a : c.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
      log::Error("spawn_failed", {{"child", c.name}, {"error", Status::Sys(errno, "pipe2").ToString()}});
      ScheduleRestart(c);
      return;
    }
    UniqueFd err_r(pipefd[0]);
    auto moved = MoveHigh(UniqueFd(pipefd[1]));
    if (!moved.ok()) {
      log::Error("spawn_failed", {{"child", c.name}, {"error", moved.status().ToString()}});
      ScheduleRestart(c);
      return;
    }
    UniqueFd err_w = std::move(*moved);
    sigset_t empty;
    sigemptyset(&empty);
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    const pid_t parent = getpid();
    const int listen_fd = c.listen_fd;
    const int tls_listen_fd = c.tls_listen_fd;
    const int null_fd = devnull_.get();
    const int ew = err_w.get();
    const char* path = c.binary.c_str();
    char** args = argv.data();

    pid_t pid = fork();
    if (pid == 0) {
      ExecFailure f{0, 0};
      // Our own process group: a Ctrl-C in the terminal reaches only the supervisor, which
      // then stops the children in order.
      setpgid(0, 0);
      // If the supervisor dies without stopping us, stop too instead of lingering.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(0);
      sigprocmask(SIG_SETMASK, &empty, nullptr);
      sigaction(SIGPIPE, &dfl, nullptr);
      sigaction(SIGHUP, &dfl, nullptr);
      if (dup2(null_fd, 0) < 0) f = {kStageDup, errno};
      if (f.stage == 0 && listen_fd >= 0 && dup2(listen_fd, 3) < 0) f = {kStageDup, errno};
      if (f.stage == 0 && tls_listen_fd >= 0 && dup2(tls_listen_fd, 4) < 0) f = {kStageDup, errno};
      if (f.stage == 0) {
        execve(path, args, environ);
        f = {kStageExec, errno};
      }
      ssize_t w = write(ew, &f, sizeof f);
      (void)w;
      _exit(127);
    }
    if (pid < 0) {
      log::Error("spawn_failed", {{"child", c.name}, {"error", Status::Sys(errno, "fork").ToString()}});
      ScheduleRestart(c);
      return;
    }
    err_w.Reset();
    ExecFailure f{0, 0};
    ssize_t r;
    do {
      r = read(err_r.get(), &f, sizeof f);
    } while (r < 0 && errno == EINTR);
    c.pid = pid;
    c.ready = false;
    c.started_ms = NowMs();
    c.restart_at_ms = -1;
    if (r == static_cast<ssize_t>(sizeof f)) {
      // The child is exiting with 127; its SIGCHLD schedules the restart.
      log::Error("exec_failed", {{"child", c.name}, {"binary", c.binary},
                                 {"stage", f.stage == kStageExec ? "exec" : "dup2"},
                                 {"error", std::strerror(f.err)}});
      return;
    }
    log::Info("child_started", {{"child", c.name}, {"pid", pid}, {"restarts", c.restarts}});
  }

  void ScheduleRestart(Child& c) {
    int64_t now = NowMs();
    if (c.started_ms != 0 && now - c.started_ms >= kHealthyResetMs) c.backoff_ms = kBackoffStartMs;
    c.restart_at_ms = now + c.backoff_ms;
    log::Info("restart_scheduled", {{"child", c.name}, {"in_ms", c.backoff_ms}});
    c.backoff_ms = std::min(c.backoff_ms * 2, kBackoffMaxMs);
  }

  Child* FindChild(pid_t pid) {
    for (auto& c : children_)
      if (c.pid == pid) return &c;
    return nullptr;
  }

  // Reaps every exited child. While running, schedules restarts of our daemons.
  void Reap(bool restart) {
    for (int i = 0; i < 1024; ++i) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      Child* c = FindChild(pid);
      if (c == nullptr) continue;
      nlohmann::json f = {{"child", c->name}, {"pid", pid}, {"up_ms", NowMs() - c->started_ms}};
      if (WIFEXITED(status)) f["code"] = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) f["signal"] = WTERMSIG(status);
      c->pid = -1;
      c->ready = false;
      if (restart) {
        log::Warn("child_exited", f);
        c->restarts++;
        ScheduleRestart(*c);
      } else {
        log::Info("child_stopped", f);
      }
    }
  }

  // Returns false when a stop signal arrived.
  bool DrainSignals(bool restart) {
    bool keep_running = true;
    for (int i = 0; i < 64; ++i) {
      signalfd_siginfo si{};
      ssize_t r = read(signal_fd_.get(), &si, sizeof si);
      if (r != static_cast<ssize_t>(sizeof si)) break;
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
        log::Info("stop_requested", {{"signal", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
        keep_running = false;
      } else if (si.ssi_signo == SIGHUP) {
        log::Info("sighup_ignored");
      }
    }
    Reap(restart && keep_running);
    return keep_running;
  }

  bool IsReady(Child& c) {
    if (c.pid < 0) return false;
    if (c.ready) return true;
    if (!c.ready_socket.empty()) {
      c.ready = UnixSocketAccepts(c.ready_socket);
    } else {
      c.ready = GatewayHealthy(opt_.host, http_port_);
    }
    if (c.ready) log::Info("child_ready", {{"child", c.name}, {"pid", c.pid}, {"ms", NowMs() - c.started_ms}});
    return c.ready;
  }

  Status WriteServerJson() {
    std::string host = opt_.host;
    std::string ep_host = host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "[::1]"
                          : host.find(':') != std::string::npos ? "[" + host + "]" : host;
    nlohmann::json j = {{"pid", getpid()},
                        {"http_port", http_port_},
                        {"https_port", https_fd_ ? https_port_ : 0},
                        {"control_port", control_port_},
                        {"host", host},
                        {"control_endpoint", "http://" + ep_host + ":" + std::to_string(control_port_)},
                        {"base_domain", opt_.base_domain},
                        {"credentials_file", opt_.data_dir + "/credentials"},
                        {"data_dir", opt_.data_dir}};
    std::string body = j.dump() + "\n";
    std::string tmp = server_json_ + ".tmp";
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd) return Status::Sys(errno, "open " + tmp);
    if (write(fd.get(), body.data(), body.size()) != static_cast<ssize_t>(body.size()))
      return Status::Sys(errno, "write " + tmp);
    if (fsync(fd.get()) != 0) return Status::Sys(errno, "fsync " + tmp);
    fd.Reset();
    if (rename(tmp.c_str(), server_json_.c_str()) != 0) return Status::Sys(errno, "rename " + tmp);
    return Status::Ok();
  }

  // Starts children in order, then keeps them running. Returns the exit code for after shutdown.
  int Loop() {
    const int64_t startup_deadline = NowMs() + kStartupDeadlineMs;
    bool up = false;
    for (;;) {
      int64_t now = NowMs();
      // Start (or restart) what is due. During start-up a child waits for the one before it.
      for (size_t i = 0; i < children_.size(); ++i) {
        Child& c = children_[i];
        if (!up) {
          bool deps_ready = true;
          for (size_t k = 0; k < i; ++k) deps_ready = deps_ready && IsReady(children_[k]);
          if (!deps_ready) break;
        }
        if (c.pid < 0 && (c.restart_at_ms < 0 ? !up : c.restart_at_ms <= now)) {
          if (c.restart_at_ms >= 0) log::Info("restarting", {{"child", c.name}, {"restarts", c.restarts}});
          Start(c);
        }
      }
      if (!up) {
        bool all = true;
        for (auto& c : children_) all = all && IsReady(c);
        if (all) {
          up = true;
          Status st = WriteServerJson();
          if (!st.ok()) {
            log::Error("server_json_failed", {{"error", st.ToString()}});
            return 1;
          }
          log::Info("ready", {{"http_port", http_port_}, {"control_port", control_port_},
                              {"server_json", server_json_}});
          std::string ep_host = opt_.host == "0.0.0.0" ? "127.0.0.1" : opt_.host;
          std::printf(
              "Geysir is running.\n"
              "  control API:   http://%s:%d  (AWS_ENDPOINT_URL for boto3 / aws / geysir)\n"
              "  function URLs: http://<url-id>.lambda-url.%s:%d/\n"
              "  credentials:   %s/credentials\n"
              "  data:          %s\n",
              ep_host.c_str(), control_port_, opt_.base_domain.c_str(), http_port_, opt_.data_dir.c_str(),
              opt_.data_dir.c_str());
          std::fflush(stdout);
        } else if (now > startup_deadline) {
          std::string waiting;
          for (auto& c : children_)
            if (!c.ready) waiting += (waiting.empty() ? "" : ", ") + c.name;
          log::Error("startup_timeout", {{"waiting_for", waiting}, {"seconds", kStartupDeadlineMs / 1000}});
          std::fprintf(stderr, "error: Geysir did not start within %lld s (waiting for %s); see the log lines above\n",
                       static_cast<long long>(kStartupDeadlineMs / 1000), waiting.c_str());
          return 1;
        }
      }
      // Sleep until a signal, the next restart, or (while starting) the next readiness probe.
      int64_t timeout = up ? 1000 : 20;
      for (auto& c : children_)
        if (c.pid < 0 && c.restart_at_ms >= 0) timeout = std::min(timeout, std::max<int64_t>(0, c.restart_at_ms - now));
      pollfd p{signal_fd_.get(), POLLIN, 0};
      int r = poll(&p, 1, static_cast<int>(timeout));
      if (r < 0 && errno != EINTR) {
        log::Error("poll_failed", {{"error", std::strerror(errno)}});
        return 1;
      }
      if (r > 0 && !DrainSignals(true)) return 0;
    }
  }

  // Stops one child: SIGTERM, wait up to the grace period, then SIGKILL.
  void Stop(Child& c) {
    c.restart_at_ms = -1;
    if (c.pid < 0) return;
    log::Info("stopping", {{"child", c.name}, {"pid", c.pid}});
    kill(c.pid, SIGTERM);
    int64_t deadline = NowMs() + int64_t{opt_.grace_s} * 1000;
    bool killed = false;
    for (;;) {
      DrainSignals(false);  // further stop signals change nothing: we are already stopping
      if (c.pid < 0) return;
      int64_t now = NowMs();
      if (now >= deadline) {
        if (killed) {
          // SIGKILL not reaped within 5 s: give up on this child rather than hang.
          log::Error("stop_stuck", {{"child", c.name}, {"pid", c.pid}});
          return;
        }
        log::Warn("stop_timeout_sigkill", {{"child", c.name}, {"pid", c.pid}, {"grace_s", opt_.grace_s}});
        kill(c.pid, SIGKILL);
        killed = true;
        deadline = now + 5000;
      }
      pollfd p{signal_fd_.get(), POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<int64_t>(100, std::max<int64_t>(1, deadline - now))));
    }
  }

  void Shutdown() {
    unlink(server_json_.c_str());
    // The gateway first: it stops accepting and finishes in-flight requests while the
    // scheduler and control are still there to serve them.
    if (!children_.empty()) {
      Stop(children_[kGateway]);
      Stop(children_[kScheduler]);
      Stop(children_[kControl]);
    }
    unlink(server_json_.c_str());
    log::Info("stopped");
  }

  // Turns --isolation auto into the mode the scheduler will run, here rather than in the
  // scheduler, so control (which reports it in /geysir/v1/health) and the scheduler are told the
  // same mode. The scheduler runs as we do and with its sandbox on.
  Status ResolveIsolation() {
    const std::string requested = opt_.isolation;
    const worker::restore::Support support = worker::restore::Probe();
    auto choice = ChooseIsolation(requested, support.available, support.detail, geteuid() == 0);
    if (!choice.ok()) return choice.status();
    opt_.isolation = choice->mode;
    log::Info("isolation_mode", {{"mode", opt_.isolation}, {"requested", requested}, {"detail", choice->detail}});
    return Status::Ok();
  }

  enum { kControl = 0, kScheduler = 1, kGateway = 2 };

  ServerOptions opt_;
  const std::string bin_dir_;
  UniqueFd signal_fd_;
  UniqueFd http_fd_;
  UniqueFd https_fd_;
  UniqueFd control_fd_;
  UniqueFd devnull_;
  int http_port_ = 0;
  int https_port_ = 0;
  int control_port_ = 0;
  std::string gateway_user_;
  gid_t gateway_gid_ = 65534;
  std::string runtime_dir_;
  std::string run_dir_;
  std::string server_json_;
  std::string control_sock_;
  std::string scheduler_sock_;
  std::vector<Child> children_;
};

}  // namespace

int RunSupervisor(ServerOptions options, const std::string& bin_dir) {
  Supervisor s(std::move(options), bin_dir);
  return s.Run();
}

int RunServer(int argc, char** argv) {
  ServerOptions o;
  bool help = false;
  int rc = ParseServerOptions(argc, argv, &o, &help);
  if (help) {
    PrintServerUsage(stdout);
    return 0;
  }
  if (rc != 0) {
    PrintServerUsage(stderr);
    return rc;
  }
  log::Init("supervisor");
  // Our siblings live next to this executable (symlinks resolved).
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    const Status st = Status::Sys(errno, "readlink /proc/self/exe");
    log::Error("startup_failed", {{"error", st.ToString()}});
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }
  exe[n] = '\0';
  std::string bin_dir(exe);
  bin_dir = bin_dir.substr(0, bin_dir.rfind('/'));
  return RunSupervisor(std::move(o), bin_dir);
}

}  // namespace geysir::cli
