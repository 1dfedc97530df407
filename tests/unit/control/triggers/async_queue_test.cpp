// GroupCommit (both modes) and the async queue's retry/age policy (control/triggers/async_queue.h).
// Real SQLite files in a temp directory and a real libuv loop; no timing is asserted.
#include "control/triggers/async_queue.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "control/aws_error.h"
#include "control/db.h"
#include "tests/support/loop.h"
#include "tests/unit/control/store_test_util.h"

using namespace geysir;
using namespace geysir::control;
using namespace geysir::control::triggers;
using geysir::control::testing::TempDir;

namespace {

const std::vector<Migration> kSchema = {
    {1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"},
};

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    // Close callbacks of handles released by the code under test.
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  // Runs the loop until `cond` holds; bounded so a bug fails the test instead of hanging it.
  bool RunUntil(const std::function<bool()>& cond) { return geysir::testing::RunUntil(&loop, cond, 40000); }
};

Db OpenDb(const std::string& path) {
  Result<Db> db = Db::Open(path, kSchema);
  REQUIRE(db.ok());
  return std::move(*db);
}

std::unique_ptr<Db> OpenWriter(const std::string& path) {
  Result<Db> db = Db::Open(path, kSchema);
  REQUIRE(db.ok());
  return std::make_unique<Db>(std::move(*db));
}

int64_t Count(const Db& db, const std::string& where = "1") {
  Statement s = db.Prepare("SELECT COUNT(*) FROM items WHERE " + where);
  REQUIRE(s.Step());
  return s.Int(0);
}

GroupCommit::Work Insert(std::string name) {
  return [name](Db& db) { db.Prepare("INSERT INTO items (name) VALUES (?)").Bind(1, name).Run(); };
}

}  // namespace

TEST_CASE("GroupCommit (loop mode) commits one loop turn's submissions as one transaction", "[group_commit]") {
  TempDir dir;
  Db db = OpenDb(dir / "g.db");
  Db observer = OpenDb(dir / "g.db");  // a second connection sees only what was committed
  Loop l;
  GroupCommit gc(&l.loop, db);
  REQUIRE_FALSE(gc.threaded());
  std::vector<Status> got;
  std::vector<int64_t> seen_in_done;
  for (const char* n : {"a", "b", "c"}) {
    gc.Submit(Insert(n), [&](Status st) {
      got.push_back(st);
      seen_in_done.push_back(Count(observer));
    });
  }
  CHECK(Count(observer) == 0);  // nothing runs before the loop turns
  REQUIRE(l.RunUntil([&] { return got.size() == 3; }));
  for (const Status& st : got) CHECK(st.ok());
  // Every callback ran after the commit: the other connection already sees all three rows.
  CHECK(seen_in_done == std::vector<int64_t>{3, 3, 3});
  CHECK(gc.batches() == 1);
  CHECK(gc.items() == 3);
  CHECK(gc.largest_batch() == 3);
  gc.Close();
}

TEST_CASE("GroupCommit rolls back a failing item alone", "[group_commit]") {
  TempDir dir;
  const std::string path = dir / "g.db";
  Db db = OpenDb(path);
  Loop l;
  const bool threaded = GENERATE(false, true);
  std::unique_ptr<GroupCommit> gc = threaded ? std::make_unique<GroupCommit>(&l.loop, OpenWriter(path))
                                             : std::make_unique<GroupCommit>(&l.loop, db);
  REQUIRE(gc->threaded() == threaded);
  std::vector<Status> got(5);
  int done = 0;
  auto cb = [&](size_t i) { return [&, i](Status st) { got[i] = st; ++done; }; };
  gc->Submit(Insert("first"), cb(0));
  // Writes a row, then throws: the row must go with it.
  gc->Submit(
      [](Db& d) {
        d.Prepare("INSERT INTO items (name) VALUES ('half')").Run();
        throw ApiException(AwsError{400, "ValidationException", "the second item is invalid"});
      },
      cb(1));
  // A constraint violation (DbError) after its own earlier insert.
  gc->Submit(
      [](Db& d) {
        d.Prepare("INSERT INTO items (name) VALUES ('dup-before')").Run();
        d.Prepare("INSERT INTO items (name) VALUES ('first')").Run();
      },
      cb(2));
  // Any other exception is one item's failure too, not the batch's.
  gc->Submit([](Db&) { throw std::runtime_error("a bug in one item"); }, cb(3));
  gc->Submit(Insert("last"), cb(4));
  REQUIRE(l.RunUntil([&] { return done == 5; }));
  CHECK(got[0].ok());
  CHECK(got[1].code() == Code::kInvalidArgument);
  CHECK(got[1].message().find("the second item is invalid") != std::string::npos);
  CHECK(got[2].code() == Code::kInternal);
  CHECK(got[3].code() == Code::kInternal);
  CHECK(got[3].message().find("a bug in one item") != std::string::npos);
  CHECK(got[4].ok());
  CHECK(Count(db) == 2);
  CHECK(Count(db, "name IN ('first', 'last')") == 2);
  CHECK(gc->batches() == 1);
  gc->Close();
}

