#include "control/store.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control/db.h"
#include "store_test_util.h"

using namespace geysir;
using namespace geysir::control;
using geysir::control::testing::Exists;
using geysir::control::testing::ModeOf;
using geysir::control::testing::TempDir;

namespace {

// True when `s` has exactly `n` characters, all from `alphabet`. (std::regex trips GCC 12's
// -Wmaybe-uninitialized under the sanitizer build, so the shapes are checked by hand.)
bool AllOf(const std::string& s, size_t n, std::string_view alphabet) {
  return s.size() == n && s.find_first_not_of(alphabet) == std::string::npos;
}
constexpr std::string_view kHexLower = "0123456789abcdef";


FunctionRecord MakeFunction(const std::string& name) {
  FunctionRecord f;
  f.name = name;
  f.arn = "arn:aws:lambda:us-east-1:000000000000:function:" + name;
  f.handler = "app.handler";
  f.role = "arn:aws:iam::000000000000:role/r";
  f.environment = {{"A", "1"}, {"B", "two"}};
  f.tags = {{"team", "x"}};
  f.code_hex = std::string(64, 'a');
  f.code_sha256 = "qqqq";
  f.code_size = 123;
  return f;
}

std::unique_ptr<Store> OpenStore(const TempDir& dir, StoreOptions options = {}) {
  auto s = Store::Open(dir / "geysir.db", std::move(options));
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return std::move(s).value();
}

proto::LogBatch Batch(const std::string& fn, const std::string& rid, int64_t t0, int n) {
  proto::LogBatch b;
  b.function_name = fn;
  b.version = "$LATEST";
  b.log_stream = "2026/11/27/[$LATEST]abc";
  b.request_id = rid;
  for (int i = 0; i < n; ++i) b.events.push_back({t0 + i, "line " + std::to_string(t0 + i)});
  return b;
}

}  // namespace

TEST_CASE("helpers: Lambda timestamps, UUIDs, random strings", "[store]") {
  CHECK(LambdaTimestamp(1795757400000) == "2026-11-27T05:30:00.000+0000");
  CHECK(LambdaTimestamp(1795757400123) == "2026-11-27T05:30:00.123+0000");
  CHECK(LambdaTimestamp(0) == "1970-01-01T00:00:00.000+0000");
  const std::string u = NewUuid();
  REQUIRE(u.size() == 36);
  CHECK(u[8] == '-');
  CHECK(u[13] == '-');
  CHECK(u[14] == '4');  // version 4
  CHECK(u[18] == '-');
  CHECK(std::string_view("89ab").find(u[19]) != std::string_view::npos);  // RFC 4122 variant
  CHECK(u[23] == '-');
  std::string digits = u;
  digits.erase(std::remove(digits.begin(), digits.end(), '-'), digits.end());
  CHECK(AllOf(digits, 32, kHexLower));
  CHECK(NewUuid() != u);
  CHECK(RandomString(100, "ab").find_first_not_of("ab") == std::string::npos);
}

TEST_CASE("store: schema at open, reopen keeps data", "[store]") {
  TempDir dir;
  {
    auto s = OpenStore(dir);
    CHECK(s->SchemaVersion() == Store::LatestSchemaVersion());
    REQUIRE(s->CreateFunction(MakeFunction("keep")).ok());
  }
  CHECK(ModeOf(dir / "geysir.db") == 0600);
  // SQLite gives the WAL and shared-memory files the database's mode: the keys never leak.
  if (Exists(dir / "geysir.db-wal")) CHECK(ModeOf(dir / "geysir.db-wal") == 0600);
  auto s = OpenStore(dir);
  CHECK(s->SchemaVersion() == Store::LatestSchemaVersion());
  CHECK(s->GetFunction("keep").ok());
}

