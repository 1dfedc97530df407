// Store: the schema (as numbered migrations) and the typed operations over it. See store.h.
#include "control/store.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "control/db.h"

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
  };
  return kMigrations;
}

constexpr size_t kMaxLogMessage = 256 * 1024;
constexpr const char* kFunctionColumns =
    "name, arn, runtime, handler, role, description, memory_mb, timeout_s, ephemeral_storage_mb, "
    "environment, code_sha256, code_hex, code_size, revision_id, state, state_reason, state_reason_code, "
    "last_update_status, last_update_status_reason, last_modified, version, reserved_concurrency, tags";
constexpr const char* kUrlColumns =
    "function_name, url_id, auth_type, cors, invoke_mode, creation_time, last_modified_time";

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
std::map<std::string, std::string> JsonToMap(const std::string& s) {
  if (s.empty()) return {};
  return nlohmann::json::parse(s).get<std::map<std::string, std::string>>();
}

FunctionRecord ReadFunction(const Statement& st) {
  FunctionRecord f;
  int c = 0;
  f.name = st.Text(c++);
  f.arn = st.Text(c++);
  f.runtime = st.Text(c++);
  f.handler = st.Text(c++);
  f.role = st.Text(c++);
  f.description = st.Text(c++);
  f.memory_mb = static_cast<uint32_t>(st.Int(c++));
  f.timeout_s = static_cast<uint32_t>(st.Int(c++));
  f.ephemeral_storage_mb = static_cast<uint32_t>(st.Int(c++));
  f.environment = JsonToMap(st.Text(c++));
  f.code_sha256 = st.Text(c++);
  f.code_hex = st.Text(c++);
  f.code_size = st.Int(c++);
  f.revision_id = st.Text(c++);
  f.state = st.Text(c++);
  f.state_reason = st.Text(c++);
  f.state_reason_code = st.Text(c++);
  f.last_update_status = st.Text(c++);
  f.last_update_status_reason = st.Text(c++);
  f.last_modified = st.Text(c++);
  f.version = st.Text(c++);
  if (auto rc = st.OptInt(c++)) f.reserved_concurrency = static_cast<uint32_t>(*rc);
  f.tags = JsonToMap(st.Text(c++));
  return f;
}

// Binds every column of kFunctionColumns, in order, starting at parameter 1.
void BindFunction(Statement& st, const FunctionRecord& f) {
  std::optional<int64_t> rc;
  if (f.reserved_concurrency) rc = *f.reserved_concurrency;
  st.BindAll(f.name, f.arn, f.runtime, f.handler, f.role, f.description, f.memory_mb, f.timeout_s,
             f.ephemeral_storage_mb, MapToJson(f.environment), f.code_sha256, f.code_hex, f.code_size,
             f.revision_id, f.state, f.state_reason, f.state_reason_code, f.last_update_status,
             f.last_update_status_reason, f.last_modified, f.version);
  st.Bind(22, rc);
  st.Bind(23, MapToJson(f.tags));
}

FunctionUrlConfigRecord ReadUrl(const Statement& st, int c = 0) {
  FunctionUrlConfigRecord u;
  u.function_name = st.Text(c++);
  u.url_id = st.Text(c++);
  u.auth_type = st.Text(c++);
  u.cors = nlohmann::json::parse(st.Text(c++));
  u.invoke_mode = st.Text(c++);
  u.creation_time = st.Text(c++);
  u.last_modified_time = st.Text(c++);
  return u;
}

std::optional<FunctionRecord> LoadFunction(const Db& db, const std::string& name) {
  auto st = db.Prepare(std::string("SELECT ") + kFunctionColumns + " FROM functions WHERE name = ?");
  st.Bind(1, name);
  if (!st.Step()) return std::nullopt;
  return ReadFunction(st);
}

std::optional<FunctionUrlConfigRecord> LoadUrl(const Db& db, const std::string& function_name) {
  auto st = db.Prepare(std::string("SELECT ") + kUrlColumns + " FROM function_url_configs WHERE function_name = ?");
  st.Bind(1, function_name);
  if (!st.Step()) return std::nullopt;
  return ReadUrl(st);
}

bool FunctionExists(const Db& db, const std::string& name) {
  auto st = db.Prepare("SELECT 1 FROM functions WHERE name = ?");
  st.Bind(1, name);
  return st.Step();
}

