// SQLite access for control: RAII owners for the connection and for prepared statements, typed
// binds and column reads, a Transaction guard, and versioned schema migrations applied at open.
//
// Error policy: this layer THROWS `DbError` (a std::runtime_error carrying the SQLite result
// code) for every SQLite failure; it is control-plane code (docs/style.md). `Db::Open` is the
// one exception: it returns Result<Db> so the daemon can print a clear start-up error. Callers
// above (control/store) catch DbError and turn it into a Status.
//
// Durability: the connection runs in WAL mode with synchronous=FULL, so a committed transaction
// has been fsync'ed to the WAL before COMMIT returns: an acknowledged write survives kill -9 and
// power loss. foreign_keys=ON, busy_timeout as given in DbOptions. The one exception is
// RelaxedSync (below), for the log appends.
//
// Migrations are a list of numbered SQL steps defined in code (see control/store.cpp). At open,
// every step whose number is above PRAGMA user_version runs in its own IMMEDIATE transaction
// that also bumps user_version, so a crash mid-upgrade leaves the database at the last
// complete step. A database whose user_version is above the newest step the code knows is
// refused (this binary is older than the data).
//
// Thread safety: none. A Db (and every Statement prepared from it) belongs to one thread at a
// time; control uses it from its event-loop thread only.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"

namespace geysir::control {

// Any SQLite failure. `sqlite_code()` is the extended result code (SQLITE_CONSTRAINT_PRIMARYKEY,
// SQLITE_BUSY, ...) so callers can tell a uniqueness conflict from an I/O error.
class DbError : public std::runtime_error {
 public:
  DbError(int sqlite_code, const std::string& what) : std::runtime_error(what), code_(sqlite_code) {}
  int sqlite_code() const { return code_; }
  // True for any SQLITE_CONSTRAINT_* (unique, primary key, foreign key, check, not null).
  bool IsConstraint() const { return (code_ & 0xff) == SQLITE_CONSTRAINT; }

 private:
  int code_;
};

struct SqliteCloser {
  void operator()(sqlite3* db) const;
};
struct StmtCloser {
  void operator()(sqlite3_stmt* stmt) const;
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtCloser>;

// One schema step. `version` numbers start at 1 and increase by exactly 1; `sql` may hold
// several statements separated by ';'.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// A prepared statement. Move-only. Binds are 1-based like SQLite's; columns are 0-based.
// Every method throws DbError on failure.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, uint32_t value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, bool value) { return Bind(index, static_cast<int64_t>(value ? 1 : 0)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);  // copied (SQLITE_TRANSIENT)
  Statement& Bind(int index, const std::string& text) { return Bind(index, std::string_view(text)); }
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& Bind(int index, std::nullopt_t);          // NULL
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& value) {
    return value ? Bind(index, *value) : Bind(index, std::nullopt);
  }
  Statement& BindBlob(int index, std::string_view bytes);

  // Binds args to parameters 1..N in order.
  template <typename... Args>
  Statement& BindAll(const Args&... args) {
    int i = 0;
    (Bind(++i, args), ...);
    return *this;
  }

  // Steps once: true when a row is available, false when the statement is done.
  bool Step();
  // Steps to completion (for INSERT/UPDATE/DELETE); returns sqlite3_changes().
  int Run();
  // Resets so the statement can run again; bindings are cleared too.
  void Reset();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;   // "" for NULL
  std::optional<int64_t> OptInt(int column) const;
  std::optional<std::string> OptText(int column) const;

  sqlite3_stmt* get() const { return stmt_.get(); }

 private:
  sqlite3* db_;
  StmtPtr stmt_;
};

// A statement its Db keeps prepared (Db::Cached). Resets it (bindings cleared) when destroyed,
// so it holds no read snapshot and the next use starts clean. Move-only; one use at a time.
class CachedStatement {
 public:
  explicit CachedStatement(Statement* st, bool* in_use) : st_(st), in_use_(in_use) { *in_use_ = true; }
  CachedStatement(CachedStatement&& o) noexcept
      : st_(std::exchange(o.st_, nullptr)), in_use_(std::exchange(o.in_use_, nullptr)) {}
  CachedStatement(const CachedStatement&) = delete;
  CachedStatement& operator=(const CachedStatement&) = delete;
  CachedStatement& operator=(CachedStatement&&) = delete;
  ~CachedStatement() {
    if (st_ == nullptr) return;
    st_->Reset();
    *in_use_ = false;
  }
  Statement& operator*() const { return *st_; }
  Statement* operator->() const { return st_; }

