// The custom domain registry, its certificates, and the ACME worker. See domains.h.
//
// Threads: everything here runs on control's loop thread except AcmeWorker::Run, which owns
// the blocking conversation with the CA. The two meet in three places only:
//   - jobs_ (mutex): the loop queues "obtain a certificate for X"; the worker takes them;
//   - Post(): the worker hands closures to the loop through a uv_async (publishing and
//     withdrawing challenge answers, storing the outcome);
//   - acked_ (mutex + condition variable): the loop records the generation of the newest
//     "tls" frame the gateway has applied; the worker waits on it before it lets the CA
//     validate, so the CA never asks before the gateway knows the answer.
//
// Renewal: a timer looks every check interval for certificates whose renew_at has come (a
// third of the lifetime left, or the back-off after a failure: 1 min doubling to 24 h) and
// queues them. A failed attempt leaves the serving certificate in place. When the CA's
// directory offers renewalInfo (ARI, control/acme/ari.h), the same timer queues a look-up per
// certificate (after issuance, then as its Retry-After says) and renew_at moves into the CA's
// suggested window; the first "no renewalInfo" answer turns the look-ups off.
#include "control/services/domains.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "control/acme/certs.h"
#include "control/acme/client.h"
#include "control/acme/jws.h"
#include "control/aws_error.h"
#include "control/db.h"
#include "control/service.h"
#include "control/store.h"
#include "base/log.h"
#include "base/uv_handle.h"
#include "net/tls.h"
#include "proto/tls_state.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;

constexpr std::string_view kNativePrefix = "/geysir/v1/domains";
constexpr int64_t kBackoffStartS = 60;
constexpr int64_t kBackoffMaxS = 24 * 3600;
constexpr int64_t kAckWaitMs = 10'000;

const std::vector<Migration>& DomainMigrations() {
  static const std::vector<Migration> steps = {
      {1, "custom domains",
       "CREATE TABLE domains ("
       "  name TEXT PRIMARY KEY,"
       "  url_id TEXT NOT NULL DEFAULT '',"
       "  api_id TEXT NOT NULL DEFAULT '',"
       "  stage TEXT NOT NULL DEFAULT '',"
       "  base_path TEXT NOT NULL DEFAULT '',"
       "  certificate TEXT NOT NULL,"
       "  challenge TEXT NOT NULL,"
       "  status TEXT NOT NULL,"
       "  last_error TEXT NOT NULL DEFAULT '',"
       "  serial TEXT NOT NULL DEFAULT '',"
       "  not_before INTEGER NOT NULL DEFAULT 0,"
       "  not_after INTEGER NOT NULL DEFAULT 0,"
       "  renew_at INTEGER NOT NULL DEFAULT 0,"
       "  failures INTEGER NOT NULL DEFAULT 0,"
       "  created INTEGER NOT NULL"
       ")"},
      // Several API mappings per domain (API Gateway's model); the single api_id/stage/base_path
      // of step 1 moves here and those columns stay empty from now on.
      {2, "API mappings",
       "CREATE TABLE domain_mappings ("
       "  id TEXT PRIMARY KEY,"
       "  domain TEXT NOT NULL,"
       "  api_id TEXT NOT NULL,"
       "  stage TEXT NOT NULL,"
       "  mapping_key TEXT NOT NULL,"
       "  created INTEGER NOT NULL,"
       "  UNIQUE (domain, mapping_key)"
       ");"
       "INSERT INTO domain_mappings (id, domain, api_id, stage, mapping_key, created)"
       "  SELECT lower(hex(randomblob(3))), name, api_id, stage, base_path, created FROM domains WHERE api_id != '';"
       "UPDATE domains SET api_id = '', stage = '', base_path = ''"},
  };
  return steps;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

// A DNS host name we may serve and ask a CA for: labels of [a-z0-9-], not starting or ending
// with '-', at least two labels, not an IP address.
Status ValidateDomainName(const std::string& name) {
  if (name.empty() || name.size() > 253) return Status::Invalid("the domain name must be 1 to 253 characters");
  size_t start = 0;
  int labels = 0;
  bool all_digits = true;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    std::string_view label(name.data() + start, dot - start);
    if (label.empty() || label.size() > 63) return Status::Invalid("'" + name + "' has an empty or too long label");
    if (label.front() == '-' || label.back() == '-')
      return Status::Invalid("'" + name + "': a label may not start or end with '-'");
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
        return Status::Invalid("'" + name + "' is not a host name (letters, digits, '-' and '.' only)");
      if (!(c >= '0' && c <= '9')) all_digits = false;
    }
    ++labels;
    start = dot + 1;
    if (dot == name.size()) break;
  }
  if (labels < 2) return Status::Invalid("'" + name + "' is not a fully qualified domain name");
  if (all_digits) return Status::Invalid("'" + name + "' is an IP address, not a domain name");
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Sys(errno, "open " + tmp);
  fchmod(fd, mode);
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) return Status::Sys(err, "write " + tmp);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::Sys(errno, "rename " + tmp);
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status EnsureDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  chmod(path.c_str(), 0700);
  return Status::Ok();
}

