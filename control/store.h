// Store: control's typed repository over SQLite (control/db.h). Functions, function URL configs,
// access keys and function logs; the schema and its migrations are defined in store.cpp.
//
// Error policy: every operation returns Status / Result<T> and never throws (SQLite errors
// are caught inside and become kInternal). Codes the API layer maps:
//   kNotFound       no such function / URL config / access key    -> ResourceNotFoundException 404
//   kAlreadyExists  function or URL config exists already          -> ResourceConflictException 409
//   kInvalidArgument bad pagination marker / token                  -> InvalidParameterValueException 400
//   kInternal       SQLite failure (disk full, I/O error, bug)     -> ServiceException 500
// A Status returned by an UpdateFunction/UpdateFunctionUrlConfig mutator is passed through
// unchanged, so the API decides what a failed precondition (e.g. RevisionId) maps to.
//
// Every write runs in one IMMEDIATE transaction, committed with synchronous=FULL before the call
// returns: when a call returns OK the change survives kill -9 and power loss.
//
// Thread safety: none; one thread (control's loop) owns a Store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/messages.h"
#include "proto/status.h"

namespace geysir::control {

class Db;

// One function ($LATEST) as stored. Timestamps are Lambda's format, e.g.
// "2026-11-27T05:30:00.000+0000".
struct FunctionRecord {
  std::string name;                 // primary key
  std::string arn;                  // arn:aws:lambda:<region>:<account>:function:<name>
  std::string runtime = "python3.11";
  std::string handler;
  std::string role;
  std::string description;
  uint32_t memory_mb = 128;
  uint32_t timeout_s = 3;
  uint32_t ephemeral_storage_mb = 512;
  std::map<std::string, std::string> environment;
  std::string code_sha256;          // base64 of the zip's SHA-256 (Lambda's CodeSha256)
  std::string code_hex;             // lower-case hex of the same hash: the code store's key
  int64_t code_size = 0;            // bytes of the zip
  std::string revision_id;          // UUID; the Store sets a new one on every create/update
  std::string state = "Active";     // Pending | Active | Inactive | Failed
  std::string state_reason;
  std::string state_reason_code;
  std::string last_update_status = "Successful";  // Successful | Failed | InProgress
  std::string last_update_status_reason;
  std::string last_modified;        // set by the Store on every create/update
  std::string version = "$LATEST";
  std::optional<uint32_t> reserved_concurrency;
  std::map<std::string, std::string> tags;
};

// The snapshot the scheduler runs: `code_dir` is the unpacked tree (CodeStore::DirFor).
proto::FunctionConfig ToFunctionConfig(const FunctionRecord& f, const std::string& code_dir,
                                       const std::string& region);

struct FunctionPage {
  std::vector<FunctionRecord> functions;  // ordered by name
  std::string next_marker;                // empty when this is the last page
};

struct FunctionUrlConfigRecord {
  std::string url_id;               // 32 lower-case [a-z0-9]; the host label of the URL
  std::string function_name;        // FK -> functions(name), ON DELETE CASCADE
  std::string auth_type = "NONE";   // NONE | AWS_IAM
  nlohmann::json cors = nullptr;    // Lambda's Cors object, or null
  std::string invoke_mode = "BUFFERED";
  std::string creation_time;        // Lambda format, set by the Store
  std::string last_modified_time;   // Lambda format, set by the Store
};

struct FunctionUrlConfigPage {
  std::vector<FunctionUrlConfigRecord> configs;
  std::string next_marker;
};

struct AccessKey {
  std::string access_key_id;        // 20 chars, "AKIA" + 16 of [A-Z2-7]
  std::string secret_access_key;    // 40 chars of [A-Za-z0-9+/]
  std::string created;              // Lambda format
  bool is_admin = false;
};

// One stored log line.
struct LogRecord {
  int64_t id = 0;                   // monotonically increasing insertion id
  std::string function_name;
  std::string log_stream;
  std::string request_id;           // "" for init-phase lines
  int64_t timestamp_ms = 0;
  std::string message;
};

struct LogQuery {
  std::string function_name;        // required
  int64_t start_ms = 0;             // inclusive
  int64_t end_ms = INT64_MAX;       // exclusive
  std::string request_id;           // "" = any
  int limit = 1000;                 // clamped to [1, 10000]
  std::string next_token;           // from the previous LogPage; "" = from the start
};

struct LogPage {
  std::vector<LogRecord> events;    // ordered by (timestamp_ms, id)
  // Token to continue after the last returned event, non-empty whenever at least one event was
  // returned (so `--follow` can poll with it for lines that arrive later). When no event is
  // returned it is the query's own next_token (empty on a first call), so polling can go on.
  std::string next_token;
  bool more = false;                // true when more matching events exist right now
};

struct StoreOptions {
  // Retention: after each append, the oldest lines of a function beyond this bound are pruned
  // (in batches of at most `log_prune_batch` rows per append, so an append stays cheap).
  int64_t max_log_lines_per_function = 100000;
  int64_t log_prune_batch = 5000;
  // Milliseconds since the Unix epoch; injected by tests.
  std::function<int64_t()> now_ms;
};

class Store {
 public:
  // Opens (creating) the database at `db_path` and applies migrations. Errors as Db::Open.
  static Result<std::unique_ptr<Store>> Open(const std::string& db_path, StoreOptions options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The newest schema version this build knows (for diagnostics and tests).
  static int LatestSchemaVersion();
  int SchemaVersion() const;

  // The connection itself, for the parts of control that keep tables of their own (AWS
  // services, schedules, the async queue): they call Db::MigrateTrack at start-up and use it
  // on the loop thread like the Store does. Never stored beyond the Store's lifetime.
  Db& db() { return *db_; }

  // ---- functions ----
  // Inserts `f`; the Store sets revision_id and last_modified. kAlreadyExists if the name is taken.
  Result<FunctionRecord> CreateFunction(FunctionRecord f);
  Result<FunctionRecord> GetFunction(const std::string& name);
  // Page of functions with name > marker, at most max_items (clamped to [1, 10000]; Lambda's
  // default is 50). The marker is opaque to clients (base64 of the last name).
  Result<FunctionPage> ListFunctions(const std::string& marker, int max_items = 50);
  // Reads the function, calls `mutate` on it and writes it back, all in one transaction.
  // `mutate` may return an error Status to abort (returned unchanged, nothing written); it may
  // not change `name`. The Store then sets a new revision_id and last_modified.
  Result<FunctionRecord> UpdateFunction(const std::string& name,
                                        const std::function<Status(FunctionRecord&)>& mutate);
  // Deletes the function and (by cascade) its URL config. Its logs are kept (as CloudWatch
  // keeps them) until retention prunes them. kNotFound if absent.
  Status DeleteFunction(const std::string& name);
  // Every code_hex referenced by some function: what the code store's GC must keep.
  Result<std::set<std::string>> ReferencedCodeHexes();

  // ---- function URL configs (one per function; Qualifier is not supported yet) ----
  // The Store generates url_id (if empty), creation_time and last_modified_time.
  // kNotFound if the function does not exist; kAlreadyExists if it already has a URL config.
  Result<FunctionUrlConfigRecord> CreateFunctionUrlConfig(FunctionUrlConfigRecord c);
  Result<FunctionUrlConfigRecord> GetFunctionUrlConfig(const std::string& function_name);
  // Like UpdateFunction; `mutate` may change auth_type, cors and invoke_mode only.
  Result<FunctionUrlConfigRecord> UpdateFunctionUrlConfig(
      const std::string& function_name, const std::function<Status(FunctionUrlConfigRecord&)>& mutate);
  // kNotFound if the function does not exist; an empty page if it has no URL config.
  Result<FunctionUrlConfigPage> ListFunctionUrlConfigs(const std::string& function_name,
                                                       const std::string& marker, int max_items = 50);
  Status DeleteFunctionUrlConfig(const std::string& function_name);
  Result<FunctionUrlConfigRecord> FindFunctionUrlByUrlId(const std::string& url_id);
  // Every URL config joined with its function: the gateway's route table. `code_dir_for(hex)`
  // gives the unpacked code directory (CodeStore::DirFor).
  Result<std::vector<proto::FunctionUrlRoute>> ListFunctionUrlRoutes(
      const std::function<std::string(const std::string& code_hex)>& code_dir_for,
      const std::string& region);

  // ---- access keys ----
  // A new admin key: AKID "AKIA" + 16 random chars of [A-Z2-7], secret of 40 random chars of
  // [A-Za-z0-9+/] (OpenSSL RAND_bytes, rejection-sampled so every character is uniform).
  Result<AccessKey> CreateAdminKey();
  // kNotFound for an unknown AKID.
  Result<AccessKey> GetAccessKey(const std::string& access_key_id);
  Result<std::vector<AccessKey>> ListAccessKeys();

  // ---- logs ----
  // Appends every event of `batch` in one transaction, then prunes the function's oldest lines
  // beyond the retention bound. Messages longer than 256 KiB are truncated.
  Status AppendLogs(const proto::LogBatch& batch);
  // Events of q.function_name with start_ms <= timestamp_ms < end_ms (and request_id if given),
  // ordered by (timestamp_ms, id), after q.next_token. kInvalidArgument for a malformed token.
  Result<LogPage> QueryLogs(const LogQuery& q);
  // Number of stored lines of a function (tests, metrics).
  Result<int64_t> CountLogs(const std::string& function_name);

 private:
  Store(std::unique_ptr<Db> db, StoreOptions options);
  int64_t NowMs() const;
  std::unique_ptr<Db> db_;
  StoreOptions options_;
};

// ---- small helpers shared with the API layer ----
// "2026-11-27T05:30:00.000+0000" for `ms` since the epoch, UTC.
std::string LambdaTimestamp(int64_t ms);
// A random (version 4) UUID, lower-case, from OpenSSL RAND_bytes.
std::string NewUuid();
// `n` random characters from `alphabet` (uniform, OpenSSL RAND_bytes).
std::string RandomString(size_t n, std::string_view alphabet);

}  // namespace geysir::control