void WriteFunction(const Db& db, const FunctionRecord& f, bool insert) {
  std::string sql;
  if (insert) {
    sql = std::string("INSERT INTO functions (") + kFunctionColumns +
          ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
  } else {
    // Same column order as kFunctionColumns; parameter 1 (name) is the key.
    sql =
        "UPDATE functions SET arn=?2, runtime=?3, handler=?4, role=?5, description=?6, memory_mb=?7, "
        "timeout_s=?8, ephemeral_storage_mb=?9, environment=?10, code_sha256=?11, code_hex=?12, "
        "code_size=?13, revision_id=?14, state=?15, state_reason=?16, state_reason_code=?17, "
        "last_update_status=?18, last_update_status_reason=?19, last_modified=?20, version=?21, "
        "reserved_concurrency=?22, tags=?23 WHERE name=?1";
  }
  auto st = db.Prepare(sql);
  BindFunction(st, f);
  st.Run();
}

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

std::string RandomString(size_t n, std::string_view alphabet) {
  // Rejection sampling: bytes >= limit are discarded so every character is equally likely.
  const size_t k = alphabet.size();
  const unsigned limit = 256 - (256 % k);
  std::string out;
  out.reserve(n);
  unsigned char buf[64];
  while (out.size() < n) {
    if (RAND_bytes(buf, sizeof buf) != 1) throw std::runtime_error("RAND_bytes failed");
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out.push_back(alphabet[b % k]);
      if (out.size() == n) break;
    }
  }
  return out;
}

std::string NewUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
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
    auto st = db_->Prepare(std::string("SELECT ") + kFunctionColumns +
                           " FROM functions WHERE name > ? ORDER BY name LIMIT ?");
    st.BindAll(after, limit + 1);
    FunctionPage page;
    while (st.Step()) page.functions.push_back(ReadFunction(st));
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
    auto st = db_->Prepare("SELECT DISTINCT code_hex FROM functions");
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
      auto st = db_->Prepare(std::string("INSERT INTO function_url_configs (") + kUrlColumns +
                             ") VALUES (?,?,?,?,?,?,?)");
      st.BindAll(c.function_name, c.url_id, c.auth_type, c.cors.dump(), c.invoke_mode, c.creation_time,
                 c.last_modified_time);
      try {
        st.Run();
        break;
      } catch (const DbError& e) {
        if (!e.IsConstraint() || !generate || attempt >= 4) {
          if (e.IsConstraint()) return Status::Error(Code::kAlreadyExists, "url id already in use: " + c.url_id);
          throw;
        }
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
    auto st = db_->Prepare(
        "UPDATE function_url_configs SET auth_type=?, cors=?, invoke_mode=?, last_modified_time=? "
        "WHERE function_name=?");
    st.BindAll(u->auth_type, u->cors.dump(), u->invoke_mode, u->last_modified_time, u->function_name);
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
    auto st = db_->Prepare(std::string("SELECT ") + kUrlColumns +
                           " FROM function_url_configs WHERE function_name = ? AND url_id > ? ORDER BY url_id LIMIT ?");
    st.BindAll(function_name, after, limit + 1);
    FunctionUrlConfigPage page;
    while (st.Step()) page.configs.push_back(ReadUrl(st));
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
    auto st = db_->Prepare(std::string("SELECT ") + kUrlColumns + " FROM function_url_configs WHERE url_id = ?");
    st.Bind(1, url_id);
    if (!st.Step()) return Status::NotFound("No function URL with id " + url_id);
    return ReadUrl(st);
  });
}