// A mapping key as API Gateway takes it: "" or "(none)" is the whole domain; otherwise segments
// of [A-Za-z0-9$_.+!*'()-] joined by '/', stored without a leading or trailing '/'.
Result<std::string> NormalizeMappingKey(std::string_view key) {
  if (key == "(none)") return std::string();
  while (!key.empty() && key.front() == '/') key.remove_prefix(1);
  while (!key.empty() && key.back() == '/') key.remove_suffix(1);
  if (key.size() > 1024) return Status::Invalid("the base path is longer than 1024 characters");
  bool after_slash = false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("$_.+!*'()-/").find(c) != std::string_view::npos;
    if (!ok) {
      return Status::Invalid("the base path '" + std::string(key) +
                             "' has a character other than letters, digits and $_.+!*'()-/");
    }
    if (c == '/' && after_slash) return Status::Invalid("the base path '" + std::string(key) + "' has an empty segment");
    after_slash = c == '/';
  }
  return std::string(key);
}

std::string NewMappingId() {
  return RandomString(6, "abcdefghijklmnopqrstuvwxyz0123456789");
}

json RecordJson(const DomainRecord& r) {
  json mappings = json::array();
  for (const ApiMapping& m : r.mappings)
    mappings.push_back({{"ApiMappingId", m.id}, {"ApiId", m.api_id}, {"Stage", m.stage}, {"ApiMappingKey", m.key}});
  return json{{"DomainName", r.name},     {"UrlId", r.url_id},           {"ApiMappings", mappings},
              {"Certificate", r.certificate},
              {"Challenge", r.challenge}, {"Status", r.status},          {"LastError", r.last_error},
              {"Serial", r.serial},       {"NotBefore", r.not_before_s}, {"NotAfter", r.not_after_s},
              {"RenewAt", r.renew_at_s},  {"Failures", r.failures},      {"Created", r.created_s}};
}

// A third of the lifetime left (Let's Encrypt's advice: renew 30 days before a 90-day expiry).
int64_t RenewAt(int64_t not_before, int64_t not_after) { return not_before + (not_after - not_before) * 2 / 3; }

}  // namespace

class DomainsServiceImpl final : public DomainsService {
 public:
  explicit DomainsServiceImpl(ServiceHost& host) : host_(host) {}
  ~DomainsServiceImpl() override { StopWorker(); }

  std::string_view signing_name() const override { return "geysir-domains"; }
  bool HandlesNativePath(std::string_view path) const override {
    return path.compare(0, kNativePrefix.size(), kNativePrefix) == 0 &&
           (path.size() == kNativePrefix.size() || path[kNativePrefix.size()] == '/');
  }

  Status Start() override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override {
    return ToHttpResponse(error, request_id);
  }
  std::span<const ErrorStatus> error_statuses() const override {
    // The native API answers a method a path does not take 405, as Lambda's own paths do.
    static constexpr ErrorStatus kStatuses[] = {{"MethodNotAllowedException", 405}};
    return kStatuses;
  }
  void ContributeGatewayFrames(std::vector<proto::Frame>& out) override;
  void OnPeerFrame(const proto::Frame& frame) override;
  void Shutdown() override;

  // DomainRegistry.
  Result<DomainRecord> PutDomain(const DomainSpec& spec) override;
  Result<DomainRecord> SetTarget(std::string_view name, const DomainSpec& target) override;
  Result<ApiMapping> AddMapping(std::string_view name, ApiMapping mapping) override;
  Status DeleteMapping(std::string_view name, std::string_view mapping_id) override;
  Result<DomainRecord> GetDomain(std::string_view name) override;
  Result<std::vector<DomainRecord>> ListDomains() override;
  Status DeleteDomain(std::string_view name) override;
  Status RenewNow(std::string_view name) override;

 private:
  struct Job {
    std::string name;
    std::string challenge;
    std::string ari_chain_pem;  // set: not an order but an ARI look-up for this certificate ...
    std::string ari_serial;     // ... whose serial this is
  };

  Db& db() { return host_.store().db(); }
  int64_t NowS() const { return host_.NowMs() / 1000; }
  std::string DomainDir(const std::string& name) const { return tls_dir_ + "/domains/" + name; }

  std::vector<DomainRecord> Query(const std::string& where, const std::string& arg);
  void Save(const DomainRecord& r);
  // Makes the spec's target (if it names one) the domain's only target.
  Status ReplaceTarget(DomainRecord& r, const DomainSpec& spec);
  Status LoadCertificate(const DomainRecord& r);
  Status StoreCertificate(DomainRecord& r, const std::string& chain_pem, const std::string& key_pem);
  void StateChanged();

  // ACME.
  Status LoadAccountKey();
  void Enqueue(const std::string& name, const std::string& challenge);
  void CheckRenewals();
  void RunWorker();
  void StopWorker();
  void Post(std::function<void()> task);
  static void OnAsync(uv_async_t* a);
  void Finish(const std::string& name, Result<acme::Issued> outcome);
  void FinishAri(const std::string& name, const std::string& serial, Result<acme::RenewalInfo> outcome);
  Status PublishFromWorker(const acme::Challenge& c);
  void WithdrawFromWorker(const acme::Challenge& c);

  ServiceHost& host_;
  std::string tls_dir_;
  acme::AcmeConfig acme_config_;
  std::string acme_ca_file_;
  std::shared_ptr<acme::EcKey> account_key_;
  int64_t check_interval_ms_ = 60'000;

