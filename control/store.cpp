// Store: the schema (as numbered migrations) and the typed operations over it. See store.h.
#include "control/store.h"

#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "base/log.h"
#include "control/db.h"
#include "control/db_row.h"

namespace geysir::control {
namespace {

// The schema, one numbered step per change. Never edit a released step: add a new one.
const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "functions, URL configs, access keys, logs", R"sql(
CREATE TABLE functions (
  name                      TEXT PRIMARY KEY NOT NULL,
  arn                       TEXT NOT NULL,
  runtime                   TEXT NOT NULL,
  handler                   TEXT NOT NULL,
  role                      TEXT NOT NULL DEFAULT '',
  description               TEXT NOT NULL DEFAULT '',
  memory_mb                 INTEGER NOT NULL,
  timeout_s                 INTEGER NOT NULL,
  ephemeral_storage_mb      INTEGER NOT NULL,
  environment               TEXT NOT NULL DEFAULT '{}',
  code_sha256               TEXT NOT NULL,
  code_hex                  TEXT NOT NULL,
  code_size                 INTEGER NOT NULL,
  revision_id               TEXT NOT NULL,
  state                     TEXT NOT NULL,
  state_reason              TEXT NOT NULL DEFAULT '',
  state_reason_code         TEXT NOT NULL DEFAULT '',
  last_update_status        TEXT NOT NULL,
  last_update_status_reason TEXT NOT NULL DEFAULT '',
  last_modified             TEXT NOT NULL,
  version                   TEXT NOT NULL DEFAULT '$LATEST',
  reserved_concurrency      INTEGER,
  tags                      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX functions_code_hex ON functions(code_hex);

CREATE TABLE function_url_configs (
  function_name      TEXT PRIMARY KEY NOT NULL
                     REFERENCES functions(name) ON DELETE CASCADE ON UPDATE CASCADE,
  url_id             TEXT NOT NULL UNIQUE,
  auth_type          TEXT NOT NULL,
  cors               TEXT NOT NULL DEFAULT 'null',
  invoke_mode        TEXT NOT NULL DEFAULT 'BUFFERED',
  creation_time      TEXT NOT NULL,
  last_modified_time TEXT NOT NULL
);

CREATE TABLE access_keys (
  access_key_id TEXT PRIMARY KEY NOT NULL,
  secret        TEXT NOT NULL,
  created       TEXT NOT NULL,
  is_admin      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE logs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  function_name TEXT NOT NULL,
  log_stream    TEXT NOT NULL,
  request_id    TEXT NOT NULL DEFAULT '',
  timestamp_ms  INTEGER NOT NULL,
  message       TEXT NOT NULL
);
CREATE INDEX logs_function_time ON logs(function_name, timestamp_ms);

-- Line count per function, kept with every append and prune so retention never has to count
-- 100k rows on the hot path.
CREATE TABLE log_counts (
  function_name TEXT PRIMARY KEY NOT NULL,
  n             INTEGER NOT NULL
);
)sql"},
      {2, "published versions, aliases, resource policies, invocation metrics", R"sql(
-- Version numbers are never reused while the function exists, even after a version is deleted.
ALTER TABLE functions ADD COLUMN next_version INTEGER NOT NULL DEFAULT 1;

-- A published version: the FunctionRecord frozen as JSON; code_hex is a column so code GC can
-- find what versions still reference.
CREATE TABLE function_versions (
  function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
  version       INTEGER NOT NULL,
  code_hex      TEXT NOT NULL,
  config        TEXT NOT NULL,
  PRIMARY KEY (function_name, version)
);
CREATE INDEX function_versions_code_hex ON function_versions(code_hex);

CREATE TABLE function_aliases (
  function_name    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
  name             TEXT NOT NULL,
  function_version TEXT NOT NULL,
  description      TEXT NOT NULL DEFAULT '',
  routing          TEXT NOT NULL DEFAULT '{}',
  revision_id      TEXT NOT NULL,
  PRIMARY KEY (function_name, name)
);

CREATE TABLE function_permissions (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
  qualifier     TEXT NOT NULL DEFAULT '',
  sid           TEXT NOT NULL,
  statement     TEXT NOT NULL,
  UNIQUE (function_name, qualifier, sid)
);

-- Kept after the function is deleted, as CloudWatch keeps metrics.
CREATE TABLE function_metrics (
  function_name   TEXT NOT NULL,
  minute_ms       INTEGER NOT NULL,
  invocations     INTEGER NOT NULL DEFAULT 0,
  errors          INTEGER NOT NULL DEFAULT 0,
  duration_sum_ms REAL NOT NULL DEFAULT 0,
  duration_min_ms REAL NOT NULL DEFAULT 0,
  duration_max_ms REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (function_name, minute_ms)
) WITHOUT ROWID;
)sql"},
      {3, "log delivery: the highest batch stored per scheduler process", R"sql(
-- A scheduler resends the batches control had not acknowledged when it died; the seq stored
-- here (in the same transaction as the lines) lets control store each batch once.
CREATE TABLE log_senders (
  sender     TEXT PRIMARY KEY,
  last_seq   INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql"},
  };
  return kMigrations;
}

constexpr size_t kMaxLogMessage = 256 * 1024;

// The tables as records (control/db_row.h); each one's key comes first.
const Table<FunctionRecord>& Functions() {
  using F = FunctionRecord;
  static const Table<F> kTable("functions", {Col("name", &F::name),
                                             Col("arn", &F::arn),
                                             Col("runtime", &F::runtime),
                                             Col("handler", &F::handler),
                                             Col("role", &F::role),
                                             Col("description", &F::description),
                                             Col("memory_mb", &F::memory_mb),
                                             Col("timeout_s", &F::timeout_s),
                                             Col("ephemeral_storage_mb", &F::ephemeral_storage_mb),
                                             JsonCol("environment", &F::environment),
                                             Col("code_sha256", &F::code_sha256),
                                             Col("code_hex", &F::code_hex),
                                             Col("code_size", &F::code_size),
                                             Col("revision_id", &F::revision_id),
                                             Col("state", &F::state),
                                             Col("state_reason", &F::state_reason),
                                             Col("state_reason_code", &F::state_reason_code),
                                             Col("last_update_status", &F::last_update_status),
                                             Col("last_update_status_reason", &F::last_update_status_reason),
                                             Col("last_modified", &F::last_modified),
                                             Col("version", &F::version),
                                             Col("reserved_concurrency", &F::reserved_concurrency),
                                             JsonCol("tags", &F::tags)});
  return kTable;
}

const Table<FunctionUrlConfigRecord>& UrlConfigs() {
  using U = FunctionUrlConfigRecord;
  static const Table<U> kTable("function_url_configs", {Col("function_name", &U::function_name),
                                                        Col("url_id", &U::url_id),
                                                        Col("auth_type", &U::auth_type),
                                                        JsonCol("cors", &U::cors),
                                                        Col("invoke_mode", &U::invoke_mode),
                                                        Col("creation_time", &U::creation_time),
                                                        Col("last_modified_time", &U::last_modified_time)});
  return kTable;
}

const Table<AliasRecord>& Aliases() {
  using A = AliasRecord;
  static const Table<A> kTable("function_aliases",
                               {Col("function_name", &A::function_name), Col("name", &A::name),
                                Col("function_version", &A::function_version), Col("description", &A::description),
                                JsonCol("routing", &A::additional_weights), Col("revision_id", &A::revision_id)},
                               /*key_columns=*/2);
  return kTable;
}

const Table<PermissionRecord>& Permissions() {
  using P = PermissionRecord;
  static const Table<P> kTable("function_permissions", {Col("function_name", &P::function_name),
                                                        Col("qualifier", &P::qualifier), Col("sid", &P::sid),
                                                        JsonCol("statement", &P::statement)},
                               /*key_columns=*/3);
  return kTable;
}

const Table<AccessKey>& AccessKeys() {
  static const Table<AccessKey> kTable("access_keys", {Col("access_key_id", &AccessKey::access_key_id),
                                                       Col("secret", &AccessKey::secret_access_key),
                                                       Col("created", &AccessKey::created),
                                                       Col("is_admin", &AccessKey::is_admin)});
  return kTable;
}

const Table<LogRecord>& Logs() {
  static const Table<LogRecord> kTable("logs", {Col("id", &LogRecord::id),
                                                Col("function_name", &LogRecord::function_name),
                                                Col("log_stream", &LogRecord::log_stream),
                                                Col("request_id", &LogRecord::request_id),
                                                Col("timestamp_ms", &LogRecord::timestamp_ms),
                                                Col("message", &LogRecord::message)});
  return kTable;
}

// One function's minute of metrics; the function's name is the caller's WHERE.
const Table<MetricMinute>& Metrics() {
  using M = MetricMinute;
  static const Table<M> kTable("function_metrics",
                               {Col("minute_ms", &M::minute_ms), Col("invocations", &M::invocations),
                                Col("errors", &M::errors), Col("duration_sum_ms", &M::duration_sum_ms),
                                Col("duration_min_ms", &M::duration_min_ms),
                                Col("duration_max_ms", &M::duration_max_ms)});
  return kTable;
}

// Runs `f`, turning any exception (SQLite failure, corrupt stored JSON) into kInternal.
template <typename F>
auto Guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const DbError& e) {
    return Status::Internal(std::string(what) + ": " + e.what());
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + ": " + e.what());
  }
}

