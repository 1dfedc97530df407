// SQLite wrapper: see db.h for the error policy and the durability settings.
#include "control/db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace geysir::control {
namespace {

[[noreturn]] void Throw(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int code = db ? sqlite3_extended_errcode(db) : rc;
  throw DbError(code, msg);
}

}  // namespace

void SqliteCloser::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void StmtCloser::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

// ---- Statement ----

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) Throw(db, rc, "prepare \"" + std::string(sql.substr(0, 80)) + "\"");
}

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_.get(), index, value);
  if (rc != SQLITE_OK) Throw(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_.get(), index, value);
  if (rc != SQLITE_OK) Throw(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_.get(), index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) Throw(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(int index, std::nullopt_t) {
  int rc = sqlite3_bind_null(stmt_.get(), index);
  if (rc != SQLITE_OK) Throw(db_, rc, "bind");
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  int rc = sqlite3_bind_blob64(stmt_.get(), index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) Throw(db_, rc, "bind");
  return *this;
}

bool Statement::Step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Throw(db_, rc, "step");
}

int Statement::Run() {
  while (Step()) {
  }
  return sqlite3_changes(db_);
}

void Statement::Reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

bool Statement::IsNull(int column) const { return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL; }
int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_.get(), column); }
double Statement::Double(int column) const { return sqlite3_column_double(stmt_.get(), column); }

std::string Statement::Text(int column) const {
  const auto* p = sqlite3_column_text(stmt_.get(), column);
  if (!p) return {};
  // Length after the text pointer is fetched (SQLite's documented order).
  int n = sqlite3_column_bytes(stmt_.get(), column);
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

std::optional<int64_t> Statement::OptInt(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int(column);
}

std::optional<std::string> Statement::OptText(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Text(column);
}

// ---- Db ----

Result<Db> Db::Open(const std::string& path, const std::vector<Migration>& migrations, const DbOptions& options) {
  return OpenFile(path, &migrations, options);
}

Result<Db> Db::OpenAnother(const DbOptions& options) const {
  if (path_.empty() || path_ == ":memory:" || path_.rfind("file:", 0) == 0) {
    return Status::Invalid("database " + (path_.empty() ? std::string("(unnamed)") : path_) +
                           " has no file another connection could open");
  }
  DbOptions o = options;
  o.create = false;
  return OpenFile(path_, nullptr, o);
}

Result<Db> Db::OpenFile(const std::string& path, const std::vector<Migration>* migrations, const DbOptions& options) {
  Db db;
  db.path_ = path;
  // SQLite creates the file with the process umask; create it 0600 ourselves first so the
  // database (which holds secret keys) is never readable by others, not even for a moment.
  if (options.create) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::Sys(errno, "create database " + path);
    ::close(fd);
  }
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (options.create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db.db_.reset(raw);
  if (rc != SQLITE_OK) {
    return Status::Internal("open database " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  try {
    sqlite3_busy_timeout(raw, options.busy_timeout_ms);
    // journal_mode returns the mode actually set; WAL can be refused (e.g. some network file
    // systems), which we treat as an error rather than silently running without it.
    {
      Statement wal(raw, "PRAGMA journal_mode=WAL");
      if (!wal.Step() || wal.Text(0) != "wal") {
        return Status::Internal("database " + path + ": could not enable WAL journal mode");
      }
    }  // finalised here: an unfinished statement would make the migrations' COMMIT fail
    db.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (migrations) db.Migrate(*migrations);
  } catch (const DbError& e) {
    return Status::Internal("database " + path + ": " + e.what());
  }
  return db;
}

CachedStatement Db::Cached(const std::string& sql) const {
  Kept& kept = cache_[sql];
  if (!kept.statement) kept.statement = std::make_unique<Statement>(db_.get(), sql);
  if (kept.in_use) throw DbError(SQLITE_MISUSE, "cached statement in use: \"" + sql.substr(0, 80) + "\"");
  return CachedStatement(kept.statement.get(), &kept.in_use);
}

void Db::Exec(std::string_view sql) const {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw DbError(sqlite3_extended_errcode(db_.get()), "exec: " + msg);
  }
}

int Db::SchemaVersion() const {
  Statement st(db_.get(), "PRAGMA user_version");
  st.Step();
  return static_cast<int>(st.Int(0));
}

int64_t Db::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_.get()); }

