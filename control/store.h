// Store: control's typed repository over SQLite (control/db.h). Functions with their published
// versions, aliases and resource policies, function URL configs, access keys, function logs and
// invocation metrics; the schema and its migrations are defined in store.cpp.
//
// Error policy: every operation returns Status / Result<T> and never throws: SQLite's DbError and
// nlohmann's parse errors (a corrupt stored JSON column) are caught once, in each operation's
// Guarded wrapper in store.cpp, and become kInternal. Codes the API layer maps:
//   kNotFound       no such function / URL config / access key    -> ResourceNotFoundException 404
//   kAlreadyExists  function or URL config exists already          -> ResourceConflictException 409
//   kConflict       a version an alias still points at              -> ResourceConflictException 409
//   kInvalidArgument bad pagination marker / token                  -> InvalidParameterValueException 400
//   kInternal       SQLite failure (disk full, I/O error, bug)     -> ServiceException 500
// A Status returned by an UpdateFunction/UpdateFunctionUrlConfig mutator is passed through
// unchanged, so the API decides what a failed precondition (e.g. RevisionId) maps to.
//
// Every write runs in one IMMEDIATE transaction, committed with synchronous=FULL before the call
// returns: when a call returns OK the change survives kill -9 and power loss. The exception is the
// log appends (AppendLogs, AppendLogBatches): committed with synchronous=NORMAL, they survive
// kill -9 of any process but an OS crash or power loss may lose the last ones (control/db.h).
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
#include "base/random.h"
#include "base/status.h"

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

// A published version (Store::PublishVersion) is a FunctionRecord too: `version` is "1", "2",
// ..., `arn` is qualified (":N"), and every field is frozen at publish time except
// `reserved_concurrency` and `tags`, which belong to the function and are read from $LATEST.

// An alias: a name for a version, optionally splitting traffic with a second version.
struct AliasRecord {
  std::string function_name;
  std::string name;
  std::string function_version;                   // "$LATEST" or "N"
  std::string description;
  std::map<std::string, double> additional_weights;  // RoutingConfig.AdditionalVersionWeights
  std::string revision_id;                        // a new UUID on every create/update
};

// One statement of a function's resource-based policy (AddPermission). Stored, not enforced.
struct PermissionRecord {
  std::string function_name;
  std::string qualifier;   // "" = the unqualified function
  std::string sid;
  nlohmann::json statement;  // the statement object as GetPolicy returns it
};

// Invocation counters of one function in one UTC minute (CloudWatch's AWS/Lambda metrics).
struct MetricMinute {
  int64_t minute_ms = 0;   // start of the minute, ms since the epoch
  int64_t invocations = 0;
  int64_t errors = 0;
  double duration_sum_ms = 0;
  double duration_min_ms = 0;
  double duration_max_ms = 0;
};

// One log stream of a function, as DescribeLogStreams lists it.
struct LogStreamInfo {
  std::string name;
  int64_t first_ms = 0;
  int64_t last_ms = 0;
  int64_t stored_bytes = 0;
};