 private:
  Statement* st_;
  bool* in_use_;
};

struct DbOptions {
  int busy_timeout_ms = 5000;
  // Passed to sqlite3_open_v2; READWRITE|CREATE by default. The file is created with mode 0600.
  bool create = true;
};

// An open database. Move-only.
class Db {
 public:
  // Opens (creating if allowed) `path`, applies the pragmas above, then the migrations.
  // Errors: kInternal with SQLite's message; a schema newer than `migrations` gives a
  // kInternal Status whose message says "database schema version N is newer than this
  // build of geysir supports (M)".
  static Result<Db> Open(const std::string& path, const std::vector<Migration>& migrations,
                         const DbOptions& options = {});
  // A second connection to this database's file (a writer thread's own): the same pragmas,
  // never creating the file, no migrations (the schema is whatever this one's is).
  // kInvalidArgument for an in-memory or URI database, which has no file to share.
  Result<Db> OpenAnother(const DbOptions& options = {}) const;

  Db(Db&&) noexcept = default;
  Db& operator=(Db&&) noexcept = default;

  sqlite3* handle() const { return db_.get(); }
  Statement Prepare(std::string_view sql) const { return Statement(db_.get(), sql); }
  // The statement for `sql`, prepared on first use and kept for the connection's life: for the
  // statements of hot paths (the log appends run per frame), where compiling the SQL each time
  // cost more than running it. Throws DbError (SQLITE_MISUSE) if that statement is in use.
  CachedStatement Cached(const std::string& sql) const;
  // Runs one or more statements without results (sqlite3_exec). Throws DbError.
  void Exec(std::string_view sql) const;
  // PRAGMA user_version.
  int SchemaVersion() const;
  int64_t LastInsertRowId() const;
  const std::string& path() const { return path_; }

  // Applies pending migrations (Open calls this). Throws DbError; throws DbError with code
  // SQLITE_ERROR and the "newer" message for a database newer than `migrations`.
  void Migrate(const std::vector<Migration>& migrations);

  // Applies the pending steps of one named schema track: a part of control that owns its own
  // tables ("s3", "events", "async_queue", ...) numbers its steps 1..N independently of the
  // core list above and of every other track, so parts evolve their schemas without sharing
  // one global counter. Versions are kept in table schema_tracks(track, version). Same
  // guarantees as Migrate: one IMMEDIATE transaction per step, a track newer than `steps` is
  // refused with the "newer" message. Throws DbError.
  void MigrateTrack(std::string_view track, const std::vector<Migration>& steps);
  // The applied version of `track`; 0 if it has never been migrated.
  int TrackVersion(std::string_view track) const;

 private:
  Db() = default;
  // Open without migrations (`migrations` null): OpenAnother.
  static Result<Db> OpenFile(const std::string& path, const std::vector<Migration>* migrations,
                             const DbOptions& options);
  SqlitePtr db_;
  std::string path_;
  // After db_: destroyed (finalized) before the connection closes.
  struct Kept {
    std::unique_ptr<Statement> statement;
    bool in_use = false;
  };
  mutable std::unordered_map<std::string, Kept> cache_;
};

// synchronous=NORMAL while it lives, FULL again after. In WAL mode a commit under NORMAL writes
// the transaction to the WAL file (into the kernel's page cache) without fsync; the WAL is synced
// at the next FULL commit or checkpoint. What that covers: the death of this process at any
// point, kill -9 included — the kernel still holds and writes out every committed page, so a
// transaction whose COMMIT returned is there when the database is opened again. What it does
// not cover: an OS crash or power loss before the next sync, which may lose the last such
// transactions (never corrupt the database: WAL replay stops at the last complete one).
// Construct it before the Transaction (the pragma is read when the transaction commits).
// Throws DbError from the constructor.
class RelaxedSync {
 public:
  explicit RelaxedSync(const Db& db);
  ~RelaxedSync();
  RelaxedSync(const RelaxedSync&) = delete;
  RelaxedSync& operator=(const RelaxedSync&) = delete;

 private:
  const Db& db_;
};

// BEGIN IMMEDIATE on construction (takes the write lock up front, so a transaction never fails
// half-way with SQLITE_BUSY on upgrade); ROLLBACK in the destructor unless Commit() ran.
// Not nestable. Throws DbError from the constructor and from Commit().
class Transaction {
 public:
  explicit Transaction(const Db& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void Commit();

 private:
  const Db& db_;
  bool done_ = false;
};

}  // namespace geysir::control