TEST_CASE("store: function CRUD", "[store]") {
  TempDir dir;
  int64_t now = 1795757400000;
  StoreOptions opt;
  opt.now_ms = [&] { return now; };
  auto s = OpenStore(dir, opt);

  auto created = s->CreateFunction(MakeFunction("hello"));
  REQUIRE(created.ok());
  CHECK(created->last_modified == "2026-11-27T05:30:00.000+0000");
  CHECK(created->revision_id.size() == 36);
  CHECK(created->state == "Active");

  auto dup = s->CreateFunction(MakeFunction("hello"));
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().code() == Code::kAlreadyExists);

  auto got = s->GetFunction("hello");
  REQUIRE(got.ok());
  CHECK(got->environment == std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}});
  CHECK(got->tags.at("team") == "x");
  CHECK(got->code_size == 123);
  CHECK_FALSE(got->reserved_concurrency.has_value());
  CHECK(got->revision_id == created->revision_id);

  CHECK(s->GetFunction("nope").status().code() == Code::kNotFound);

  now += 5000;
  auto upd = s->UpdateFunction("hello", [](FunctionRecord& f) {
    f.memory_mb = 512;
    f.timeout_s = 30;
    f.environment = {{"C", "3"}};
    f.reserved_concurrency = 4;
    return Status::Ok();
  });
  REQUIRE(upd.ok());
  CHECK(upd->revision_id != created->revision_id);
  CHECK(upd->last_modified == "2026-11-27T05:30:05.000+0000");
  got = s->GetFunction("hello");
  CHECK(got->memory_mb == 512);
  CHECK(got->timeout_s == 30);
  CHECK(got->environment.size() == 1);
  CHECK(got->reserved_concurrency == 4u);
  CHECK(got->revision_id == upd->revision_id);

  // A mutator's error aborts the update and comes back unchanged.
  auto aborted = s->UpdateFunction("hello", [](FunctionRecord& f) {
    f.memory_mb = 1;
    return Status::Error(Code::kPermissionDenied, "revision mismatch");
  });
  REQUIRE_FALSE(aborted.ok());
  CHECK(aborted.status().code() == Code::kPermissionDenied);
  CHECK(s->GetFunction("hello")->memory_mb == 512);
  CHECK(s->UpdateFunction("ghost", [](FunctionRecord&) { return Status::Ok(); }).status().code() == Code::kNotFound);

  auto refs = s->ReferencedCodeHexes();
  REQUIRE(refs.ok());
  CHECK(refs->count(std::string(64, 'a')) == 1);

  CHECK(s->DeleteFunction("hello").ok());
  CHECK(s->DeleteFunction("hello").code() == Code::kNotFound);
  CHECK(s->GetFunction("hello").status().code() == Code::kNotFound);
  CHECK(s->ReferencedCodeHexes()->empty());
}

TEST_CASE("store: ListFunctions paginates by marker", "[store]") {
  TempDir dir;
  auto s = OpenStore(dir);
  for (int i = 0; i < 7; ++i) REQUIRE(s->CreateFunction(MakeFunction("f" + std::to_string(i))).ok());
  std::vector<std::string> seen;
  std::string marker;
  int pages = 0;
  do {
    auto page = s->ListFunctions(marker, 3);
    REQUIRE(page.ok());
    for (auto& f : page->functions) seen.push_back(f.name);
    marker = page->next_marker;
    REQUIRE(++pages < 10);
  } while (!marker.empty());
  CHECK(pages == 3);
  CHECK(seen == std::vector<std::string>{"f0", "f1", "f2", "f3", "f4", "f5", "f6"});
  CHECK(s->ListFunctions("!!not base64", 3).status().code() == Code::kInvalidArgument);
  auto all = s->ListFunctions("", 50);
  CHECK(all->functions.size() == 7);
  CHECK(all->next_marker.empty());
}