void Db::Migrate(const std::vector<Migration>& migrations) {
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      throw DbError(SQLITE_ERROR, "migration list is not numbered 1..N (bug)");
    }
  }
  const int current = SchemaVersion();
  if (current > latest) {
    throw DbError(SQLITE_ERROR, "database schema version " + std::to_string(current) +
                                    " is newer than this build of geysir supports (" + std::to_string(latest) +
                                    "); run a newer geysir or restore a backup");
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    Transaction tx(*this);
    // Re-read inside the write lock: another process may have migrated meanwhile.
    if (SchemaVersion() >= m.version) continue;
    try {
      Exec(m.sql);
    } catch (const DbError& e) {
      throw DbError(e.sqlite_code(), "migration " + std::to_string(m.version) + " (" + m.description +
                                         ") failed: " + e.what());
    }
    // PRAGMA takes no bound parameters; the value is our own integer.
    Exec("PRAGMA user_version=" + std::to_string(m.version));
    tx.Commit();
  }
}

namespace {
void EnsureTrackTable(const Db& db) {
  db.Exec("CREATE TABLE IF NOT EXISTS schema_tracks (track TEXT PRIMARY KEY, version INTEGER NOT NULL)");
}
}  // namespace

bool Db::HasTable(std::string_view name) const {
  Statement st = Prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  st.Bind(1, name);
  return st.Step();
}

int Db::TrackVersion(std::string_view track) const {
  EnsureTrackTable(*this);
  Statement st = Prepare("SELECT version FROM schema_tracks WHERE track = ?1");
  st.Bind(1, track);
  return st.Step() ? static_cast<int>(st.Int(0)) : 0;
}

void Db::MigrateTrack(std::string_view track, const std::vector<Migration>& steps) {
  const std::string name(track);
  const int latest = steps.empty() ? 0 : steps.back().version;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].version != static_cast<int>(i) + 1) {
      throw DbError(SQLITE_ERROR, "schema track " + name + " is not numbered 1..N (bug)");
    }
  }
  const int current = TrackVersion(track);
  if (current > latest) {
    throw DbError(SQLITE_ERROR, "database schema track " + name + " is at version " + std::to_string(current) +
                                    ", newer than this build of geysir supports (" + std::to_string(latest) +
                                    "); run a newer geysir or restore a backup");
  }
  for (const Migration& m : steps) {
    if (m.version <= current) continue;
    Transaction tx(*this);
    if (TrackVersion(track) >= m.version) continue;  // re-read under the write lock
    try {
      Exec(m.sql);
    } catch (const DbError& e) {
      throw DbError(e.sqlite_code(), "schema track " + name + " step " + std::to_string(m.version) + " (" +
                                         m.description + ") failed: " + e.what());
    }
    Statement up = Prepare(
        "INSERT INTO schema_tracks (track, version) VALUES (?1, ?2) "
        "ON CONFLICT(track) DO UPDATE SET version = excluded.version");
    up.BindAll(track, m.version);
    up.Run();
    tx.Commit();
  }
}

// ---- RelaxedSync ----

RelaxedSync::RelaxedSync(const Db& db) : db_(db) { db_.Exec("PRAGMA synchronous=NORMAL"); }

RelaxedSync::~RelaxedSync() {
  // Cannot fail on an open connection outside a transaction; if it ever did, the next Open would
  // set FULL again, and meanwhile only durability against power loss is weaker, as said above.
  sqlite3_exec(db_.handle(), "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
}

// ---- Transaction ----

Transaction::Transaction(const Db& db) : db_(db) { db_.Exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (!done_) {
    // Rolling back cannot meaningfully fail here; if the connection already rolled back
    // (e.g. after SQLITE_FULL) the statement reports "no transaction", which is fine.
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::Commit() {
  db_.Exec("COMMIT");
  done_ = true;
}

}  // namespace geysir::control
