// Table<Record>: the statements derived from one description, and a record that goes in and
// comes back the same, for every storage kind (text, integers, bool, real, optional, JSON).
#include "control/db_row.h"

#include <catch2/catch.hpp>
#include <map>

#include "store_test_util.h"

using namespace geysir::control;
using geysir::control::testing::TempDir;

namespace {

struct Thing {
  std::string name;
  int64_t version = 0;
  std::string label = "unset";
  uint32_t size = 0;
  int count = 0;
  bool enabled = false;
  double ratio = 0;
  std::optional<int64_t> limit;
  std::optional<std::string> note;
  std::map<std::string, std::string> tags;
  nlohmann::json doc = nullptr;
  std::string not_stored = "kept";
};

const Table<Thing>& Things() {
  static const Table<Thing> kTable("things",
                                   {Col("name", &Thing::name), Col("version", &Thing::version),
                                    Col("label", &Thing::label), Col("size", &Thing::size), Col("count", &Thing::count),
                                    Col("enabled", &Thing::enabled), Col("ratio", &Thing::ratio),
                                    Col("lim", &Thing::limit), Col("note", &Thing::note), JsonCol("tags", &Thing::tags),
                                    JsonCol("doc", &Thing::doc)},
                                   /*key_columns=*/2);
  return kTable;
}

const std::vector<Migration> kSchema = {
    {1, "things",
     "CREATE TABLE things (name TEXT NOT NULL, version INTEGER NOT NULL, label TEXT, size INTEGER, count INTEGER, "
     "enabled INTEGER, ratio REAL, lim INTEGER, note TEXT, tags TEXT, doc TEXT, extra TEXT DEFAULT 'x', "
     "PRIMARY KEY (name, version))"}};

Thing Sample() {
  Thing t;
  t.name = "a";
  t.version = 7;
  t.label = "first";
  t.size = 4000000000u;  // above INT32_MAX: stored as a 64-bit integer, read back unsigned
  t.count = -3;
  t.enabled = true;
  t.ratio = 0.25;
  t.limit = 9;
  t.note = "n";
  t.tags = {{"k", "v"}};
  t.doc = {{"x", 1}};
  return t;
}

}  // namespace