  // Loop-thread state.
  std::map<std::string, proto::TlsPemPair> certs_;     // name -> what is served
  std::map<std::string, std::string> http01_;          // token -> key authorization
  std::map<std::string, proto::TlsPemPair> alpn01_;    // name -> challenge certificate
  std::set<std::string> in_flight_;                    // names with a queued or running job
  // ARI (control/acme/ari.h): when to ask the CA again per domain (absent = at the next check),
  // look-ups queued or running, and whether the CA turned out to offer no renewalInfo.
  std::map<std::string, int64_t> ari_next_s_;
  std::set<std::string> ari_in_flight_;
  bool ari_unsupported_ = false;
  uint64_t tls_generation_ = 0;
  UvHandle<uv_timer_t> timer_;
  UvHandle<uv_async_t> async_;  // assigned before the worker starts, closed after it stopped

  // Shared with the worker thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<std::function<void()>> posted_;
  uint64_t acked_generation_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

// --- start / stop ------------------------------------------------------------------------------

Status DomainsServiceImpl::Start() {
  try {
    db().MigrateTrack("domains", DomainMigrations());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("domains schema: ") + e.what());
  }
  tls_dir_ = host_.data_dir() + "/tls";
  GEYSIR_RETURN_IF_ERROR(EnsureDir(tls_dir_));
  GEYSIR_RETURN_IF_ERROR(EnsureDir(tls_dir_ + "/domains"));

  // Configuration comes from `geysir server` through the environment (docs/internet.md).
  const char* dir = getenv("GEYSIR_ACME_DIRECTORY");
  acme_config_.directory_url = dir && *dir ? dir : "https://acme-v02.api.letsencrypt.org/directory";
  const char* ca = getenv("GEYSIR_ACME_CA");
  acme_ca_file_ = ca ? ca : "";
  const char* email = getenv("GEYSIR_ACME_EMAIL");
  acme_config_.contact_email = email ? email : "";
  if (const char* s = getenv("GEYSIR_ACME_CHECK_S"); s && *s) check_interval_ms_ = std::max(1L, atol(s)) * 1000;

  // Certificates on disk are served again after a restart; nothing is re-issued.
  for (const DomainRecord& r : Query("", "")) {
    if (r.certificate == "none") continue;
    Status st = LoadCertificate(r);
    if (!st.ok() && r.status == "issued") log::Warn("domain_certificate_unreadable", {{"domain", r.name}, {"error", st.ToString()}});
  }

  // Without an account key no order can run; domains with operator certificates still work.
  if (Status ks = LoadAccountKey(); !ks.ok()) log::Error("acme_account_key_failed", {{"error", ks.ToString()}});

  if (int rc = async_.Init(host_.loop(), uv_async_init, &DomainsServiceImpl::OnAsync); rc != 0) {
    return Status::Internal(std::string("domains wake-up handle: ") + uv_strerror(rc));
  }
  async_->data = this;
  uv_unref(async_.base());
  if (int rc = timer_.Init(host_.loop(), uv_timer_init); rc != 0) {
    return Status::Internal(std::string("domains renewal timer: ") + uv_strerror(rc));
  }
  timer_->data = this;
  // The first look comes soon after start: domains added before a restart whose certificate
  // never arrived are picked up again.
  uv_timer_start(
      timer_.get(), [](uv_timer_t* t) { static_cast<DomainsServiceImpl*>(t->data)->CheckRenewals(); }, 500,
      static_cast<uint64_t>(check_interval_ms_));
  uv_unref(timer_.base());
  worker_ = std::thread([this] { RunWorker(); });
  log::Info("domains_started", {{"acme_directory", acme_config_.directory_url}, {"acme_ca", acme_ca_file_},
                                {"certificates", certs_.size()}});
  return Status::Ok();
}

void DomainsServiceImpl::StopWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void DomainsServiceImpl::Shutdown() {
  StopWorker();
  timer_.Close();
  async_.Close();
}

// --- storage -----------------------------------------------------------------------------------

std::vector<DomainRecord> DomainsServiceImpl::Query(const std::string& where, const std::string& arg) {
  std::string sql =
      "SELECT name, url_id, certificate, challenge, status, last_error, serial, "
      "not_before, not_after, renew_at, failures, created FROM domains " +
      where + " ORDER BY name";
  Statement st = db().Prepare(sql);
  if (!arg.empty()) st.Bind(1, arg);
  std::vector<DomainRecord> out;
  while (st.Step()) {
    DomainRecord r;
    r.name = st.Text(0);
    r.url_id = st.Text(1);
    r.certificate = st.Text(2);
    r.challenge = st.Text(3);
    r.status = st.Text(4);
    r.last_error = st.Text(5);
    r.serial = st.Text(6);
    r.not_before_s = st.Int(7);
    r.not_after_s = st.Int(8);
    r.renew_at_s = st.Int(9);
    r.failures = static_cast<int>(st.Int(10));
    r.created_s = st.Int(11);
    out.push_back(std::move(r));
  }
  if (out.empty()) return out;
  // The mappings of the domains found (a handful each), in key order.
  std::map<std::string, DomainRecord*> by_name;
  for (DomainRecord& r : out) by_name[r.name] = &r;
  Statement ms = db().Prepare("SELECT id, domain, api_id, stage, mapping_key FROM domain_mappings ORDER BY domain, mapping_key");
  while (ms.Step()) {
    auto it = by_name.find(ms.Text(1));
    if (it == by_name.end()) continue;
    it->second->mappings.push_back(ApiMapping{ms.Text(0), ms.Text(2), ms.Text(3), ms.Text(4)});
  }
  return out;
}