std::string MapToJson(const std::map<std::string, std::string>& m) { return nlohmann::json(m).dump(); }

std::optional<FunctionRecord> LoadFunction(const Db& db, const std::string& name) {
  auto st = db.Prepare(Functions().Select("WHERE name = ?"));
  st.Bind(1, name);
  if (!st.Step()) return std::nullopt;
  return Functions().Read(st);
}

std::optional<FunctionUrlConfigRecord> LoadUrl(const Db& db, const std::string& function_name) {
  auto st = db.Prepare(UrlConfigs().Select("WHERE function_name = ?"));
  st.Bind(1, function_name);
  if (!st.Step()) return std::nullopt;
  return UrlConfigs().Read(st);
}

bool FunctionExists(const Db& db, const std::string& name) {
  auto st = db.Prepare("SELECT 1 FROM functions WHERE name = ?");
  st.Bind(1, name);
  return st.Step();
}

void WriteFunction(const Db& db, const FunctionRecord& f, bool insert) {
  auto st = db.Prepare(insert ? Functions().Insert() : Functions().Update());
  Functions().Bind(st, f);
  st.Run();
}

// A version's frozen record as JSON (function_versions.config).
std::string FunctionToJson(const FunctionRecord& f) {
  nlohmann::json j = {{"name", f.name},
                      {"arn", f.arn},
                      {"runtime", f.runtime},
                      {"handler", f.handler},
                      {"role", f.role},
                      {"description", f.description},
                      {"memory_mb", f.memory_mb},
                      {"timeout_s", f.timeout_s},
                      {"ephemeral_storage_mb", f.ephemeral_storage_mb},
                      {"environment", f.environment},
                      {"code_sha256", f.code_sha256},
                      {"code_hex", f.code_hex},
                      {"code_size", f.code_size},
                      {"revision_id", f.revision_id},
                      {"state", f.state},
                      {"last_update_status", f.last_update_status},
                      {"last_modified", f.last_modified},
                      {"version", f.version}};
  return j.dump();
}

FunctionRecord FunctionFromJson(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  FunctionRecord f;
  f.name = j.at("name").get<std::string>();
  f.arn = j.at("arn").get<std::string>();
  f.runtime = j.at("runtime").get<std::string>();
  f.handler = j.at("handler").get<std::string>();
  f.role = j.value("role", "");
  f.description = j.value("description", "");
  f.memory_mb = j.at("memory_mb").get<uint32_t>();
  f.timeout_s = j.at("timeout_s").get<uint32_t>();
  f.ephemeral_storage_mb = j.value("ephemeral_storage_mb", 512u);
  f.environment = j.value("environment", std::map<std::string, std::string>{});
  f.code_sha256 = j.at("code_sha256").get<std::string>();
  f.code_hex = j.at("code_hex").get<std::string>();
  f.code_size = j.at("code_size").get<int64_t>();
  f.revision_id = j.at("revision_id").get<std::string>();
  f.state = j.value("state", "Active");
  f.last_update_status = j.value("last_update_status", "Successful");
  f.last_modified = j.at("last_modified").get<std::string>();
  f.version = j.at("version").get<std::string>();
  return f;
}

// Lambda publishes a new version only when code or configuration changed since the newest one.
bool SameCodeAndConfig(const FunctionRecord& a, const FunctionRecord& b) {
  return a.code_sha256 == b.code_sha256 && a.runtime == b.runtime && a.handler == b.handler && a.role == b.role &&
         a.memory_mb == b.memory_mb && a.timeout_s == b.timeout_s &&
         a.ephemeral_storage_mb == b.ephemeral_storage_mb && a.environment == b.environment;
}