TEST_CASE("store: function URL configs and the route table", "[store]") {
  TempDir dir;
  auto s = OpenStore(dir);
  FunctionUrlConfigRecord c;
  c.function_name = "web";
  CHECK(s->CreateFunctionUrlConfig(c).status().code() == Code::kNotFound);
  REQUIRE(s->CreateFunction(MakeFunction("web")).ok());
  REQUIRE(s->CreateFunction(MakeFunction("other")).ok());
  c.cors = {{"AllowOrigins", {"*"}}};
  auto made = s->CreateFunctionUrlConfig(c);
  REQUIRE(made.ok());
  CHECK(AllOf(made->url_id, 32, "abcdefghijklmnopqrstuvwxyz0123456789"));
  CHECK_FALSE(made->creation_time.empty());
  CHECK(s->CreateFunctionUrlConfig(c).status().code() == Code::kAlreadyExists);

  auto got = s->GetFunctionUrlConfig("web");
  REQUIRE(got.ok());
  CHECK(got->url_id == made->url_id);
  CHECK(got->cors["AllowOrigins"][0] == "*");
  CHECK(s->GetFunctionUrlConfig("other").status().code() == Code::kNotFound);

  auto by_id = s->FindFunctionUrlByUrlId(made->url_id);
  REQUIRE(by_id.ok());
  CHECK(by_id->function_name == "web");
  CHECK(s->FindFunctionUrlByUrlId("zzz").status().code() == Code::kNotFound);

  auto list = s->ListFunctionUrlConfigs("web", "", 50);
  REQUIRE(list.ok());
  CHECK(list->configs.size() == 1);
  CHECK(s->ListFunctionUrlConfigs("other", "", 50)->configs.empty());
  CHECK(s->ListFunctionUrlConfigs("ghost", "", 50).status().code() == Code::kNotFound);

  auto upd = s->UpdateFunctionUrlConfig("web", [](FunctionUrlConfigRecord& u) {
    u.cors = nullptr;
    u.url_id = "hijack";  // ignored
    return Status::Ok();
  });
  REQUIRE(upd.ok());
  CHECK(upd->url_id == made->url_id);
  CHECK(upd->cors.is_null());

  auto routes = s->ListFunctionUrlRoutes([](const std::string& hex) { return "/code/" + hex; }, "eu-west-1");
  REQUIRE(routes.ok());
  REQUIRE(routes->size() == 1);
  const auto& r = routes->front();
  CHECK(r.url_id == made->url_id);
  CHECK(r.auth_type == "NONE");
  CHECK(r.function.name == "web");
  CHECK(r.function.code_dir == "/code/" + std::string(64, 'a'));
  CHECK(r.function.region == "eu-west-1");
  CHECK(r.function.log_group == "/aws/lambda/web");
  CHECK(r.function.environment.at("B") == "two");

  // Deleting the function removes its URL config by cascade.
  REQUIRE(s->DeleteFunction("web").ok());
  CHECK(s->FindFunctionUrlByUrlId(made->url_id).status().code() == Code::kNotFound);
  CHECK(s->ListFunctionUrlRoutes([](const std::string& h) { return h; }, "r")->empty());

  REQUIRE(s->CreateFunctionUrlConfig(FunctionUrlConfigRecord{"", "other"}).ok());
  CHECK(s->DeleteFunctionUrlConfig("other").ok());
  CHECK(s->DeleteFunctionUrlConfig("other").code() == Code::kNotFound);
}