void DomainsServiceImpl::Save(const DomainRecord& r) {
  db().Prepare(
          "INSERT OR REPLACE INTO domains (name, url_id, certificate, challenge, status, "
          "last_error, serial, not_before, not_after, renew_at, failures, created) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
      .BindAll(r.name, r.url_id, r.certificate, r.challenge, r.status, r.last_error,
               r.serial, r.not_before_s, r.not_after_s, r.renew_at_s, r.failures, r.created_s)
      .Run();
}

// Called inside PutDomain/SetTarget before Save; the mapping rows change here.
Status DomainsServiceImpl::ReplaceTarget(DomainRecord& r, const DomainSpec& spec) {
  if (!spec.url_id.empty() && !spec.api_id.empty()) return Status::Invalid("give a function URL or an API, not both");
  if (spec.url_id.empty() && spec.api_id.empty()) return Status::Ok();  // keeps what it had
  ApiMapping m;
  if (!spec.api_id.empty()) {
    auto key = NormalizeMappingKey(spec.base_path);
    if (!key.ok()) return key.status();
    if (spec.stage.empty()) return Status::Invalid("an API target needs its stage");
    m = ApiMapping{NewMappingId(), spec.api_id, spec.stage, *key};
  }
  db().Prepare("DELETE FROM domain_mappings WHERE domain = ?").BindAll(r.name).Run();
  r.mappings.clear();
  r.url_id = Lower(spec.url_id);
  if (!spec.api_id.empty()) {
    db().Prepare("INSERT INTO domain_mappings (id, domain, api_id, stage, mapping_key, created) VALUES (?,?,?,?,?,?)")
        .BindAll(m.id, r.name, m.api_id, m.stage, m.key, NowS())
        .Run();
    r.mappings.push_back(std::move(m));
  }
  return Status::Ok();
}

Status DomainsServiceImpl::LoadCertificate(const DomainRecord& r) {
  auto chain = ReadFile(DomainDir(r.name) + "/cert.pem");
  if (!chain.ok()) return chain.status();
  auto key = ReadFile(DomainDir(r.name) + "/key.pem");
  if (!key.ok()) return key.status();
  auto parsed = net::TlsCertificate::FromPem(*chain, *key);
  if (!parsed.ok()) return parsed.status();
  certs_[r.name] = proto::TlsPemPair{std::move(*chain), std::move(*key)};
  return Status::Ok();
}

// Checks the pair, writes it (key first, both 0600, each atomically), updates the record.
Status DomainsServiceImpl::StoreCertificate(DomainRecord& r, const std::string& chain_pem, const std::string& key_pem) {
  auto parsed = net::TlsCertificate::FromPem(chain_pem, key_pem);
  if (!parsed.ok()) return parsed.status();
  if (!(*parsed)->Covers(r.name)) {
    std::string names;
    for (const auto& n : (*parsed)->names()) names += (names.empty() ? "" : ", ") + n;
    return Status::Invalid("the certificate is for " + (names.empty() ? std::string("no DNS name") : names) +
                           ", not " + r.name);
  }
  GEYSIR_RETURN_IF_ERROR(EnsureDir(DomainDir(r.name)));
  GEYSIR_RETURN_IF_ERROR(WriteFileAtomic(DomainDir(r.name) + "/key.pem", key_pem, 0600));
  GEYSIR_RETURN_IF_ERROR(WriteFileAtomic(DomainDir(r.name) + "/cert.pem", chain_pem, 0600));
  r.serial = (*parsed)->serial_hex();
  r.not_before_s = (*parsed)->not_before_s();
  r.not_after_s = (*parsed)->not_after_s();
  r.renew_at_s = r.certificate == "acme" ? RenewAt(r.not_before_s, r.not_after_s) : 0;
  r.status = "issued";
  r.last_error.clear();
  r.failures = 0;
  certs_[r.name] = proto::TlsPemPair{chain_pem, key_pem};
  return Status::Ok();
}

void DomainsServiceImpl::StateChanged() {
  ++tls_generation_;
  host_.RoutesChanged();  // pushes the routes frame and, after it, ours
}

void DomainsServiceImpl::ContributeGatewayFrames(std::vector<proto::Frame>& out) {
  proto::TlsState state;
  state.generation = tls_generation_;
  for (const auto& [name, pair] : certs_) state.certificates.push_back(pair);
  state.http01 = http01_;
  state.alpn01 = alpn01_;
  try {
    // One entry per target: a function URL, each API mapping, or the bare name (no target yet).
    for (const DomainRecord& r : Query("", "")) {
      if (r.mappings.empty()) state.domains.push_back(proto::CustomDomainRoute{r.name, r.url_id, "", "", ""});
      for (const ApiMapping& m : r.mappings)
        state.domains.push_back(proto::CustomDomainRoute{r.name, "", m.api_id, m.stage, m.key});
    }
  } catch (const std::exception& e) {
    log::Error("domains_query_failed", {{"error", e.what()}});
  }
  out.push_back(proto::MakeFrame(proto::kMsgTls, state));
}

void DomainsServiceImpl::OnPeerFrame(const proto::Frame& frame) {
  if (frame.type() != proto::kMsgTlsApplied) return;
  uint64_t gen = frame.header.value("generation", uint64_t{0});
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_generation_ = std::max(acked_generation_, gen);
  }
  cv_.notify_all();
}