TEST_CASE("row mapping: the statements name every column once, keys first", "[db_row]") {
  const Table<Thing>& t = Things();
  CHECK(t.size() == 11);
  CHECK(t.Columns() == "name, version, label, size, count, enabled, ratio, lim, note, tags, doc");
  CHECK(t.Columns("t.").rfind("t.name, t.version, t.label", 0) == 0);
  CHECK(t.Select("WHERE name = ?") ==
        "SELECT name, version, label, size, count, enabled, ratio, lim, note, tags, doc FROM things WHERE name = ?");
  CHECK(t.Select("") == "SELECT name, version, label, size, count, enabled, ratio, lim, note, tags, doc FROM things");
  CHECK(t.Insert() ==
        "INSERT INTO things (name, version, label, size, count, enabled, ratio, lim, note, tags, doc) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  CHECK(t.Insert("INSERT OR REPLACE").rfind("INSERT OR REPLACE INTO things (", 0) == 0);
  CHECK(t.Update() ==
        "UPDATE things SET label=?3, size=?4, count=?5, enabled=?6, ratio=?7, lim=?8, note=?9, tags=?10, doc=?11 "
        "WHERE name=?1 AND version=?2");
  CHECK(t.Upsert() == t.Insert() +
                          " ON CONFLICT (name, version) DO UPDATE SET label = excluded.label, size = excluded.size, "
                          "count = excluded.count, enabled = excluded.enabled, ratio = excluded.ratio, "
                          "lim = excluded.lim, note = excluded.note, tags = excluded.tags, doc = excluded.doc");
  // A subset keeps the table's order, whatever order the names come in.
  Table<Thing> some = t.Subset({"label", "name"});
  CHECK(some.Columns() == "name, label");
  CHECK(some.Insert() == "INSERT INTO things (name, label) VALUES (?1, ?2)");
}

TEST_CASE("row mapping: an upsert replaces all but the key; a subset leaves the rest to defaults", "[db_row]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kSchema);
  REQUIRE(db.ok());
  const Table<Thing>& t = Things();
  Thing a = Sample();
  for (const char* label : {"one", "two"}) {
    a.label = label;
    Statement up = db->Prepare(t.Upsert());
    t.Bind(up, a);
    CHECK(up.Run() == 1);
  }
  Statement n = db->Prepare("SELECT count(*), max(label) FROM things");
  REQUIRE(n.Step());
  CHECK(n.Int(0) == 1);
  CHECK(n.Text(1) == "two");

  Table<Thing> some = t.Subset({"name", "version", "label"});
  Thing b;
  b.name = "b";
  b.version = 1;
  b.label = "only";
  b.count = 99;  // not written
  Statement ins = db->Prepare(some.Insert());
  some.Bind(ins, b);
  REQUIRE(ins.Run() == 1);
  Statement sel = db->Prepare(t.Select("WHERE name = 'b'"));
  REQUIRE(sel.Step());
  Thing got = t.Read(sel);
  CHECK(got.label == "only");
  CHECK(got.count == 0);  // NULL: the column was left to SQLite
}

TEST_CASE("row mapping: a record goes in and comes back the same", "[db_row]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kSchema);
  REQUIRE(db.ok());
  const Table<Thing>& t = Things();

  Statement ins = db->Prepare(t.Insert());
  t.Bind(ins, Sample());
  CHECK(ins.Run() == 1);
  // The same row holds NULLs and empty JSON where the record has nothing.
  Thing empty;
  empty.name = "b";
  empty.tags.clear();
  Statement ins2 = db->Prepare(t.Insert());
  t.Bind(ins2, empty);
  CHECK(ins2.Run() == 1);

  Statement sel = db->Prepare(t.Select("WHERE name = ?"));
  sel.Bind(1, "a");
  REQUIRE(sel.Step());
  Thing a = t.Read(sel);
  CHECK(a.name == "a");
  CHECK(a.version == 7);
  CHECK(a.label == "first");
  CHECK(a.size == 4000000000u);
  CHECK(a.count == -3);
  CHECK(a.enabled);
  CHECK(a.ratio == 0.25);
  CHECK(a.limit == 9);
  CHECK(a.note == "n");
  CHECK(a.tags == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(a.doc == nlohmann::json{{"x", 1}});
  CHECK(a.not_stored == "kept");

  Statement nulls = db->Prepare("SELECT lim IS NULL, note IS NULL, tags, doc FROM things WHERE name = 'b'");
  REQUIRE(nulls.Step());
  CHECK(nulls.Int(0) == 1);
  CHECK(nulls.Int(1) == 1);
  CHECK(nulls.Text(2) == "{}");
  CHECK(nulls.Text(3) == "null");
  Statement selb = db->Prepare(t.Select("WHERE name = 'b'"));
  REQUIRE(selb.Step());
  Thing b = t.Read(selb);
  CHECK_FALSE(b.limit.has_value());
  CHECK_FALSE(b.note.has_value());
  CHECK(b.tags.empty());
  CHECK(b.doc.is_null());

  // Update changes every column but the key.
  Thing changed = Sample();
  changed.label = "second";
  changed.limit.reset();
  changed.tags = {{"a", "b"}, {"c", "d"}};
  Statement upd = db->Prepare(t.Update());
  t.Bind(upd, changed);
  CHECK(upd.Run() == 1);
  Statement again = db->Prepare(t.Select("WHERE name = 'a' AND version = 7"));
  REQUIRE(again.Step());
  Thing c = t.Read(again);
  CHECK(c.label == "second");
  CHECK_FALSE(c.limit.has_value());
  CHECK(c.tags.size() == 2);
}

TEST_CASE("row mapping: a record read from the middle of a joined row", "[db_row]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kSchema);
  REQUIRE(db.ok());
  const Table<Thing>& t = Things();
  Statement ins = db->Prepare(t.Insert());
  t.Bind(ins, Sample());
  REQUIRE(ins.Run() == 1);
  Statement sel = db->Prepare("SELECT 'before', " + t.Columns("x.") + " FROM things x");
  REQUIRE(sel.Step());
  Thing a = t.Read(sel, 1);
  CHECK(a.name == "a");
  CHECK(a.doc == nlohmann::json{{"x", 1}});
}

TEST_CASE("row mapping: a malformed JSON column throws for the caller's guard", "[db_row]") {
  TempDir dir;
  auto db = Db::Open(dir / "t.db", kSchema);
  REQUIRE(db.ok());
  db->Exec("INSERT INTO things (name, version, tags, doc) VALUES ('z', 1, '{not json', 'null')");
  Statement sel = db->Prepare(Things().Select("WHERE name = 'z'"));
  REQUIRE(sel.Step());
  CHECK_THROWS_AS(Things().Read(sel), nlohmann::json::parse_error);
}
