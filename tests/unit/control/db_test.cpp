#include "control/db.h"

#include <catch2/catch.hpp>

#include "store_test_util.h"

using namespace geysir::control;
using geysir::control::testing::ModeOf;
using geysir::control::testing::TempDir;

namespace {

const std::vector<Migration> kTwoSteps = {
    {1, "people", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INTEGER);"},
    {2, "pets", "CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE);"},
};

std::string PragmaText(const Db& db, const char* pragma) {
  auto st = db.Prepare(std::string("PRAGMA ") + pragma);
  REQUIRE(st.Step());
  return st.Text(0);
}

}  // namespace

TEST_CASE("migrations apply on a fresh database and are idempotent on reopen", "[db]") {
  TempDir dir;
  const std::string path = dir / "t.db";
  {
    auto db = Db::Open(path, kTwoSteps);
    REQUIRE(db.ok());
    CHECK(db->SchemaVersion() == 2);
    db->Prepare("INSERT INTO people (name, age) VALUES (?, ?)").BindAll("ada", 36).Run();
  }
  CHECK(ModeOf(path) == 0600);
  {
    auto db = Db::Open(path, kTwoSteps);
    REQUIRE(db.ok());
    CHECK(db->SchemaVersion() == 2);
    auto st = db->Prepare("SELECT count(*) FROM people");
    REQUIRE(st.Step());
    CHECK(st.Int(0) == 1);  // data kept, step 1 not re-run
  }
  // An older database is brought forward one step at a time.
  TempDir dir2;
  {
    auto db = Db::Open(dir2 / "t.db", {kTwoSteps[0]});
    REQUIRE(db.ok());
    CHECK(db->SchemaVersion() == 1);
  }
  auto db = Db::Open(dir2 / "t.db", kTwoSteps);
  REQUIRE(db.ok());
  CHECK(db->SchemaVersion() == 2);
}

TEST_CASE("a database newer than the code is refused with a clear error", "[db]") {
  TempDir dir;
  const std::string path = dir / "t.db";
  {
    auto db = Db::Open(path, kTwoSteps);
    REQUIRE(db.ok());
    db->Exec("PRAGMA user_version=7");
  }
  auto db = Db::Open(path, kTwoSteps);
  REQUIRE_FALSE(db.ok());
  CHECK_THAT(db.status().message(), Catch::Contains("schema version 7 is newer"));
  CHECK_THAT(db.status().message(), Catch::Contains("(2)"));
}

TEST_CASE("a failing migration leaves the database at the last complete step", "[db]") {
  TempDir dir;
  const std::string path = dir / "t.db";
  std::vector<Migration> bad = kTwoSteps;
  bad.push_back({3, "broken", "CREATE TABLE ok3 (x); THIS IS NOT SQL;"});
  auto db = Db::Open(path, bad);
  REQUIRE_FALSE(db.ok());
  CHECK_THAT(db.status().message(), Catch::Contains("migration 3 (broken) failed"));
  auto again = Db::Open(path, kTwoSteps);
  REQUIRE(again.ok());
  CHECK(again->SchemaVersion() == 2);
  auto st = again->Prepare("SELECT count(*) FROM sqlite_master WHERE name = 'ok3'");
  REQUIRE(st.Step());
  CHECK(st.Int(0) == 0);  // the half-applied step was rolled back
}

TEST_CASE("pragmas: WAL, synchronous=FULL, foreign keys on", "[db]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kTwoSteps);
  REQUIRE(db.ok());
  CHECK(PragmaText(*db, "journal_mode") == "wal");
  CHECK(PragmaText(*db, "synchronous") == "2");
  CHECK(PragmaText(*db, "foreign_keys") == "1");
  // Foreign keys are enforced.
  CHECK_THROWS_AS(db->Prepare("INSERT INTO pets (owner) VALUES (42)").Run(), DbError);
}

TEST_CASE("HasTable tells a table that is not created yet without reading SQLite's message", "[db]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", {kTwoSteps[0]});
  REQUIRE(db.ok());
  CHECK(db->HasTable("people"));
  CHECK_FALSE(db->HasTable("pets"));
  CHECK_FALSE(db->HasTable("people_index"));
  db->Exec("CREATE INDEX people_index ON people(age)");
  CHECK_FALSE(db->HasTable("people_index"));  // an index is not a table
  db->Migrate(kTwoSteps);
  CHECK(db->HasTable("pets"));
}

TEST_CASE("transactions roll back unless committed", "[db]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kTwoSteps);
  REQUIRE(db.ok());
  auto count = [&] {
    auto st = db->Prepare("SELECT count(*) FROM people");
    st.Step();
    return st.Int(0);
  };
  {
    Transaction tx(*db);
    db->Prepare("INSERT INTO people (name) VALUES ('a')").Run();
  }
  CHECK(count() == 0);
  {
    Transaction tx(*db);
    db->Prepare("INSERT INTO people (name) VALUES ('b')").Run();
    tx.Commit();
  }
  CHECK(count() == 1);
  try {
    Transaction tx(*db);
    db->Prepare("INSERT INTO people (name) VALUES ('c')").Run();
    db->Prepare("INSERT INTO people (name) VALUES ('b')").Run();  // unique violation
    tx.Commit();
    FAIL("expected a constraint error");
  } catch (const DbError& e) {
    CHECK(e.IsConstraint());
  }
  CHECK(count() == 1);  // 'c' went with the failed transaction
}

TEST_CASE("typed binds and column reads", "[db]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kTwoSteps);
  REQUIRE(db.ok());
  std::optional<int64_t> none;
  db->Prepare("INSERT INTO people (name, age) VALUES (?, ?)").BindAll(std::string("x\0y", 3), none).Run();
  db->Prepare("INSERT INTO people (name, age) VALUES (?, ?)").BindAll("z", std::optional<int64_t>(5)).Run();
  auto st = db->Prepare("SELECT name, age FROM people ORDER BY id");
  REQUIRE(st.Step());
  CHECK(st.Text(0) == std::string("x\0y", 3));
  CHECK(st.IsNull(1));
  CHECK_FALSE(st.OptInt(1).has_value());
  REQUIRE(st.Step());
  CHECK(st.OptInt(1) == 5);
  CHECK_FALSE(st.Step());
  CHECK_THROWS_AS(db->Prepare("SELECT nope FROM nowhere"), DbError);
}