// --- DomainRegistry ----------------------------------------------------------------------------

Result<DomainRecord> DomainsServiceImpl::PutDomain(const DomainSpec& spec) {
  DomainRecord r;
  r.name = Lower(spec.name);
  while (!r.name.empty() && r.name.back() == '.') r.name.pop_back();
  GEYSIR_RETURN_IF_ERROR(ValidateDomainName(r.name));
  r.certificate = spec.certificate.empty() ? "acme" : spec.certificate;
  if (r.certificate != "acme" && r.certificate != "manual" && r.certificate != "none")
    return Status::Invalid("Certificate must be acme, manual or none, not '" + r.certificate + "'");
  r.challenge = spec.challenge.empty() ? "http-01" : spec.challenge;
  if (r.challenge != "http-01" && r.challenge != "tls-alpn-01")
    return Status::Invalid("Challenge must be http-01 or tls-alpn-01, not '" + r.challenge + "'");
  if (!spec.url_id.empty() && !spec.api_id.empty()) return Status::Invalid("give a function URL or an API, not both");
  r.created_s = NowS();
  // Replacing a domain keeps its certificate (and its creation time) when the source stays.
  auto existing = Query("WHERE name = ?", r.name);
  if (!existing.empty()) {
    const DomainRecord& old = existing[0];
    r.created_s = old.created_s;
    r.url_id = old.url_id;
    r.mappings = old.mappings;
    if (old.certificate == r.certificate && r.certificate == "acme") {
      r.status = old.status;
      r.last_error = old.last_error;
      r.serial = old.serial;
      r.not_before_s = old.not_before_s;
      r.not_after_s = old.not_after_s;
      r.renew_at_s = old.renew_at_s;
      r.failures = old.failures;
    }
  }
  if (r.certificate == "manual") {
    if (spec.cert_pem.empty() || spec.key_pem.empty())
      return Status::Invalid("a manual certificate needs both the certificate and the private key (PEM)");
    GEYSIR_RETURN_IF_ERROR(StoreCertificate(r, spec.cert_pem, spec.key_pem));
  } else if (r.certificate == "none") {
    r.status = "none";
    certs_.erase(r.name);
  } else if (r.status.empty() || r.serial.empty()) {
    r.status = "pending";
    certs_.erase(r.name);
  }
  {
    Transaction tx(db());
    GEYSIR_RETURN_IF_ERROR(ReplaceTarget(r, spec));
    Save(r);
    tx.Commit();
  }
  log::Info("domain_put", {{"domain", r.name}, {"url_id", r.url_id}, {"api_id", spec.api_id},
                           {"certificate", r.certificate}, {"challenge", r.challenge}});
  // Issuance starts because an operator configured the domain: never because of a request.
  if (r.certificate == "acme" && r.serial.empty()) Enqueue(r.name, r.challenge);
  StateChanged();
  return r;
}

Result<DomainRecord> DomainsServiceImpl::SetTarget(std::string_view name, const DomainSpec& target) {
  auto rows = Query("WHERE name = ?", Lower(std::string(name)));
  if (rows.empty()) return Status::NotFound("no custom domain " + std::string(name));
  DomainRecord r = rows[0];
  {
    Transaction tx(db());
    GEYSIR_RETURN_IF_ERROR(ReplaceTarget(r, target));
    Save(r);
    tx.Commit();
  }
  StateChanged();
  return r;
}

Result<ApiMapping> DomainsServiceImpl::AddMapping(std::string_view name, ApiMapping mapping) {
  auto rows = Query("WHERE name = ?", Lower(std::string(name)));
  if (rows.empty()) return Status::NotFound("no custom domain " + std::string(name));
  const DomainRecord& r = rows[0];
  if (!r.url_id.empty())
    return Status::Invalid(r.name + " routes to the function URL " + r.url_id + "; remove it before mapping APIs");
  auto key = NormalizeMappingKey(mapping.key);
  if (!key.ok()) return key.status();
  if (mapping.api_id.empty()) return Status::Invalid("an API mapping needs an API id");
  for (const ApiMapping& m : r.mappings) {
    if (m.key == *key)
      return Status::Error(Code::kAlreadyExists, "the base path '" + (key->empty() ? std::string("(none)") : *key) +
                                                     "' of " + r.name + " is already mapped");
  }
  mapping.key = *key;
  mapping.id = NewMappingId();
  db().Prepare("INSERT INTO domain_mappings (id, domain, api_id, stage, mapping_key, created) VALUES (?,?,?,?,?,?)")
      .BindAll(mapping.id, r.name, mapping.api_id, mapping.stage, mapping.key, NowS())
      .Run();
  log::Info("domain_mapping_added", {{"domain", r.name}, {"id", mapping.id}, {"api_id", mapping.api_id},
                                     {"stage", mapping.stage}, {"key", mapping.key}});
  StateChanged();
  return mapping;
}