TEST_CASE("store: admin keys", "[store]") {
  TempDir dir;
  auto s = OpenStore(dir);
  CHECK(s->ListAccessKeys()->empty());
  auto k = s->CreateAdminKey();
  REQUIRE(k.ok());
  CHECK(k->access_key_id.rfind("AKIA", 0) == 0);
  CHECK(AllOf(k->access_key_id.substr(4), 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
  CHECK(AllOf(k->secret_access_key, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"));
  CHECK(k->is_admin);
  auto got = s->GetAccessKey(k->access_key_id);
  REQUIRE(got.ok());
  CHECK(got->secret_access_key == k->secret_access_key);
  CHECK(s->GetAccessKey("AKIAUNKNOWN").status().code() == Code::kNotFound);
  CHECK(s->CreateAdminKey()->access_key_id != k->access_key_id);
  CHECK(s->ListAccessKeys()->size() == 2);
}

TEST_CASE("store: log append, query, pagination", "[store][logs]") {
  TempDir dir;
  auto s = OpenStore(dir);
  REQUIRE(s->AppendLogs(Batch("fn", "r1", 1000, 5)).ok());
  REQUIRE(s->AppendLogs(Batch("fn", "r2", 2000, 5)).ok());
  REQUIRE(s->AppendLogs(Batch("other", "r3", 1000, 3)).ok());

  LogQuery q;
  q.function_name = "fn";
  auto all = s->QueryLogs(q);
  REQUIRE(all.ok());
  CHECK(all->events.size() == 10);
  CHECK(all->events.front().message == "line 1000");
  CHECK(all->events.back().message == "line 2004");
  CHECK_FALSE(all->more);

  q.request_id = "r2";
  auto r2 = s->QueryLogs(q);
  CHECK(r2->events.size() == 5);
  CHECK(r2->events.front().request_id == "r2");
  q.request_id.clear();

  q.start_ms = 1003;
  q.end_ms = 2002;
  auto range = s->QueryLogs(q);
  REQUIRE(range->events.size() == 4);  // 1003, 1004, 2000, 2001
  CHECK(range->events.front().timestamp_ms == 1003);
  CHECK(range->events.back().timestamp_ms == 2001);

  // Pages of 3 cover all 10 exactly once, in order.
  q.start_ms = 0;
  q.end_ms = INT64_MAX;
  q.limit = 3;
  std::vector<int64_t> ts;
  for (int i = 0; i < 10; ++i) {
    auto page = s->QueryLogs(q);
    REQUIRE(page.ok());
    for (auto& e : page->events) ts.push_back(e.timestamp_ms);
    q.next_token = page->next_token;
    if (!page->more) break;
  }
  CHECK(ts.size() == 10);
  CHECK(std::is_sorted(ts.begin(), ts.end()));
  // Following: nothing new returns the same token; a new line arrives after it.
  auto idle = s->QueryLogs(q);
  CHECK(idle->events.empty());
  CHECK(idle->next_token == q.next_token);
  REQUIRE(s->AppendLogs(Batch("fn", "r4", 3000, 1)).ok());
  auto fresh = s->QueryLogs(q);
  REQUIRE(fresh->events.size() == 1);
  CHECK(fresh->events[0].message == "line 3000");

  q.next_token = "garbage";
  CHECK(s->QueryLogs(q).status().code() == Code::kInvalidArgument);

  // Oversized lines are truncated, not refused.
  proto::LogBatch big = Batch("fn", "r5", 4000, 0);
  big.events.push_back({4000, std::string(300 * 1024, 'x')});
  REQUIRE(s->AppendLogs(big).ok());
  LogQuery bq;
  bq.function_name = "fn";
  bq.start_ms = 4000;
  CHECK(s->QueryLogs(bq)->events.at(0).message.size() == 256 * 1024);
}

TEST_CASE("store: log retention keeps the newest lines per function", "[store][logs]") {
  TempDir dir;
  StoreOptions opt;
  opt.max_log_lines_per_function = 100;
  opt.log_prune_batch = 30;
  auto s = OpenStore(dir, opt);
  for (int i = 0; i < 10; ++i) REQUIRE(s->AppendLogs(Batch("fn", "r", 1000 + i * 25, 25)).ok());
  REQUIRE(s->AppendLogs(Batch("quiet", "r", 0, 5)).ok());
  // 250 lines appended, at most 30 pruned per append: the bound is reached as appends continue.
  auto n = s->CountLogs("fn");
  REQUIRE(n.ok());
  CHECK(*n == 100);
  CHECK(*s->CountLogs("quiet") == 5);
  LogQuery q;
  q.function_name = "fn";
  q.limit = 1000;
  auto page = s->QueryLogs(q);
  REQUIRE(page->events.size() == 100);
  CHECK(page->events.front().timestamp_ms == 1150);  // the oldest 150 went
  CHECK(page->events.back().timestamp_ms == 1249);
}

TEST_CASE("store: an acknowledged write survives kill -9 of the writer", "[store]") {
  TempDir dir;
  int ack[2];
  REQUIRE(::pipe(ack) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: write, acknowledge, then wait to be killed mid-life (no clean close of SQLite).
    ::close(ack[0]);
    auto s = Store::Open(dir / "geysir.db");
    if (!s.ok() || !(*s)->CreateFunction(MakeFunction("durable")).ok()) ::_exit(1);
    if (!(*s)->AppendLogs(Batch("durable", "r", 1, 3)).ok()) ::_exit(1);
    char c = 'k';
    if (::write(ack[1], &c, 1) != 1) ::_exit(1);
    for (int i = 0; i < 100; ++i) ::usleep(100 * 1000);  // bounded: 10 s at most
    ::_exit(2);
  }
  ::close(ack[1]);
  char c = 0;
  REQUIRE(::read(ack[0], &c, 1) == 1);
  ::close(ack[0]);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  auto s = OpenStore(dir);
  auto f = s->GetFunction("durable");
  REQUIRE(f.ok());
  CHECK(f->handler == "app.handler");
  CHECK(*s->CountLogs("durable") == 3);
}

TEST_CASE("store: published versions are frozen snapshots, numbered once", "[store][versions]") {
  TempDir dir;
  auto s = OpenStore(dir);
  REQUIRE(s->CreateFunction(MakeFunction("v")).ok());
  auto v1 = s->PublishVersion("v", "first");
  REQUIRE(v1.ok());
  CHECK(v1->version == "1");
  CHECK(v1->arn == "arn:aws:lambda:us-east-1:000000000000:function:v:1");
  CHECK(v1->description == "first");
  // A version gets its own revision, so the scheduler gives it a template of its own.
  CHECK(v1->revision_id != s->GetFunction("v")->revision_id);
  // Nothing changed: the same version comes back.
  CHECK(s->PublishVersion("v", "")->version == "1");

  REQUIRE(s->UpdateFunction("v", [](FunctionRecord& f) {
               f.code_hex = std::string(64, 'b');
               f.code_sha256 = "bbbb";
               f.environment = {{"COLOR", "blue"}};
               return Status::Ok();
             }).ok());
  REQUIRE(s->SetReservedConcurrency("v", 7).ok());
  auto v2 = s->PublishVersion("v", "");
  REQUIRE(v2.ok());
  CHECK(v2->version == "2");
  CHECK(v2->code_sha256 == "bbbb");
  // Version 1 still has its own code and configuration; concurrency is the function's.
  auto got1 = s->GetFunctionVersion("v", "1");
  REQUIRE(got1.ok());
  CHECK(got1->code_hex == std::string(64, 'a'));
  CHECK(got1->environment == std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}});
  CHECK(got1->reserved_concurrency == std::optional<uint32_t>(7));
  CHECK(s->GetFunctionVersion("v", "3").status().code() == Code::kNotFound);
  CHECK(s->GetFunctionVersion("v", "$LATEST")->version == "$LATEST");

  // Both code trees are referenced (code GC must keep version 1's).
  auto refs = s->ReferencedCodeHexes();
  CHECK(refs->count(std::string(64, 'a')) == 1);
  CHECK(refs->count(std::string(64, 'b')) == 1);

  auto page = s->ListVersions("v", "", 2);
  REQUIRE(page.ok());
  REQUIRE(page->functions.size() == 2);
  CHECK(page->functions[0].version == "$LATEST");
  CHECK(page->functions[1].version == "1");
  auto rest = s->ListVersions("v", page->next_marker, 2);
  REQUIRE(rest->functions.size() == 1);
  CHECK(rest->functions[0].version == "2");
  CHECK(rest->next_marker.empty());

  // An alias pins its version; numbers are not reused after a delete.
  AliasRecord a;
  a.function_name = "v";
  a.name = "live";
  a.function_version = "2";
  REQUIRE(s->CreateAlias(a).ok());
  CHECK(s->DeleteFunctionVersion("v", "2").code() == Code::kConflict);
  REQUIRE(s->DeleteAlias("v", "live").ok());
  REQUIRE(s->DeleteFunctionVersion("v", "2").ok());
  REQUIRE(s->UpdateFunction("v", [](FunctionRecord& f) {
               f.memory_mb = 1024;
               return Status::Ok();
             }).ok());
  CHECK(s->PublishVersion("v", "")->version == "3");
  CHECK(s->PublishVersion("v", "", [](const FunctionRecord&) { return Status::Invalid("no"); }).status().code() ==
        Code::kInvalidArgument);

  // Deleting the function takes its versions with it.
  REQUIRE(s->DeleteFunction("v").ok());
  CHECK(s->ReferencedCodeHexes()->empty());
  REQUIRE(s->CreateFunction(MakeFunction("v")).ok());
  CHECK(s->PublishVersion("v", "")->version == "1");
}

TEST_CASE("store: aliases, permissions, tags", "[store][versions]") {
  TempDir dir;
  auto s = OpenStore(dir);
  REQUIRE(s->CreateFunction(MakeFunction("f")).ok());
  REQUIRE(s->PublishVersion("f", "").ok());
  AliasRecord a;
  a.function_name = "f";
  a.name = "live";
  a.function_version = "1";
  a.additional_weights = {{"1", 0.5}};
  auto created = s->CreateAlias(a);
  REQUIRE(created.ok());
  CHECK(created->revision_id.size() == 36);
  CHECK(s->CreateAlias(a).status().code() == Code::kAlreadyExists);
  a.name = "bad";
  a.function_version = "9";
  CHECK(s->CreateAlias(a).status().code() == Code::kNotFound);
  auto up = s->UpdateAlias("f", "live", [](AliasRecord& r) {
    r.function_version = "$LATEST";
    r.additional_weights.clear();
    return Status::Ok();
  });
  REQUIRE(up.ok());
  CHECK(up->revision_id != created->revision_id);
  CHECK(s->GetAlias("f", "live")->function_version == "$LATEST");
  CHECK(s->GetAlias("f", "nope").status().code() == Code::kNotFound);
  CHECK(s->ListAliases("f")->size() == 1);
  CHECK(s->ListAliases("f", "1")->empty());

  PermissionRecord p{"f", "", "S1", nlohmann::json{{"Sid", "S1"}}};
  REQUIRE(s->AddPermission(p).ok());
  CHECK(s->AddPermission(p).code() == Code::kAlreadyExists);
  p.qualifier = "live";  // the same id under another qualifier is another statement
  REQUIRE(s->AddPermission(p).ok());
  CHECK(s->ListPermissions("f", "")->size() == 1);
  CHECK(s->ListPermissions("f", "live")->size() == 1);
  REQUIRE(s->RemovePermission("f", "", "S1").ok());
  CHECK(s->RemovePermission("f", "", "S1").code() == Code::kNotFound);
  CHECK(s->AddPermission(PermissionRecord{"nope", "", "x", nlohmann::json::object()}).code() == Code::kNotFound);

  const std::string rev = s->GetFunction("f")->revision_id;
  REQUIRE(s->UpdateTags("f", [](std::map<std::string, std::string>& t) { t["k"] = "v"; }).ok());
  REQUIRE(s->SetReservedConcurrency("f", 3).ok());
  auto f = s->GetFunction("f");
  CHECK(f->tags.at("k") == "v");
  CHECK(f->reserved_concurrency == std::optional<uint32_t>(3));
  CHECK(f->revision_id == rev);  // neither is a code or configuration change
  CHECK(*s->TotalReservedConcurrency("") == 3);
  CHECK(*s->TotalReservedConcurrency("f") == 0);
  REQUIRE(s->SetReservedConcurrency("f", std::nullopt).ok());
  CHECK_FALSE(s->GetFunction("f")->reserved_concurrency.has_value());
  CHECK(s->SetReservedConcurrency("nope", 1).code() == Code::kNotFound);
}

TEST_CASE("store: log streams, filtered queries, log deletion, metrics", "[store][logs]") {
  TempDir dir;
  int64_t now = 1'800'000'000'000;
  StoreOptions opt;
  opt.now_ms = [&] { return now; };
  auto s = OpenStore(dir, opt);
  auto b1 = Batch("fn", "r1", 1000, 3);
  auto b2 = Batch("fn", "r2", 2000, 2);
  b2.log_stream = "2026/11/27/[$LATEST]def";
  REQUIRE(s->AppendLogs(b1).ok());
  REQUIRE(s->AppendLogs(b2).ok());
  auto streams = s->ListLogStreams("fn");
  REQUIRE(streams->size() == 2);
  CHECK(streams->at(0).first_ms == 1000);
  CHECK(streams->at(0).last_ms == 1002);

  LogQuery q;
  q.function_name = "fn";
  q.log_streams = {"2026/11/27/[$LATEST]def"};
  CHECK(s->QueryLogs(q)->events.size() == 2);
  q.log_streams.clear();
  q.filter = [](const std::string& m) { return m.ends_with("1") || m.ends_with("2"); };
  q.limit = 2;
  auto page = s->QueryLogs(q);
  REQUIRE(page->events.size() == 2);
  CHECK(page->more);
  q.next_token = page->next_token;
  auto page2 = s->QueryLogs(q);
  REQUIRE(page2->events.size() == 1);  // 2001 (the filter skips 2000 without counting it)
  CHECK(page2->events[0].message == "line 2001");
  CHECK_FALSE(page2->more);

  CHECK(s->ListLogGroups("")->size() == 1);
  CHECK(s->ListLogGroups("f")->size() == 1);
  CHECK(s->ListLogGroups("x")->empty());
  CHECK(*s->DeleteLogs("fn") == 5);
  CHECK(*s->CountLogs("fn") == 0);
  CHECK(s->ListLogGroups("")->empty());

  REQUIRE(s->RecordInvocation("fn", now + 1, false, 10.0).ok());
  REQUIRE(s->RecordInvocation("fn", now + 2, true, 30.0).ok());
  REQUIRE(s->RecordInvocation("fn", now + 61'000, false, 5.0).ok());
  auto m = s->QueryMetrics("fn", now, now + 120'000);
  REQUIRE(m->size() == 2);
  CHECK(m->at(0).minute_ms == now);
  CHECK(m->at(0).invocations == 2);
  CHECK(m->at(0).errors == 1);
  CHECK(m->at(0).duration_sum_ms == 40.0);
  CHECK(m->at(0).duration_min_ms == 10.0);
  CHECK(m->at(0).duration_max_ms == 30.0);
  CHECK(m->at(1).invocations == 1);
  // Minutes older than 15 days are pruned as new ones arrive.
  now += 16LL * 24 * 3600 * 1000;
  REQUIRE(s->RecordInvocation("fn", now, false, 1.0).ok());
  CHECK(s->QueryMetrics("fn", 0, now + 60'000)->size() == 1);
}

TEST_CASE("store: a resent log batch (same sender, seq not above the stored mark) is stored once", "[store][logs]") {
  TempDir dir;
  int64_t now = 1'800'000'000'000;
  StoreOptions opt;
  opt.now_ms = [&] { return now; };
  auto s = OpenStore(dir, opt);
  auto b = Batch("fn", "r1", now, 3);
  b.outcome = "ok";
  b.duration_ms = 12.5;
  b.sender = "sched-a";
  b.seq = 1;
  auto first = s->AppendLogs(b);
  REQUIRE(first.ok());
  CHECK(*first);
  auto again = s->AppendLogs(b);  // control died before acknowledging; the scheduler resends
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(*s->CountLogs("fn") == 3);
  auto m = s->QueryMetrics("fn", now - 60'000, now + 60'000);
  REQUIRE(m->size() == 1);
  CHECK(m->at(0).invocations == 1);  // counted with the lines, once
  CHECK(m->at(0).duration_sum_ms == 12.5);

  // The next seq is stored; another sender (a restarted scheduler) starts its own count.
  b.seq = 2;
  CHECK(*s->AppendLogs(b));
  b.sender = "sched-b";
  b.seq = 1;
  CHECK(*s->AppendLogs(b));
  CHECK(*s->CountLogs("fn") == 9);
  // No seq: no de-duplication (older senders, tests).
  b.seq = 0;
  CHECK(*s->AppendLogs(b));
  CHECK(*s->AppendLogs(b));
  CHECK(*s->CountLogs("fn") == 15);
}

TEST_CASE("store: a frame of log batches is stored in one call, resends among them skipped", "[store][logs]") {
  TempDir dir;
  int64_t now = 1'800'000'000'000;
  StoreOptions opt;
  opt.now_ms = [&] { return now; };
  opt.max_log_lines_per_function = 20;
  opt.log_prune_batch = 2;
  auto s = OpenStore(dir, opt);
  auto batch = [&](const std::string& fn, const std::string& rid, uint64_t seq, int n, const char* outcome) {
    auto b = Batch(fn, rid, now + static_cast<int64_t>(seq) * 10, n);
    b.outcome = outcome;
    b.duration_ms = 2;
    b.sender = "sched-a";
    b.seq = seq;
    return b;
  };
  // seq 1 was stored before; the frame resends it with 2..4 (a reconnect), two functions mixed.
  REQUIRE(*s->AppendLogs(batch("fn", "r1", 1, 3, "ok")));
  std::vector<proto::LogBatch> frame = {batch("fn", "r1", 1, 3, "ok"), batch("fn", "r2", 2, 4, "ok"),
                                        batch("other", "r3", 3, 2, "unhandled"), batch("fn", "r4", 4, 1, "")};
  auto stored = s->AppendLogBatches(frame);
  REQUIRE(stored.ok());
  CHECK(*stored == 3);
  CHECK(*s->CountLogs("fn") == 8);
  CHECK(*s->CountLogs("other") == 2);
  auto m = s->QueryMetrics("fn", now - 60'000, now + 60'000);
  REQUIRE(m->size() == 1);
  CHECK(m->at(0).invocations == 2);  // r1 once, r2; r4 has no outcome
  CHECK(m->at(0).errors == 0);
  CHECK(s->QueryMetrics("other", now - 60'000, now + 60'000)->at(0).errors == 1);
  // The whole frame again: nothing new.
  CHECK(*s->AppendLogBatches(frame) == 0);
  CHECK(*s->CountLogs("fn") == 8);
  // Lines come back in order.
  LogQuery q;
  q.function_name = "fn";
  q.limit = 100;
  auto page = s->QueryLogs(q);
  REQUIRE(page->events.size() == 8);
  CHECK(page->events.front().request_id == "r1");
  CHECK(page->events.back().request_id == "r4");
  // One frame adding more than log_prune_batch lines still ends within the bound.
  std::vector<proto::LogBatch> big;
  for (uint64_t seq = 5; seq < 10; ++seq) big.push_back(batch("fn", "r" + std::to_string(seq), seq, 5, "ok"));
  REQUIRE(*s->AppendLogBatches(big) == 5);
  CHECK(*s->CountLogs("fn") == 20);
}