std::optional<int64_t> ParseVersionNumber(const std::string& v) {
  if (v.empty() || v.size() > 18) return std::nullopt;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

std::optional<FunctionRecord> LoadVersion(const Db& db, const std::string& name, int64_t version) {
  auto st = db.Prepare("SELECT config FROM function_versions WHERE function_name = ? AND version = ?");
  st.BindAll(name, version);
  if (!st.Step()) return std::nullopt;
  return FunctionFromJson(st.Text(0));
}

std::optional<AliasRecord> LoadAlias(const Db& db, const std::string& fn, const std::string& alias) {
  auto st = db.Prepare(Aliases().Select("WHERE function_name = ? AND name = ?"));
  st.BindAll(fn, alias);
  if (!st.Step()) return std::nullopt;
  return Aliases().Read(st);
}

constexpr int64_t kMetricRetentionMs = 15LL * 24 * 3600 * 1000;

std::string B64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> B64Decode(std::string_view in) {
  if (in.size() % 4 != 0 || in.size() > 4096) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding bytes as output; strip them.
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad++;
  if (in.size() > 1 && in[in.size() - 2] == '=') pad++;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

int Clamp(int v, int lo, int hi) { return std::max(lo, std::min(v, hi)); }

// "<timestamp_ms>_<id>": the keyset position after which the next log page starts.
std::optional<std::pair<int64_t, int64_t>> ParseLogToken(const std::string& token) {
  auto us = token.find('_');
  if (us == std::string::npos || us == 0 || us + 1 >= token.size() || token.size() > 48) return std::nullopt;
  try {
    size_t p1 = 0, p2 = 0;
    int64_t ts = std::stoll(token.substr(0, us), &p1);
    int64_t id = std::stoll(token.substr(us + 1), &p2);
    if (p1 != us || p2 != token.size() - us - 1) return std::nullopt;
    return std::make_pair(ts, id);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

// ---- helpers ----

std::string LambdaTimestamp(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  int milli = static_cast<int>(ms % 1000);
  if (milli < 0) {
    milli += 1000;
    secs -= 1;
  }
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
  return buf;
}

proto::FunctionConfig ToFunctionConfig(const FunctionRecord& f, const std::string& code_dir,
                                       const std::string& region) {
  proto::FunctionConfig c;
  c.name = f.name;
  c.arn = f.arn;
  c.version = f.version;
  c.revision_id = f.revision_id;
  c.runtime = f.runtime;
  c.handler = f.handler;
  c.code_dir = code_dir;
  c.code_sha256 = f.code_sha256;
  c.memory_mb = f.memory_mb;
  c.timeout_s = f.timeout_s;
  c.ephemeral_storage_mb = f.ephemeral_storage_mb;
  // The network mode is a Geysir tag (Lambda has no such setting; VpcConfig means something
  // else): validated at CreateFunction, so anything else here is "none".
  if (auto it = f.tags.find("geysir:network"); it != f.tags.end() && it->second == "egress") c.network = "egress";
  c.environment = f.environment;
  // Validated on deploy (ParseEnvironment): anything else here is the default.
  if (auto it = f.environment.find(proto::kExecutionModeVariable); it != f.environment.end() && it->second == "reuse") {
    c.execution_mode = proto::ExecutionMode::kReuse;
  }
  c.reserved_concurrency = f.reserved_concurrency;
  c.region = region;
  c.log_group = "/aws/lambda/" + f.name;
  return c;
}

// ---- Store ----

Store::Store(std::unique_ptr<Db> db, StoreOptions options) : db_(std::move(db)), options_(std::move(options)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& db_path, StoreOptions options) {
  auto db = Db::Open(db_path, Migrations());
  if (!db.ok()) return db.status();
  return std::unique_ptr<Store>(new Store(std::make_unique<Db>(std::move(db).value()), std::move(options)));
}

int Store::LatestSchemaVersion() { return Migrations().back().version; }

int Store::SchemaVersion() const {
  try {
    return db_->SchemaVersion();
  } catch (const DbError&) {
    return -1;
  }
}

int64_t Store::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- functions ----

Result<FunctionRecord> Store::CreateFunction(FunctionRecord f) {
  return Guarded("create function", [&]() -> Result<FunctionRecord> {
    Transaction tx(*db_);
    if (FunctionExists(*db_, f.name)) return Status::Error(Code::kAlreadyExists, "Function already exist: " + f.name);
    f.revision_id = NewUuid();
    f.last_modified = LambdaTimestamp(NowMs());
    WriteFunction(*db_, f, /*insert=*/true);
    tx.Commit();
    return f;
  });
}

Result<FunctionRecord> Store::GetFunction(const std::string& name) {
  return Guarded("get function", [&]() -> Result<FunctionRecord> {
    auto f = LoadFunction(*db_, name);
    if (!f) return Status::NotFound("Function not found: " + name);
    return *f;
  });
}

Result<FunctionPage> Store::ListFunctions(const std::string& marker, int max_items) {
  return Guarded("list functions", [&]() -> Result<FunctionPage> {
    std::string after;
    if (!marker.empty()) {
      auto m = B64Decode(marker);
      if (!m) return Status::Invalid("Invalid marker: " + marker);
      after = *m;
    }
    const int limit = Clamp(max_items, 1, 10000);
    auto st = db_->Prepare(Functions().Select("WHERE name > ? ORDER BY name LIMIT ?"));
    st.BindAll(after, limit + 1);
    FunctionPage page;
    while (st.Step()) page.functions.push_back(Functions().Read(st));
    if (static_cast<int>(page.functions.size()) > limit) {
      page.functions.pop_back();
      page.next_marker = B64Encode(page.functions.back().name);
    }
    return page;
  });
}

Result<FunctionRecord> Store::UpdateFunction(const std::string& name,
                                             const std::function<Status(FunctionRecord&)>& mutate) {
  return Guarded("update function", [&]() -> Result<FunctionRecord> {
    Transaction tx(*db_);
    auto f = LoadFunction(*db_, name);
    if (!f) return Status::NotFound("Function not found: " + name);
    Status s = mutate(*f);
    if (!s.ok()) return s;
    if (f->name != name) return Status::Internal("UpdateFunction mutator changed the name (bug)");
    f->revision_id = NewUuid();
    f->last_modified = LambdaTimestamp(NowMs());
    WriteFunction(*db_, *f, /*insert=*/false);
    tx.Commit();
    return *f;
  });
}

Status Store::DeleteFunction(const std::string& name) {
  return Guarded("delete function", [&]() -> Status {
    auto st = db_->Prepare("DELETE FROM functions WHERE name = ?");
    st.Bind(1, name);
    // A single statement is its own transaction; the URL config goes with it by cascade.
    if (st.Run() == 0) return Status::NotFound("Function not found: " + name);
    return Status::Ok();
  });
}

Result<std::set<std::string>> Store::ReferencedCodeHexes() {
  return Guarded("referenced code", [&]() -> Result<std::set<std::string>> {
    auto st = db_->Prepare("SELECT code_hex FROM functions UNION SELECT code_hex FROM function_versions");
    std::set<std::string> out;
    while (st.Step()) out.insert(st.Text(0));
    return out;
  });
}

// ---- function URL configs ----

Result<FunctionUrlConfigRecord> Store::CreateFunctionUrlConfig(FunctionUrlConfigRecord c) {
  return Guarded("create function URL config", [&]() -> Result<FunctionUrlConfigRecord> {
    Transaction tx(*db_);
    if (!FunctionExists(*db_, c.function_name)) return Status::NotFound("Function not found: " + c.function_name);
    if (LoadUrl(*db_, c.function_name)) {
      return Status::Error(Code::kAlreadyExists, "Failed to create function url config for [functionArn = " +
                                                     c.function_name + "]. Error message:  FunctionUrlConfig exists for this Lambda function");
    }
    const bool generate = c.url_id.empty();
    c.creation_time = c.last_modified_time = LambdaTimestamp(NowMs());
    // A collision of 32 random base-36 characters is practically impossible; retry a few
    // times anyway rather than fail on it.
    for (int attempt = 0;; ++attempt) {
      if (generate) c.url_id = RandomString(32, "abcdefghijklmnopqrstuvwxyz0123456789");
      auto st = db_->Prepare(UrlConfigs().Insert());
      UrlConfigs().Bind(st, c);
      try {
        st.Run();
        break;
      } catch (const DbError& e) {
        if (!e.IsConstraint()) return Status::Internal(std::string("create function URL config: ") + e.what());
        if (!generate || attempt >= 4) return Status::Error(Code::kAlreadyExists, "url id already in use: " + c.url_id);
      }
    }
    tx.Commit();
    return c;
  });
}

Result<FunctionUrlConfigRecord> Store::GetFunctionUrlConfig(const std::string& function_name) {
  return Guarded("get function URL config", [&]() -> Result<FunctionUrlConfigRecord> {
    auto u = LoadUrl(*db_, function_name);
    if (!u) {
      if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
      return Status::NotFound("The resource you requested does not exist.");
    }
    return *u;
  });
}

Result<FunctionUrlConfigRecord> Store::UpdateFunctionUrlConfig(
    const std::string& function_name, const std::function<Status(FunctionUrlConfigRecord&)>& mutate) {
  return Guarded("update function URL config", [&]() -> Result<FunctionUrlConfigRecord> {
    Transaction tx(*db_);
    auto u = LoadUrl(*db_, function_name);
    if (!u) return Status::NotFound("The resource you requested does not exist.");
    const FunctionUrlConfigRecord before = *u;
    Status s = mutate(*u);
    if (!s.ok()) return s;
    // Only these three may change; the rest is identity and history.
    u->function_name = before.function_name;
    u->url_id = before.url_id;
    u->creation_time = before.creation_time;
    u->last_modified_time = LambdaTimestamp(NowMs());
    auto st = db_->Prepare(UrlConfigs().Update());
    UrlConfigs().Bind(st, *u);
    st.Run();
    tx.Commit();
    return *u;
  });
}

Result<FunctionUrlConfigPage> Store::ListFunctionUrlConfigs(const std::string& function_name,
                                                           const std::string& marker, int max_items) {
  return Guarded("list function URL configs", [&]() -> Result<FunctionUrlConfigPage> {
    if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
    std::string after;
    if (!marker.empty()) {
      auto m = B64Decode(marker);
      if (!m) return Status::Invalid("Invalid marker: " + marker);
      after = *m;
    }
    const int limit = Clamp(max_items, 1, 50);
    auto st = db_->Prepare(UrlConfigs().Select("WHERE function_name = ? AND url_id > ? ORDER BY url_id LIMIT ?"));
    st.BindAll(function_name, after, limit + 1);
    FunctionUrlConfigPage page;
    while (st.Step()) page.configs.push_back(UrlConfigs().Read(st));
    if (static_cast<int>(page.configs.size()) > limit) {
      page.configs.pop_back();
      page.next_marker = B64Encode(page.configs.back().url_id);
    }
    return page;
  });
}

Status Store::DeleteFunctionUrlConfig(const std::string& function_name) {
  return Guarded("delete function URL config", [&]() -> Status {
    auto st = db_->Prepare("DELETE FROM function_url_configs WHERE function_name = ?");
    st.Bind(1, function_name);
    if (st.Run() == 0) {
      if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
      return Status::NotFound("The resource you requested does not exist.");
    }
    return Status::Ok();
  });
}

Result<FunctionUrlConfigRecord> Store::FindFunctionUrlByUrlId(const std::string& url_id) {
  return Guarded("find function URL", [&]() -> Result<FunctionUrlConfigRecord> {
    auto st = db_->Prepare(UrlConfigs().Select("WHERE url_id = ?"));
    st.Bind(1, url_id);
    if (!st.Step()) return Status::NotFound("No function URL with id " + url_id);
    return UrlConfigs().Read(st);
  });
}

Result<std::vector<proto::FunctionUrlRoute>> Store::ListFunctionUrlRoutes(
    const std::function<std::string(const std::string& code_hex)>& code_dir_for, const std::string& region) {
  return Guarded("list function URL routes", [&]() -> Result<std::vector<proto::FunctionUrlRoute>> {
    // Each table's columns prefixed by its alias so the join is unambiguous; the URL config's
    // follow the function's.
    auto st = db_->Prepare("SELECT " + Functions().Columns("f.") + ", " + UrlConfigs().Columns("u.") +
                           " FROM function_url_configs u JOIN functions f ON f.name = u.function_name ORDER BY u.url_id");
    std::vector<proto::FunctionUrlRoute> out;
    while (st.Step()) {
      FunctionRecord f = Functions().Read(st);
      FunctionUrlConfigRecord u = UrlConfigs().Read(st, static_cast<int>(Functions().size()));
      proto::FunctionUrlRoute r;
      r.url_id = std::move(u.url_id);
      r.auth_type = std::move(u.auth_type);
      r.cors = std::move(u.cors);
      r.function = ToFunctionConfig(f, code_dir_for(f.code_hex), region);
      out.push_back(std::move(r));
    }
    return out;
  });
}

// ---- access keys ----

Result<AccessKey> Store::CreateAdminKey() {
  return Guarded("create admin key", [&]() -> Result<AccessKey> {
    AccessKey k;
    k.access_key_id = "AKIA" + RandomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    k.secret_access_key =
        RandomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    k.created = LambdaTimestamp(NowMs());
    k.is_admin = true;
    auto st = db_->Prepare(AccessKeys().Insert());
    AccessKeys().Bind(st, k);
    st.Run();
    return k;
  });
}

Result<AccessKey> Store::GetAccessKey(const std::string& access_key_id) {
  return Guarded("get access key", [&]() -> Result<AccessKey> {
    auto st = db_->Prepare(AccessKeys().Select("WHERE access_key_id = ?"));
    st.Bind(1, access_key_id);
    if (!st.Step()) return Status::NotFound("The security token included in the request is invalid.");
    return AccessKeys().Read(st);
  });
}

Result<std::vector<AccessKey>> Store::ListAccessKeys() {
  return Guarded("list access keys", [&]() -> Result<std::vector<AccessKey>> {
    auto st = db_->Prepare(AccessKeys().Select("ORDER BY created, access_key_id"));
    std::vector<AccessKey> out;
    while (st.Step()) out.push_back(AccessKeys().Read(st));
    return out;
  });
}

// ---- logs ----

Result<bool> Store::AppendLogs(const proto::LogBatch& batch) {
  if (batch.events.empty() && batch.outcome.empty()) return true;
  Result<size_t> stored = AppendLogBatches({batch});
  if (!stored.ok()) return stored.status();
  return *stored == 1;
}

Result<size_t> Store::AppendLogBatches(const std::vector<proto::LogBatch>& batches) {
  return Guarded("append logs", [&]() -> Result<size_t> {
    // Durable against kill -9 of any daemon, as every acknowledged log line must be, without an
    // fsync per frame; an OS crash or power loss may lose the last frames (db.h, RelaxedSync).
    RelaxedSync relaxed(*db_);
    Transaction tx(*db_);
    // Per sender of this call: the highest seq stored (read once, advanced batch by batch, written
    // once at the end, in the same transaction as the lines).
    std::map<std::string, std::pair<uint64_t, bool>, std::less<>> senders;  // -> (last seq, advanced)
    std::map<std::string, int64_t, std::less<>> added;                      // lines per function
    // The finished invocations per function, summed per minute: one upsert per minute and
    // function, whatever the number of invocations in the frame.
    std::map<std::string, std::vector<MetricMinute>, std::less<>> metrics;
    auto ins = db_->Cached(
        "INSERT INTO logs (function_name, log_stream, request_id, timestamp_ms, message) VALUES (?,?,?,?,?)");
    size_t stored = 0;
    for (const proto::LogBatch& batch : batches) {
      if (batch.events.empty() && batch.outcome.empty()) continue;
      if (batch.seq != 0) {
        auto it = senders.find(batch.sender);
        if (it == senders.end()) {
          auto last = db_->Cached("SELECT last_seq FROM log_senders WHERE sender = ?");
          last->BindAll(batch.sender);
          const uint64_t seq = last->Step() ? static_cast<uint64_t>(last->Int(0)) : 0;
          it = senders.emplace(batch.sender, std::make_pair(seq, false)).first;
        }
        if (it->second.first >= batch.seq) continue;  // stored already
        it->second = {batch.seq, true};
      }
      for (const proto::LogEvent& e : batch.events) {
        std::string_view msg = e.message;
        if (msg.size() > kMaxLogMessage) msg = msg.substr(0, kMaxLogMessage);
        ins->BindAll(batch.function_name, batch.log_stream, batch.request_id, e.timestamp_ms, msg);
        ins->Run();
        ins->Reset();
      }
      if (!batch.events.empty()) added[batch.function_name] += static_cast<int64_t>(batch.events.size());
      // The batch of a finished invocation also counts it (CloudWatch's Invocations / Errors /
      // Duration), in the same transaction: one fsync, and a resent batch is not counted twice.
      if (!batch.outcome.empty() && !batch.request_id.empty()) {
        const int64_t ts = batch.events.empty() ? NowMs() : batch.events.front().timestamp_ms;
        const int64_t minute = ts - ((ts % 60000) + 60000) % 60000;
        std::vector<MetricMinute>& fm = metrics[batch.function_name];
        auto m = std::find_if(fm.begin(), fm.end(), [&](const MetricMinute& x) { return x.minute_ms == minute; });
        if (m == fm.end()) {
          fm.push_back(MetricMinute{minute, 0, 0, 0, batch.duration_ms, batch.duration_ms});
          m = fm.end() - 1;
        }
        ++m->invocations;
        m->errors += batch.outcome != "ok" ? 1 : 0;
        m->duration_sum_ms += batch.duration_ms;
        m->duration_min_ms = std::min(m->duration_min_ms, batch.duration_ms);
        m->duration_max_ms = std::max(m->duration_max_ms, batch.duration_ms);
      }
      ++stored;
    }
    if (stored == 0) return size_t{0};  // nothing new: the transaction rolls back, nothing to sync
    for (const auto& [sender, mark] : senders) {
      if (!mark.second) continue;
      auto st = db_->Cached(
          "INSERT INTO log_senders (sender, last_seq, updated_ms) VALUES (?1, ?2, ?3) "
          "ON CONFLICT(sender) DO UPDATE SET last_seq = ?2, updated_ms = ?3");
      st->BindAll(sender, static_cast<int64_t>(mark.first), NowMs());
      st->Run();
    }
    for (const auto& [function, n] : added) PruneLogs(function, n);
    for (const auto& [function, minutes] : metrics) AddInvocationMetrics(function, minutes);
    tx.Commit();
    return stored;
  });
}

void Store::PruneLogs(const std::string& function_name, int64_t added) {
  auto cnt = db_->Cached(
      "INSERT INTO log_counts (function_name, n) VALUES (?1, ?2) "
      "ON CONFLICT(function_name) DO UPDATE SET n = n + ?2 RETURNING n");
  cnt->BindAll(function_name, added);
  int64_t n = cnt->Step() ? cnt->Int(0) : 0;
  cnt->Run();
  const int64_t excess = n - options_.max_log_lines_per_function;
  if (excess <= 0) return;
  // Oldest first by (timestamp, id), bounded per append so one call never deletes a huge
  // backlog in one go; the next appends continue where this one stopped.
  // A call covers a whole frame of batches, so it may add more than log_prune_batch lines: it
  // deletes at least as many as it added, or the bound would drift up under load.
  const int64_t batch_size = std::min(excess, std::max<int64_t>({options_.log_prune_batch, added, 1}));
  auto del = db_->Cached(
      "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE function_name = ? "
      "ORDER BY timestamp_ms, id LIMIT ?)");
  del->BindAll(function_name, batch_size);
  int deleted = del->Run();
  auto upd = db_->Cached("UPDATE log_counts SET n = n - ? WHERE function_name = ?");
  upd->BindAll(static_cast<int64_t>(deleted), function_name);
  upd->Run();
}

Result<LogPage> Store::QueryLogs(const LogQuery& q) {
  return Guarded("query logs", [&]() -> Result<LogPage> {
    int64_t after_ts = INT64_MIN, after_id = INT64_MIN;
    if (!q.next_token.empty()) {
      auto t = ParseLogToken(q.next_token);
      if (!t) return Status::Invalid("The specified nextToken is invalid.");
      after_ts = t->first;
      after_id = t->second;
    }
    const int limit = Clamp(q.limit, 1, 10000);
    // The stream list travels as one JSON array so the statement stays a single prepared one.
    const bool any_stream = q.log_streams.empty();
    const std::string streams = nlohmann::json(q.log_streams).dump();
    const bool filtered = static_cast<bool>(q.filter);
    auto st = db_->Prepare(Logs().Select(
        "WHERE function_name = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3 "
        "AND (?4 = '' OR request_id = ?4) "
        "AND (timestamp_ms > ?5 OR (timestamp_ms = ?5 AND id > ?6)) "
        "AND (?8 OR log_stream IN (SELECT value FROM json_each(?9))) "
        "ORDER BY timestamp_ms, id LIMIT ?7"));
    st.BindAll(q.function_name, q.start_ms, q.end_ms, q.request_id, after_ts, after_id,
               filtered ? int64_t{-1} : int64_t{limit + 1}, any_stream, streams);
    LogPage page;
    int64_t scanned = 0;
    while (st.Step()) {
      if (filtered) {
        if (++scanned > q.max_scanned) {
          page.more = true;
          break;
        }
        LogRecord line = Logs().Read(st);
        if (!q.filter(line.message)) continue;
        page.events.push_back(std::move(line));
        if (static_cast<int>(page.events.size()) > limit) break;
        continue;
      }
      page.events.push_back(Logs().Read(st));
    }
    if (static_cast<int>(page.events.size()) > limit) {
      page.events.pop_back();
      page.more = true;
    }
    if (!page.events.empty()) {
      page.next_token = std::to_string(page.events.back().timestamp_ms) + "_" + std::to_string(page.events.back().id);
    } else {
      // Nothing new: hand the caller's position back so a follower can keep polling from it.
      page.next_token = q.next_token;
    }
    return page;
  });
}

Result<int64_t> Store::CountLogs(const std::string& function_name) {
  return Guarded("count logs", [&]() -> Result<int64_t> {
    auto st = db_->Prepare("SELECT count(*) FROM logs WHERE function_name = ?");
    st.Bind(1, function_name);
    st.Step();
    return st.Int(0);
  });
}


// ---- versions ----

Result<FunctionRecord> Store::PublishVersion(const std::string& name, const std::string& description,
                                             const std::function<Status(const FunctionRecord&)>& check) {
  return Guarded("publish version", [&]() -> Result<FunctionRecord> {
    Transaction tx(*db_);
    auto latest = LoadFunction(*db_, name);
    if (!latest) return Status::NotFound("Function not found: " + name);
    if (check) {
      Status s = check(*latest);
      if (!s.ok()) return s;
    }
    auto newest = db_->Prepare(
        "SELECT config FROM function_versions WHERE function_name = ? ORDER BY version DESC LIMIT 1");
    newest.Bind(1, name);
    if (newest.Step()) {
      FunctionRecord last = FunctionFromJson(newest.Text(0));
      if (SameCodeAndConfig(last, *latest)) {
        last.reserved_concurrency = latest->reserved_concurrency;
        last.tags = latest->tags;
        return last;
      }
    }
    auto next = db_->Prepare("SELECT next_version FROM functions WHERE name = ?");
    next.Bind(1, name);
    next.Step();
    const int64_t n = next.Int(0);
    FunctionRecord v = *latest;
    v.version = std::to_string(n);
    v.arn = latest->arn + ":" + v.version;
    v.description = description.empty() ? latest->description : description;
    // Its own revision: the scheduler keys template pools by (name, revision_id), so a version
    // gets a template of its own, running exactly this code and configuration.
    v.revision_id = NewUuid();
    v.last_modified = LambdaTimestamp(NowMs());
    auto ins = db_->Prepare("INSERT INTO function_versions (function_name, version, code_hex, config) VALUES (?,?,?,?)");
    ins.BindAll(name, n, v.code_hex, FunctionToJson(v));
    ins.Run();
    auto bump = db_->Prepare("UPDATE functions SET next_version = ? WHERE name = ?");
    bump.BindAll(n + 1, name);
    bump.Run();
    tx.Commit();
    v.reserved_concurrency = latest->reserved_concurrency;
    v.tags = latest->tags;
    return v;
  });
}

Result<FunctionRecord> Store::GetFunctionVersion(const std::string& name, const std::string& version) {
  if (version.empty() || version == "$LATEST") return GetFunction(name);
  return Guarded("get function version", [&]() -> Result<FunctionRecord> {
    auto latest = LoadFunction(*db_, name);
    if (!latest) return Status::NotFound("Function not found: " + name);
    auto n = ParseVersionNumber(version);
    std::optional<FunctionRecord> v;
    if (n) v = LoadVersion(*db_, name, *n);
    if (!v) return Status::NotFound("Function not found: " + name + ":" + version);
    v->reserved_concurrency = latest->reserved_concurrency;
    v->tags = latest->tags;
    return *v;
  });
}

Result<FunctionPage> Store::ListVersions(const std::string& name, const std::string& marker, int max_items) {
  return Guarded("list versions", [&]() -> Result<FunctionPage> {
    auto latest = LoadFunction(*db_, name);
    if (!latest) return Status::NotFound("Function not found: " + name);
    // Position 0 is $LATEST, position N >= 1 the versions after version N-1... the marker is
    // simply the last version number returned ("0" after $LATEST).
    int64_t after = -1;
    if (!marker.empty()) {
      auto m = B64Decode(marker);
      auto n = m ? ParseVersionNumber(*m) : std::nullopt;
      if (!n) return Status::Invalid("Invalid marker: " + marker);
      after = *n;
    }
    const int limit = Clamp(max_items, 1, 10000);
    FunctionPage page;
    int64_t last = after;
    if (after < 0) {
      page.functions.push_back(*latest);
      last = 0;
    }
    auto st = db_->Prepare(
        "SELECT version, config FROM function_versions WHERE function_name = ? AND version > ? ORDER BY version LIMIT ?");
    st.BindAll(name, std::max<int64_t>(after, 0), limit + 1);
    std::vector<std::pair<int64_t, FunctionRecord>> rows;
    while (st.Step()) rows.emplace_back(st.Int(0), FunctionFromJson(st.Text(1)));
    for (auto& [n, v] : rows) {
      if (static_cast<int>(page.functions.size()) >= limit) {
        page.next_marker = B64Encode(std::to_string(last));
        break;
      }
      v.reserved_concurrency = latest->reserved_concurrency;
      v.tags = latest->tags;
      page.functions.push_back(std::move(v));
      last = n;
    }
    return page;
  });
}

Status Store::DeleteFunctionVersion(const std::string& name, const std::string& version) {
  return Guarded("delete function version", [&]() -> Status {
    Transaction tx(*db_);
    if (!FunctionExists(*db_, name)) return Status::NotFound("Function not found: " + name);
    auto n = ParseVersionNumber(version);
    if (!n) return Status::NotFound("Function not found: " + name + ":" + version);
    auto aliases = db_->Prepare("SELECT name FROM function_aliases WHERE function_name = ? AND function_version = ?");
    aliases.BindAll(name, version);
    if (aliases.Step()) {
      return Status::Error(Code::kConflict, "Unable to delete version because the following aliases reference it: [" +
                                                     aliases.Text(0) + "]");
    }
    auto st = db_->Prepare("DELETE FROM function_versions WHERE function_name = ? AND version = ?");
    st.BindAll(name, *n);
    if (st.Run() == 0) return Status::NotFound("Function not found: " + name + ":" + version);
    tx.Commit();
    return Status::Ok();
  });
}

// ---- aliases ----

namespace {
// Checks that `version` ("$LATEST" or a published number) exists for `fn`.
bool VersionExists(const Db& db, const std::string& fn, const std::string& version) {
  if (version == "$LATEST") return true;
  auto n = ParseVersionNumber(version);
  if (!n) return false;
  auto st = db.Prepare("SELECT 1 FROM function_versions WHERE function_name = ? AND version = ?");
  st.BindAll(fn, *n);
  return st.Step();
}

void WriteAlias(const Db& db, const AliasRecord& a, bool insert) {
  auto st = db.Prepare(insert ? Aliases().Insert() : Aliases().Update());
  Aliases().Bind(st, a);
  st.Run();
}

Status CheckAliasTargets(const Db& db, const AliasRecord& a) {
  if (!VersionExists(db, a.function_name, a.function_version)) {
    return Status::NotFound("Function not found: " + a.function_name + ":" + a.function_version);
  }
  for (const auto& [v, w] : a.additional_weights) {
    if (!VersionExists(db, a.function_name, v)) return Status::NotFound("Function not found: " + a.function_name + ":" + v);
  }
  return Status::Ok();
}
}  // namespace

Result<AliasRecord> Store::CreateAlias(AliasRecord a) {
  return Guarded("create alias", [&]() -> Result<AliasRecord> {
    Transaction tx(*db_);
    if (!FunctionExists(*db_, a.function_name)) return Status::NotFound("Function not found: " + a.function_name);
    GEYSIR_RETURN_IF_ERROR(CheckAliasTargets(*db_, a));
    if (LoadAlias(*db_, a.function_name, a.name)) {
      return Status::Error(Code::kAlreadyExists, "Alias already exists: " + a.name);
    }
    a.revision_id = NewUuid();
    WriteAlias(*db_, a, true);
    tx.Commit();
    return a;
  });
}

Result<AliasRecord> Store::GetAlias(const std::string& function_name, const std::string& alias) {
  return Guarded("get alias", [&]() -> Result<AliasRecord> {
    auto a = LoadAlias(*db_, function_name, alias);
    if (!a) {
      if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
      return Status::NotFound("Alias not found: " + function_name + ":" + alias);
    }
    return *a;
  });
}

Result<AliasRecord> Store::UpdateAlias(const std::string& function_name, const std::string& alias,
                                       const std::function<Status(AliasRecord&)>& mutate) {
  return Guarded("update alias", [&]() -> Result<AliasRecord> {
    Transaction tx(*db_);
    auto a = LoadAlias(*db_, function_name, alias);
    if (!a) {
      if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
      return Status::NotFound("Alias not found: " + function_name + ":" + alias);
    }
    Status s = mutate(*a);
    if (!s.ok()) return s;
    a->function_name = function_name;
    a->name = alias;
    GEYSIR_RETURN_IF_ERROR(CheckAliasTargets(*db_, *a));
    a->revision_id = NewUuid();
    WriteAlias(*db_, *a, false);
    tx.Commit();
    return *a;
  });
}

Status Store::DeleteAlias(const std::string& function_name, const std::string& alias) {
  return Guarded("delete alias", [&]() -> Status {
    if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
    auto st = db_->Prepare("DELETE FROM function_aliases WHERE function_name = ? AND name = ?");
    st.BindAll(function_name, alias);
    st.Run();  // Lambda answers 204 for an alias that is already gone
    return Status::Ok();
  });
}

Result<std::vector<AliasRecord>> Store::ListAliases(const std::string& function_name,
                                                    const std::string& function_version) {
  return Guarded("list aliases", [&]() -> Result<std::vector<AliasRecord>> {
    if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
    auto st = db_->Prepare(
        Aliases().Select("WHERE function_name = ?1 AND (?2 = '' OR function_version = ?2) ORDER BY name"));
    st.BindAll(function_name, function_version);
    std::vector<AliasRecord> out;
    while (st.Step()) out.push_back(Aliases().Read(st));
    return out;
  });
}

// ---- resource policy ----

Status Store::AddPermission(const PermissionRecord& p) {
  return Guarded("add permission", [&]() -> Status {
    Transaction tx(*db_);
    if (!FunctionExists(*db_, p.function_name)) return Status::NotFound("Function not found: " + p.function_name);
    auto st = db_->Prepare(Permissions().Insert() + " ON CONFLICT DO NOTHING");
    Permissions().Bind(st, p);
    if (st.Run() == 0) {
      return Status::Error(Code::kAlreadyExists, "The statement id (" + p.sid +
                                                     ") provided already exists. Please provide a new statement id, "
                                                     "or remove the existing statement.");
    }
    tx.Commit();
    return Status::Ok();
  });
}

Status Store::RemovePermission(const std::string& function_name, const std::string& qualifier, const std::string& sid) {
  return Guarded("remove permission", [&]() -> Status {
    if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
    auto st = db_->Prepare("DELETE FROM function_permissions WHERE function_name = ? AND qualifier = ? AND sid = ?");
    st.BindAll(function_name, qualifier, sid);
    if (st.Run() == 0) return Status::NotFound("Statement " + sid + " is not found in resource policy.");
    return Status::Ok();
  });
}

Result<std::vector<PermissionRecord>> Store::ListPermissions(const std::string& function_name,
                                                             const std::string& qualifier) {
  return Guarded("list permissions", [&]() -> Result<std::vector<PermissionRecord>> {
    if (!FunctionExists(*db_, function_name)) return Status::NotFound("Function not found: " + function_name);
    auto st = db_->Prepare(Permissions().Select("WHERE function_name = ? AND qualifier = ? ORDER BY id"));
    st.BindAll(function_name, qualifier);
    std::vector<PermissionRecord> out;
    while (st.Step()) out.push_back(Permissions().Read(st));
    return out;
  });
}

// ---- function-wide settings ----

Status Store::SetReservedConcurrency(const std::string& name, std::optional<uint32_t> reserved) {
  return Guarded("set reserved concurrency", [&]() -> Status {
    auto st = db_->Prepare("UPDATE functions SET reserved_concurrency = ? WHERE name = ?");
    std::optional<int64_t> v;
    if (reserved) v = *reserved;
    st.Bind(1, v);
    st.Bind(2, name);
    if (st.Run() == 0) return Status::NotFound("Function not found: " + name);
    return Status::Ok();
  });
}

Status Store::UpdateTags(const std::string& name,
                         const std::function<void(std::map<std::string, std::string>&)>& mutate) {
  return Guarded("update tags", [&]() -> Status {
    Transaction tx(*db_);
    auto f = LoadFunction(*db_, name);
    if (!f) return Status::NotFound("Function not found: " + name);
    mutate(f->tags);
    auto st = db_->Prepare("UPDATE functions SET tags = ? WHERE name = ?");
    st.BindAll(MapToJson(f->tags), name);
    st.Run();
    tx.Commit();
    return Status::Ok();
  });
}

Result<int64_t> Store::TotalReservedConcurrency(const std::string& except) {
  return Guarded("total reserved concurrency", [&]() -> Result<int64_t> {
    auto st = db_->Prepare("SELECT coalesce(sum(reserved_concurrency), 0) FROM functions WHERE name != ?");
    st.Bind(1, except);
    st.Step();
    return st.Int(0);
  });
}

// ---- log groups and streams ----

Result<std::vector<LogStreamInfo>> Store::ListLogStreams(const std::string& function_name) {
  return Guarded("list log streams", [&]() -> Result<std::vector<LogStreamInfo>> {
    auto st = db_->Prepare(
        "SELECT log_stream, min(timestamp_ms), max(timestamp_ms), sum(length(message)) FROM logs "
        "WHERE function_name = ? GROUP BY log_stream");
    st.Bind(1, function_name);
    std::vector<LogStreamInfo> out;
    while (st.Step()) out.push_back(LogStreamInfo{st.Text(0), st.Int(1), st.Int(2), st.Int(3)});
    return out;
  });
}

Result<std::vector<LogGroupInfo>> Store::ListLogGroups(const std::string& prefix) {
  return Guarded("list log groups", [&]() -> Result<std::vector<LogGroupInfo>> {
    auto st = db_->Prepare(
        "SELECT function_name, n FROM log_counts WHERE n > 0 AND substr(function_name, 1, length(?1)) = ?1 "
        "ORDER BY function_name");
    st.Bind(1, prefix);
    std::vector<LogGroupInfo> out;
    while (st.Step()) out.push_back(LogGroupInfo{st.Text(0), st.Int(1)});
    return out;
  });
}

Result<int64_t> Store::DeleteLogs(const std::string& function_name) {
  return Guarded("delete logs", [&]() -> Result<int64_t> {
    Transaction tx(*db_);
    auto st = db_->Prepare("DELETE FROM logs WHERE function_name = ?");
    st.Bind(1, function_name);
    const int64_t n = st.Run();
    auto cnt = db_->Prepare("DELETE FROM log_counts WHERE function_name = ?");
    cnt.Bind(1, function_name);
    cnt.Run();
    tx.Commit();
    return n;
  });
}

// ---- metrics ----

Status Store::RecordInvocation(const std::string& function_name, int64_t timestamp_ms, bool error, double duration_ms) {
  return Guarded("record invocation", [&]() -> Status {
    Transaction tx(*db_);
    AddInvocationMetric(function_name, timestamp_ms, error, duration_ms);
    tx.Commit();
    return Status::Ok();
  });
}

void Store::AddInvocationMetric(const std::string& function_name, int64_t timestamp_ms, bool error,
                                double duration_ms) {
  MetricMinute m;
  m.minute_ms = timestamp_ms;
  m.invocations = 1;
  m.errors = error ? 1 : 0;
  m.duration_sum_ms = m.duration_min_ms = m.duration_max_ms = duration_ms;
  AddInvocationMetrics(function_name, {m});
}

void Store::AddInvocationMetrics(const std::string& function_name, const std::vector<MetricMinute>& minutes) {
  auto st = db_->Cached(
      "INSERT INTO function_metrics (function_name, minute_ms, invocations, errors, duration_sum_ms, "
      "duration_min_ms, duration_max_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
      "ON CONFLICT(function_name, minute_ms) DO UPDATE SET invocations = invocations + ?3, "
      "errors = errors + ?4, duration_sum_ms = duration_sum_ms + ?5, "
      "duration_min_ms = min(duration_min_ms, ?6), duration_max_ms = max(duration_max_ms, ?7)");
  for (const MetricMinute& m : minutes) {
    const int64_t minute = m.minute_ms - ((m.minute_ms % 60000) + 60000) % 60000;
    st->BindAll(function_name, minute, m.invocations, m.errors, m.duration_sum_ms, m.duration_min_ms,
               m.duration_max_ms);
    st->Run();
    st->Reset();
  }
  // Retention, bounded: the minute rows of this function older than 15 days.
  auto prune = db_->Cached("DELETE FROM function_metrics WHERE function_name = ? AND minute_ms < ?");
  prune->BindAll(function_name, NowMs() - kMetricRetentionMs);
  prune->Run();
}

Result<std::vector<MetricMinute>> Store::QueryMetrics(const std::string& function_name, int64_t start_ms,
                                                      int64_t end_ms) {
  return Guarded("query metrics", [&]() -> Result<std::vector<MetricMinute>> {
    auto st = db_->Prepare(
        Metrics().Select("WHERE function_name = ? AND minute_ms >= ? AND minute_ms < ? ORDER BY minute_ms"));
    st.BindAll(function_name, start_ms, end_ms);
    std::vector<MetricMinute> out;
    while (st.Step()) out.push_back(Metrics().Read(st));
    return out;
  });
}

}  // namespace geysir::control