Status DomainsServiceImpl::DeleteMapping(std::string_view name, std::string_view mapping_id) {
  std::string domain = Lower(std::string(name));
  if (Query("WHERE name = ?", domain).empty()) return Status::NotFound("no custom domain " + domain);
  if (db().Prepare("DELETE FROM domain_mappings WHERE domain = ? AND id = ?").BindAll(domain, std::string(mapping_id)).Run() == 0)
    return Status::NotFound("no API mapping " + std::string(mapping_id) + " on " + domain);
  StateChanged();
  return Status::Ok();
}

Result<DomainRecord> DomainsServiceImpl::GetDomain(std::string_view name) {
  auto rows = Query("WHERE name = ?", Lower(std::string(name)));
  if (rows.empty()) return Status::NotFound("no custom domain " + std::string(name));
  return rows[0];
}

Result<std::vector<DomainRecord>> DomainsServiceImpl::ListDomains() { return Query("", ""); }

Status DomainsServiceImpl::DeleteDomain(std::string_view raw) {
  std::string name = Lower(std::string(raw));
  if (db().Prepare("DELETE FROM domains WHERE name = ?").BindAll(name).Run() == 0)
    return Status::NotFound("no custom domain " + name);
  db().Prepare("DELETE FROM domain_mappings WHERE domain = ?").BindAll(name).Run();
  certs_.erase(name);
  alpn01_.erase(name);
  unlink((DomainDir(name) + "/cert.pem").c_str());
  unlink((DomainDir(name) + "/key.pem").c_str());
  rmdir(DomainDir(name).c_str());
  log::Info("domain_deleted", {{"domain", name}});
  StateChanged();
  return Status::Ok();
}

Status DomainsServiceImpl::RenewNow(std::string_view raw) {
  auto r = GetDomain(raw);
  if (!r.ok()) return r.status();
  if (r->certificate != "acme") return Status::Invalid(r->name + " does not get its certificate by ACME");
  if (in_flight_.count(r->name) > 0) return Status::Error(Code::kAlreadyExists, "an order for " + r->name + " is running");
  Enqueue(r->name, r->challenge);
  return Status::Ok();
}

// --- ACME worker -------------------------------------------------------------------------------

Status DomainsServiceImpl::LoadAccountKey() {
  if (account_key_) return Status::Ok();
  const std::string path = tls_dir_ + "/acme-account.key";
  auto pem = ReadFile(path);
  if (pem.ok()) {
    auto key = acme::EcKey::FromPem(*pem);
    if (!key.ok()) return key.status().Wrap(path);
    account_key_ = std::make_shared<acme::EcKey>(std::move(*key));
    return Status::Ok();
  }
  auto key = acme::EcKey::Generate();
  if (!key.ok()) return key.status();
  GEYSIR_RETURN_IF_ERROR(WriteFileAtomic(path, key->ToPem(), 0600));
  account_key_ = std::make_shared<acme::EcKey>(std::move(*key));
  log::Info("acme_account_key_created", {{"path", path}});
  return Status::Ok();
}

void DomainsServiceImpl::Enqueue(const std::string& name, const std::string& challenge) {
  if (!in_flight_.insert(name).second) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(Job{name, challenge});
  }
  cv_.notify_all();
  log::Info("acme_order_queued", {{"domain", name}, {"challenge", challenge}});
}

void DomainsServiceImpl::CheckRenewals() {
  const int64_t now = NowS();
  try {
    for (const DomainRecord& r : Query("WHERE certificate = 'acme'", "")) {
      if (in_flight_.count(r.name) > 0) continue;
      if (r.serial.empty() && r.failures == 0) {
        Enqueue(r.name, r.challenge);  // added, but the first order never finished (restart)
      } else if (r.renew_at_s > 0 && r.renew_at_s <= now) {
        Enqueue(r.name, r.challenge);
      } else if (!ari_unsupported_ && !r.serial.empty() && r.failures == 0 && ari_in_flight_.count(r.name) == 0 &&
                 ari_next_s_[r.name] <= now) {
        auto cert = certs_.find(r.name);
        if (cert == certs_.end()) continue;
        ari_in_flight_.insert(r.name);
        {
          std::lock_guard<std::mutex> lock(mu_);
          jobs_.push_back(Job{r.name, "", cert->second.cert_pem, r.serial});
        }
        cv_.notify_all();
      }
    }
  } catch (const std::exception& e) {
    log::Error("domains_query_failed", {{"error", e.what()}});
  }
}

void DomainsServiceImpl::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || !async_) return;
  posted_.push_back(std::move(task));
  uv_async_send(async_.get());
}

void DomainsServiceImpl::OnAsync(uv_async_t* a) {
  auto* self = static_cast<DomainsServiceImpl*>(a->data);
  if (self == nullptr) return;
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    tasks.swap(self->posted_);
  }
  // A closure runs outside any request's try/catch: an exception must not end control.
  for (auto& t : tasks) {
    try {
      t();
    } catch (const std::exception& e) {
      log::Error("domains_task_failed", {{"what", e.what()}});
    }
  }
}