// A log group: a function (present or deleted) that has stored lines.
struct LogGroupInfo {
  std::string function_name;
  int64_t lines = 0;
};

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
  std::vector<std::string> log_streams;  // empty = every stream
  // Optional predicate (CloudWatch filter patterns): rows it rejects are skipped and do not
  // count against `limit`. Bounded: at most `max_scanned` rows are examined per call.
  std::function<bool(const std::string& message)> filter;
  int64_t max_scanned = 1000000;
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
  // Every code_hex referenced by some function or published version: what the code store's
  // GC must keep.
  Result<std::set<std::string>> ReferencedCodeHexes();

  // ---- versions ----
  // Publishes $LATEST as the next version number (numbers are never reused while the function
  // exists). When $LATEST's code and configuration equal the newest version's, that version is
  // returned instead, as Lambda does. `check` runs on $LATEST inside the transaction (CodeSha256
  // and RevisionId preconditions); an error it returns is passed through.
  Result<FunctionRecord> PublishVersion(const std::string& name, const std::string& description,
                                        const std::function<Status(const FunctionRecord&)>& check = {});
  // "$LATEST" or a version number. kNotFound if either is missing.
  Result<FunctionRecord> GetFunctionVersion(const std::string& name, const std::string& version);
  // $LATEST first, then versions in ascending order; the marker is opaque.
  Result<FunctionPage> ListVersions(const std::string& name, const std::string& marker, int max_items = 50);
  // kNotFound if absent; kConflict while an alias points at it.
  Status DeleteFunctionVersion(const std::string& name, const std::string& version);

  // ---- aliases ----
  // kNotFound (function or target version missing), kAlreadyExists (name taken).
  Result<AliasRecord> CreateAlias(AliasRecord a);
  Result<AliasRecord> GetAlias(const std::string& function_name, const std::string& alias);
  // Reads, mutates and writes in one transaction with a new revision_id (like UpdateFunction).
  Result<AliasRecord> UpdateAlias(const std::string& function_name, const std::string& alias,
                                  const std::function<Status(AliasRecord&)>& mutate);
  Status DeleteAlias(const std::string& function_name, const std::string& alias);
  // Aliases in name order, optionally only those pointing at `function_version`.
  Result<std::vector<AliasRecord>> ListAliases(const std::string& function_name,
                                               const std::string& function_version = "");

  // ---- resource policy (stored, not enforced) ----
  // kNotFound (no function), kAlreadyExists (statement id taken for this qualifier).
  Status AddPermission(const PermissionRecord& p);
  // kNotFound if the function or the statement is missing.
  Status RemovePermission(const std::string& function_name, const std::string& qualifier, const std::string& sid);
  // In insertion order; kNotFound if the function is missing (an empty list if it has none).
  Result<std::vector<PermissionRecord>> ListPermissions(const std::string& function_name,
                                                        const std::string& qualifier);

  // ---- function-wide settings that do not change the code or revision ----
  // Sets (or clears) reserved concurrency. kNotFound if the function is missing.
  Status SetReservedConcurrency(const std::string& name, std::optional<uint32_t> reserved);
  // Replaces the tags with what `mutate` leaves. kNotFound if the function is missing.
  Status UpdateTags(const std::string& name, const std::function<void(std::map<std::string, std::string>&)>& mutate);
  // Sum of the reserved concurrency of every function but `except` (account limits).
  Result<int64_t> TotalReservedConcurrency(const std::string& except);

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
  // beyond the retention bound; a finished invocation's batch (outcome set) also counts it in the
  // metrics, in the same transaction. Messages longer than 256 KiB are truncated. A batch with a
  // seq (proto::LogBatch) at or below the highest stored for its sender is a resend: nothing is
  // written and the result is false; true when stored.
  Result<bool> AppendLogs(const proto::LogBatch& batch);
  // The same for every batch of one "logs" frame, in ONE transaction (group commit: one fsync
  // for all of them), in order; a resend among them is skipped as above. The retention bound is
  // applied once per function per call, not per batch. Returns how many batches were stored.
  Result<size_t> AppendLogBatches(const std::vector<proto::LogBatch>& batches);
  // Events of q.function_name with start_ms <= timestamp_ms < end_ms (and request_id if given),
  // ordered by (timestamp_ms, id), after q.next_token. kInvalidArgument for a malformed token.
  Result<LogPage> QueryLogs(const LogQuery& q);
  // Number of stored lines of a function (tests, metrics).
  Result<int64_t> CountLogs(const std::string& function_name);
  // The streams of a function with their first/last event times.
  Result<std::vector<LogStreamInfo>> ListLogStreams(const std::string& function_name);
  // Functions with stored lines whose name starts with `prefix`, in name order.
  Result<std::vector<LogGroupInfo>> ListLogGroups(const std::string& prefix);
  // Deletes every stored line of a function; returns how many went.
  Result<int64_t> DeleteLogs(const std::string& function_name);

  // ---- metrics ----
  // Counts one finished invocation in its minute (kept for 15 days, as CloudWatch keeps
  // one-minute data).
  Status RecordInvocation(const std::string& function_name, int64_t timestamp_ms, bool error, double duration_ms);
  // The minutes of [start_ms, end_ms) that have data, ascending.
  Result<std::vector<MetricMinute>> QueryMetrics(const std::string& function_name, int64_t start_ms, int64_t end_ms);

 private:
  Store(std::unique_ptr<Db> db, StoreOptions options);
  int64_t NowMs() const;
  // Inside a transaction the caller holds.
  void PruneLogs(const std::string& function_name, int64_t added);
  void AddInvocationMetric(const std::string& function_name, int64_t timestamp_ms, bool error, double duration_ms);
  // Adds several minutes' sums (minute_ms: any time in the minute) in one go.
  void AddInvocationMetrics(const std::string& function_name, const std::vector<MetricMinute>& minutes);
  std::unique_ptr<Db> db_;
  StoreOptions options_;
};

// ---- small helpers shared with the API layer ----
// "2026-11-27T05:30:00.000+0000" for `ms` since the epoch, UTC.
std::string LambdaTimestamp(int64_t ms);
// Random identifiers (NewUuid, RandomString) are base/random.h's.

}  // namespace geysir::control