TEST_CASE("GroupCommit (committer thread) batches what arrives while a commit is in flight", "[group_commit]") {
  TempDir dir;
  const std::string path = dir / "g.db";
  Db db = OpenDb(path);
  Loop l;
  GroupCommit gc(&l.loop, OpenWriter(path));
  REQUIRE(gc.threaded());
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::string> order;
  bool all_on_loop = true;
  std::thread::id work_thread;
  auto done = [&](std::string name) {
    return [&, name](Status st) {
      CHECK(st.ok());
      all_on_loop = all_on_loop && std::this_thread::get_id() == loop_thread;
      order.push_back(name);
    };
  };
  // The first batch holds the committer for a while; b and c are submitted meanwhile (or, on a
  // slow machine, after it: either way they commit together, after a).
  gc.Submit(
      [&](Db& d) {
        work_thread = std::this_thread::get_id();
        d.Prepare("INSERT INTO items (name) VALUES ('a')").Run();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      },
      done("a"));
  uv_run(&l.loop, UV_RUN_NOWAIT);  // the turn's check hands "a" to the committer
  gc.Submit(Insert("b"), done("b"));
  gc.Submit(Insert("c"), done("c"));
  REQUIRE(l.RunUntil([&] { return order.size() == 3; }));
  CHECK(order == std::vector<std::string>{"a", "b", "c"});
  CHECK(all_on_loop);
  CHECK(work_thread != loop_thread);  // the work (and the fsync) ran on the committer thread
  CHECK(gc.batches() == 2);
  CHECK(gc.largest_batch() == 2);
  CHECK(Count(db) == 3);
  gc.Close();
}

TEST_CASE("GroupCommit Flush and Close commit everything pending, including a batch in flight", "[group_commit]") {
  TempDir dir;
  const std::string path = dir / "g.db";
  Db db = OpenDb(path);
  Loop l;
  auto gc = std::make_unique<GroupCommit>(&l.loop, OpenWriter(path));
  int done = 0;
  gc->Submit(
      [](Db& d) {
        d.Prepare("INSERT INTO items (name) VALUES ('slow')").Run();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      },
      [&](Status st) { done += st.ok(); });
  uv_run(&l.loop, UV_RUN_NOWAIT);  // hands "slow" to the committer
  for (int i = 0; i < 10; ++i) {
    gc->Submit(Insert("n" + std::to_string(i)), [&, i](Status st) {
      done += st.ok();
      // A callback that submits more during Flush: committed by the same Flush.
      if (i == 9) gc->Submit(Insert("chained"), [&](Status s2) { done += s2.ok(); });
    });
  }
  gc->Flush();  // no loop turn: Flush itself waits and commits
  CHECK(done == 12);
  CHECK(Count(db) == 12);
  gc->Submit(Insert("at-close"), [&](Status st) { done += st.ok(); });
  gc->Close();
  CHECK(done == 13);
  CHECK(Count(db) == 13);
  gc.reset();
}

TEST_CASE("MakeGroupCommit uses a committer thread for a database file", "[group_commit]") {
  TempDir dir;
  Db db = OpenDb(dir / "g.db");
  Loop l;
  std::unique_ptr<GroupCommit> gc = MakeGroupCommit(&l.loop, db);
  CHECK(gc->threaded());
  bool ok = false;
  gc->Submit(Insert("x"), [&](Status st) { ok = st.ok(); });
  REQUIRE(l.RunUntil([&] { return ok; }));
  CHECK(Count(db) == 1);
  gc->Close();
}

TEST_CASE("Lambda's async retry policy", "[retry_policy]") {
  SECTION("defaults: two retries, six hours, one then two minutes apart") {
    RetryPolicy p = RetryPolicy::From(std::nullopt, 1.0);
    CHECK(p.max_retry_attempts == 2);
    CHECK(p.max_event_age_s == 21600);
    CHECK(p.ShouldRetry(1));
    CHECK(p.ShouldRetry(2));
    CHECK_FALSE(p.ShouldRetry(3));  // three attempts in all
    CHECK(p.RetryDelayMs(1) == 60'000);
    CHECK(p.RetryDelayMs(2) == 120'000);
    CHECK_FALSE(p.Expired(0, 21600 * 1000));
    CHECK(p.Expired(0, 21600 * 1000 + 1));
  }
  SECTION("a config overrides only what it sets") {
    EventInvokeConfig c;
    c.max_retry_attempts = 0;
    RetryPolicy p = RetryPolicy::From(c, 1.0);
    CHECK(p.max_retry_attempts == 0);
    CHECK(p.max_event_age_s == 21600);
    CHECK_FALSE(p.ShouldRetry(1));  // one attempt, no retry
    c.max_retry_attempts.reset();
    c.max_event_age_s = 60;
    p = RetryPolicy::From(c, 1.0);
    CHECK(p.max_retry_attempts == 2);
    CHECK_FALSE(p.Expired(1'000, 61'000));
    CHECK(p.Expired(1'000, 61'001));
  }
  SECTION("the test time scale divides delays and the age limit, never below 1 ms") {
    RetryPolicy p = RetryPolicy::From(std::nullopt, 60.0);
    CHECK(p.RetryDelayMs(1) == 1'000);
    CHECK(p.RetryDelayMs(2) == 2'000);
    CHECK(p.Expired(0, 360'001));
    CHECK_FALSE(p.Expired(0, 360'000));
    RetryPolicy fast = RetryPolicy::From(std::nullopt, 1e9);
    CHECK(fast.Scaled(1000) == 1);
  }
}