Status DomainsServiceImpl::PublishFromWorker(const acme::Challenge& c) {
  // The loop publishes and reports the generation that carries the answer. The rendezvous is
  // shared so that a late closure never touches this stack frame.
  struct Rendezvous {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    uint64_t generation = 0;
    std::string error;
  };
  auto rv = std::make_shared<Rendezvous>();
  Post([this, rv, c] {
    std::string error;
    if (c.type == "http-01") {
      http01_[c.token] = c.key_authorization;
    } else {
      auto pair = acme::MakeAlpnChallenge(c.domain, c.key_authorization);
      if (pair.ok()) {
        alpn01_[c.domain] = std::move(*pair);
      } else {
        error = pair.status().message();
      }
    }
    StateChanged();
    std::lock_guard<std::mutex> lock(rv->m);
    rv->generation = tls_generation_;
    rv->error = error;
    rv->done = true;
    rv->cv.notify_all();
  });
  uint64_t generation = 0;
  {
    std::unique_lock<std::mutex> lock(rv->m);
    if (!rv->cv.wait_for(lock, std::chrono::milliseconds(kAckWaitMs), [&] { return rv->done; }))
      return Status::Unavailable("control's loop did not publish the challenge answer");
    if (!rv->error.empty()) return Status::Internal("making the TLS-ALPN-01 certificate: " + rv->error);
    generation = rv->generation;
  }
  std::unique_lock<std::mutex> lock(mu_);
  bool acked = cv_.wait_for(lock, std::chrono::milliseconds(kAckWaitMs),
                            [&] { return stopping_ || acked_generation_ >= generation; });
  if (stopping_) return Status::Unavailable("control is shutting down");
  if (!acked) {
    return Status::Unavailable("no gateway confirmed it serves the challenge answer within " +
                               std::to_string(kAckWaitMs / 1000) + " s: is the gateway running?");
  }
  return Status::Ok();
}

void DomainsServiceImpl::WithdrawFromWorker(const acme::Challenge& c) {
  Post([this, c] {
    if (c.type == "http-01") {
      http01_.erase(c.token);
    } else {
      alpn01_.erase(c.domain);
    }
    StateChanged();
  });
}

void DomainsServiceImpl::RunWorker() {
  std::unique_ptr<acme::AcmeTransport> transport;
  std::unique_ptr<acme::AcmeClient> client;
  auto ensure_client = [&] {
    if (client) return;
    transport = acme::MakeCurlTransport(acme_ca_file_);
    acme::AcmeConfig config = acme_config_;
    config.sleep = [this](int64_t ms) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
    };
    client = std::make_unique<acme::AcmeClient>(*transport, config, *account_key_);
  };
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!job.ari_chain_pem.empty()) {
      Result<acme::RenewalInfo> info = Status::Internal("no ACME account key");
      if (account_key_) {
        ensure_client();
        try {
          info = client->GetRenewalInfo(job.ari_chain_pem);
        } catch (const std::exception& e) {
          info = Status::Internal(std::string("unexpected answer from the CA: ") + e.what());
        }
      }
      auto shared = std::make_shared<Result<acme::RenewalInfo>>(std::move(info));
      Post([this, name = job.name, serial = job.ari_serial, shared] { FinishAri(name, serial, std::move(*shared)); });
      continue;
    }
    Result<acme::Issued> outcome = Status::Internal("not run");
    if (!account_key_) {
      outcome = Status::Internal("no ACME account key");
    } else {
      ensure_client();
      acme::ChallengeHooks hooks;
      hooks.publish = [this](const acme::Challenge& c) { return PublishFromWorker(c); };
      hooks.withdraw = [this](const acme::Challenge& c) { WithdrawFromWorker(c); };
      try {
        outcome = client->Obtain({job.name}, job.challenge, hooks);
      } catch (const std::exception& e) {  // malformed CA answers (JSON of the wrong shape)
        outcome = Status::Internal(std::string("unexpected answer from the CA: ") + e.what());
      }
    }
    std::string name = job.name;
    auto shared = std::make_shared<Result<acme::Issued>>(std::move(outcome));
    Post([this, name, shared] { Finish(name, std::move(*shared)); });
  }
}

void DomainsServiceImpl::Finish(const std::string& name, Result<acme::Issued> outcome) {
  in_flight_.erase(name);
  auto rows = Query("WHERE name = ?", name);
  if (rows.empty()) return;  // deleted while the order ran
  DomainRecord r = rows[0];
  if (r.certificate != "acme") return;
  Status st = outcome.ok() ? StoreCertificate(r, outcome->chain_pem, outcome->key_pem) : outcome.status();
  if (st.ok()) {
    log::Info("certificate_issued", {{"domain", name}, {"serial", r.serial}, {"not_after", r.not_after_s},
                                     {"renew_at", r.renew_at_s}});
  } else {
    r.failures += 1;
    int64_t backoff = kBackoffStartS;
    for (int i = 1; i < r.failures && backoff < kBackoffMaxS; ++i) backoff *= 2;
    r.renew_at_s = NowS() + std::min(backoff, kBackoffMaxS);
    r.status = "failed";
    r.last_error = st.message();
    log::Warn("certificate_failed", {{"domain", name}, {"error", r.last_error}, {"failures", r.failures},
                                     {"retry_in_s", std::min(backoff, kBackoffMaxS)},
                                     {"serving", r.serial.empty() ? "nothing" : r.serial}});
  }
  Save(r);
  if (st.ok()) {
    ari_next_s_.erase(name);  // the new certificate's ARI window is asked for at the next check
    StateChanged();
  }
}