Result<std::vector<proto::FunctionUrlRoute>> Store::ListFunctionUrlRoutes(
    const std::function<std::string(const std::string& code_hex)>& code_dir_for, const std::string& region) {
  return Guarded("list function URL routes", [&]() -> Result<std::vector<proto::FunctionUrlRoute>> {
    std::string sql = "SELECT ";
    // Prefix the function columns with f. so the join is unambiguous.
    std::string cols = kFunctionColumns;
    std::string prefixed = "f.";
    for (char ch : cols) {
      prefixed.push_back(ch);
      if (ch == ' ') prefixed += "f.";
    }
    sql += prefixed + ", u.url_id, u.auth_type, u.cors FROM function_url_configs u JOIN functions f ON "
                      "f.name = u.function_name ORDER BY u.url_id";
    auto st = db_->Prepare(sql);
    std::vector<proto::FunctionUrlRoute> out;
    while (st.Step()) {
      FunctionRecord f = ReadFunction(st);
      proto::FunctionUrlRoute r;
      r.url_id = st.Text(23);
      r.auth_type = st.Text(24);
      r.cors = nlohmann::json::parse(st.Text(25));
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
    auto st = db_->Prepare("INSERT INTO access_keys (access_key_id, secret, created, is_admin) VALUES (?,?,?,?)");
    st.BindAll(k.access_key_id, k.secret_access_key, k.created, k.is_admin);
    st.Run();
    return k;
  });
}

Result<AccessKey> Store::GetAccessKey(const std::string& access_key_id) {
  return Guarded("get access key", [&]() -> Result<AccessKey> {
    auto st = db_->Prepare("SELECT access_key_id, secret, created, is_admin FROM access_keys WHERE access_key_id = ?");
    st.Bind(1, access_key_id);
    if (!st.Step()) return Status::NotFound("The security token included in the request is invalid.");
    return AccessKey{st.Text(0), st.Text(1), st.Text(2), st.Int(3) != 0};
  });
}

Result<std::vector<AccessKey>> Store::ListAccessKeys() {
  return Guarded("list access keys", [&]() -> Result<std::vector<AccessKey>> {
    auto st = db_->Prepare("SELECT access_key_id, secret, created, is_admin FROM access_keys ORDER BY created, access_key_id");
    std::vector<AccessKey> out;
    while (st.Step()) out.push_back(AccessKey{st.Text(0), st.Text(1), st.Text(2), st.Int(3) != 0});
    return out;
  });
}

// ---- logs ----

Status Store::AppendLogs(const proto::LogBatch& batch) {
  if (batch.events.empty()) return Status::Ok();
  return Guarded("append logs", [&]() -> Status {
    Transaction tx(*db_);
    auto ins = db_->Prepare(
        "INSERT INTO logs (function_name, log_stream, request_id, timestamp_ms, message) VALUES (?,?,?,?,?)");
    for (const proto::LogEvent& e : batch.events) {
      std::string_view msg = e.message;
      if (msg.size() > kMaxLogMessage) msg = msg.substr(0, kMaxLogMessage);
      ins.BindAll(batch.function_name, batch.log_stream, batch.request_id, e.timestamp_ms, msg);
      ins.Run();
      ins.Reset();
    }
    auto cnt = db_->Prepare(
        "INSERT INTO log_counts (function_name, n) VALUES (?1, ?2) "
        "ON CONFLICT(function_name) DO UPDATE SET n = n + ?2 RETURNING n");
    cnt.BindAll(batch.function_name, static_cast<int64_t>(batch.events.size()));
    int64_t n = cnt.Step() ? cnt.Int(0) : 0;
    cnt.Run();
    const int64_t excess = n - options_.max_log_lines_per_function;
    if (excess > 0) {
      // Oldest first by (timestamp, id), bounded per append so one call never deletes a huge
      // backlog in one go; the next appends continue where this one stopped.
      const int64_t batch_size = std::min(excess, std::max<int64_t>(options_.log_prune_batch, 1));
      auto del = db_->Prepare(
          "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE function_name = ? "
          "ORDER BY timestamp_ms, id LIMIT ?)");
      del.BindAll(batch.function_name, batch_size);
      int deleted = del.Run();
      auto upd = db_->Prepare("UPDATE log_counts SET n = n - ? WHERE function_name = ?");
      upd.BindAll(static_cast<int64_t>(deleted), batch.function_name);
      upd.Run();
    }
    tx.Commit();
    return Status::Ok();
  });
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
    auto st = db_->Prepare(
        "SELECT id, function_name, log_stream, request_id, timestamp_ms, message FROM logs "
        "WHERE function_name = ?1 AND timestamp_ms >= ?2 AND timestamp_ms < ?3 "
        "AND (?4 = '' OR request_id = ?4) "
        "AND (timestamp_ms > ?5 OR (timestamp_ms = ?5 AND id > ?6)) "
        "ORDER BY timestamp_ms, id LIMIT ?7");
    st.BindAll(q.function_name, q.start_ms, q.end_ms, q.request_id, after_ts, after_id, limit + 1);
    LogPage page;
    while (st.Step()) {
      page.events.push_back(LogRecord{st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Int(4), st.Text(5)});
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

}  // namespace geysir::control