// An ARI answer (control/acme/ari.h): renew_at moves into the CA's window unless it already lies
// inside it (so repeated look-ups do not keep re-drawing the moment). A failing or refused
// renewal's back-off is left alone, and so is a certificate replaced since the look-up began.
void DomainsServiceImpl::FinishAri(const std::string& name, const std::string& serial, Result<acme::RenewalInfo> outcome) {
  ari_in_flight_.erase(name);
  const int64_t now = NowS();
  if (!outcome.ok()) {
    if (outcome.status().code() == Code::kNotFound) {
      ari_unsupported_ = true;
      log::Info("acme_ari_unsupported", {{"reason", outcome.status().message()}});
    } else {
      ari_next_s_[name] = now + 3600;
      log::Warn("acme_ari_failed", {{"domain", name}, {"error", outcome.status().message()}});
    }
    return;
  }
  ari_next_s_[name] = now + outcome->recheck_s;
  auto rows = Query("WHERE name = ?", name);
  if (rows.empty()) return;
  DomainRecord r = rows[0];
  if (r.serial != serial || r.failures > 0 || r.certificate != "acme") return;
  const acme::RenewalWindow& w = outcome->window;
  if (r.renew_at_s >= w.start_s && r.renew_at_s < w.end_s) return;
  uint64_t draw = 0;
  RandomBytes(&draw, sizeof draw);
  r.renew_at_s = acme::ChooseRenewalTime(w, now, draw);
  Save(r);
  log::Info("acme_ari_window", {{"domain", name}, {"start", w.start_s}, {"end", w.end_s}, {"renew_at", r.renew_at_s},
                                {"explanation", w.explanation_url}});
}

// --- native API --------------------------------------------------------------------------------

Status DomainsServiceImpl::Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  auto reply = [&](int status, const json& body) {
    net::HttpResponse r = net::JsonResponse(status, body.dump());
    r.headers.emplace_back("x-amzn-RequestId", info.request_id);
    resp->Send(std::move(r));
    return Status::Ok();
  };
  auto method_not_allowed = [](std::string message) {
    return AwsStatus(Code::kUnimplemented, "MethodNotAllowedException", std::move(message));
  };
  std::string rest = req.path.substr(kNativePrefix.size());
  if (!rest.empty() && rest[0] == '/') rest.erase(0, 1);
  std::string name = net::PercentDecode(rest.substr(0, rest.find('/')), false);
  std::string action = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);

  if (name.empty()) {
    if (req.method != "GET") return method_not_allowed("use GET " + std::string(kNativePrefix));
    GEYSIR_ASSIGN_OR_RETURN(const std::vector<DomainRecord> domains, ListDomains());
    json list = json::array();
    for (const auto& r : domains) list.push_back(RecordJson(r));
    return reply(200, {{"Domains", list}});
  }
  if (action == "renew") {
    if (req.method != "POST") return method_not_allowed("use POST .../renew");
    GEYSIR_RETURN_IF_ERROR(RenewNow(name));
    GEYSIR_ASSIGN_OR_RETURN(const DomainRecord renewed, GetDomain(name));
    return reply(202, RecordJson(renewed));
  }
  if (!action.empty()) {
    return AwsStatus(Code::kUnimplemented, "UnknownOperationException", "no such domain operation: " + action);
  }
  if (req.method == "GET") {
    GEYSIR_ASSIGN_OR_RETURN(const DomainRecord domain, GetDomain(name));
    return reply(200, RecordJson(domain));
  } else if (req.method == "DELETE") {
    GEYSIR_RETURN_IF_ERROR(DeleteDomain(name));
    resp->Send(net::HttpResponse{204, {{"x-amzn-RequestId", info.request_id}}, ""});
    return Status::Ok();
  } else if (req.method == "PUT") {
    json body = ParseUntrustedJsonOrDiscarded(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
    if (!body.is_object()) {
      return AwsStatus(Code::kInvalidArgument, "InvalidRequestContentException", "the request body must be a JSON object");
    }
    DomainSpec spec;
    spec.name = name;
    auto str = [&](const char* k) { return body.contains(k) && body[k].is_string() ? body[k].get<std::string>() : ""; };
    spec.url_id = str("UrlId");
    spec.api_id = str("ApiId");
    spec.stage = str("Stage");
    spec.base_path = str("BasePath");
    spec.certificate = str("Certificate");
    spec.challenge = str("Challenge");
    spec.cert_pem = str("CertificatePem");
    spec.key_pem = str("PrivateKeyPem");
    Result<DomainRecord> r = PutDomain(spec);
    // Whatever PutDomain refused, the client gets it as a bad parameter (400).
    if (!r.ok()) return Status::Invalid(r.status().message());
    return reply(200, RecordJson(*r));
  }
  return method_not_allowed("domains take GET, PUT and DELETE");
}

// --- registration ------------------------------------------------------------------------------

std::unique_ptr<DomainsService> MakeDomainsService(ServiceHost& host) { return std::make_unique<DomainsServiceImpl>(host); }

}  // namespace geysir::control
