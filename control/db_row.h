// Table<Record>: one description of how a SQLite table's columns hold a record's members —
// each column's name, the member it holds and (from the member's type) how it is stored — from
// which the column list, the INSERT and UPDATE statements, the binds and the row reader are
// derived. A table's columns are written down once and read by name; no code counts columns.
//
//   const Table<AccessKey>& Keys() {
//     static const Table<AccessKey> kTable("access_keys", {
//         Col("access_key_id", &AccessKey::access_key_id),   // the key: the first column(s)
//         Col("secret", &AccessKey::secret_access_key),
//         Col("created", &AccessKey::created),
//         Col("is_admin", &AccessKey::is_admin)});
//     return kTable;
//   }
//   Statement s = db.Prepare(Keys().Select("WHERE access_key_id = ?"));
//   s.Bind(1, id);
//   if (s.Step()) AccessKey k = Keys().Read(s);
//
// Storage by member type: std::string as TEXT (NULL reads as ""); bool and integers as INTEGER;
// double as REAL; std::optional of any of these as NULL when empty. JsonCol stores any member
// nlohmann can convert as JSON text (an empty text reads as a default value).
//
// Errors: binding and reading throw DbError as Statement does, and a JsonCol holding malformed
// JSON throws nlohmann's parse_error: both are exception edges of control (docs/errors.md) that
// the caller's guard (Store's Guarded, the async queue's) converts into a Status.
//
// Thread safety: a Table is immutable once built; share it freely (a function-local static).
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/db.h"

namespace geysir::control {

// One column: its name, how the record's member is bound to a parameter and read back.
template <typename Record>
struct Column {
  std::string name;
  std::function<void(Statement&, int parameter, const Record&)> bind;
  std::function<void(const Statement&, int column, Record&)> read;
};

namespace row_detail {

template <typename T>
struct Reader;
template <>
struct Reader<std::string> {
  static std::string Read(const Statement& s, int c) { return s.Text(c); }
};
template <>
struct Reader<int64_t> {
  static int64_t Read(const Statement& s, int c) { return s.Int(c); }
};
template <>
struct Reader<int> {
  static int Read(const Statement& s, int c) { return static_cast<int>(s.Int(c)); }
};
template <>
struct Reader<uint32_t> {
  static uint32_t Read(const Statement& s, int c) { return static_cast<uint32_t>(s.Int(c)); }
};
template <>
struct Reader<bool> {
  static bool Read(const Statement& s, int c) { return s.Int(c) != 0; }
};
template <>
struct Reader<double> {
  static double Read(const Statement& s, int c) { return s.Double(c); }
};
template <typename T>
struct Reader<std::optional<T>> {
  static std::optional<T> Read(const Statement& s, int c) {
    if (s.IsNull(c)) return std::nullopt;
    return Reader<T>::Read(s, c);
  }
};

}  // namespace row_detail

// A column stored as the member's own SQLite type (see above).
template <typename Record, typename T>
Column<Record> Col(std::string name, T Record::*member) {
  return {std::move(name), [member](Statement& s, int p, const Record& r) { s.Bind(p, r.*member); },
          [member](const Statement& s, int c, Record& r) { r.*member = row_detail::Reader<T>::Read(s, c); }};
}

// A column stored as the member's JSON text.
template <typename Record, typename T>
Column<Record> JsonCol(std::string name, T Record::*member) {
  return {std::move(name),
          [member](Statement& s, int p, const Record& r) { s.Bind(p, nlohmann::json(r.*member).dump()); },
          [member](const Statement& s, int c, Record& r) {
            const std::string text = s.Text(c);
            r.*member = text.empty() ? T{} : nlohmann::json::parse(text).template get<T>();
          }};
}

template <typename Record>
class Table {
 public:
  // `key_columns`: how many leading columns identify a row (Update's WHERE).
  Table(std::string name, std::vector<Column<Record>> columns, size_t key_columns = 1)
      : name_(std::move(name)), columns_(std::move(columns)), key_columns_(key_columns) {}

  const std::string& name() const { return name_; }
  size_t size() const { return columns_.size(); }

  // "a, b, c"; with a prefix, "f.a, f.b, f.c" (for a join).
  std::string Columns(std::string_view prefix = "") const {
    std::string out;
    for (const Column<Record>& c : columns_) {
      if (!out.empty()) out += ", ";
      out.append(prefix).append(c.name);
    }
    return out;
  }
  // "SELECT a, b, c FROM table " + rest, e.g. rest = "WHERE name = ? ORDER BY name".
  std::string Select(std::string_view rest) const {
    std::string out = "SELECT " + Columns() + " FROM " + name_;
    if (!rest.empty()) out.append(" ").append(rest);
    return out;
  }
  // "INSERT INTO table (a, b, c) VALUES (?1, ?2, ?3)"; `verb` may be "INSERT OR REPLACE".
  std::string Insert(std::string_view verb = "INSERT") const {
    std::string values;
    for (size_t i = 1; i <= columns_.size(); ++i) values += (i > 1 ? ", ?" : "?") + std::to_string(i);
    return std::string(verb) + " INTO " + name_ + " (" + Columns() + ") VALUES (" + values + ")";
  }
  // Insert() that, when a row with the same key exists, updates every other column instead:
  // "... ON CONFLICT (a, b) DO UPDATE SET c = excluded.c, d = excluded.d".
  std::string Upsert() const {
    std::string key, set;
    for (size_t i = 0; i < columns_.size(); ++i) {
      const std::string& n = columns_[i].name;
      if (i < key_columns_) {
        key += (key.empty() ? "" : ", ") + n;
      } else {
        set += (set.empty() ? "" : ", ") + n + " = excluded." + n;
      }
    }
    return Insert() + " ON CONFLICT (" + key + ") DO UPDATE SET " + set;
  }
  // "UPDATE table SET c=?3, d=?4 WHERE a=?1 AND b=?2": every column, numbered as Bind numbers.
  std::string Update() const {
    std::string set, where;
    for (size_t i = 0; i < columns_.size(); ++i) {
      std::string& part = i < key_columns_ ? where : set;
      if (!part.empty()) part += i < key_columns_ ? " AND " : ", ";
      part += columns_[i].name + "=?" + std::to_string(i + 1);
    }
    return "UPDATE " + name_ + " SET " + set + " WHERE " + where;
  }

  // Binds every column of `r` to parameters 1..size(), in the description's order.
  void Bind(Statement& s, const Record& r) const {
    for (size_t i = 0; i < columns_.size(); ++i) columns_[i].bind(s, static_cast<int>(i + 1), r);
  }
  // The row's columns first..first+size()-1 into `r`; members without a column are left alone.
  void ReadInto(const Statement& s, Record& r, int first = 0) const {
    for (size_t i = 0; i < columns_.size(); ++i) columns_[i].read(s, first + static_cast<int>(i), r);
  }
  Record Read(const Statement& s, int first = 0) const {
    Record r{};
    ReadInto(s, r, first);
    return r;
  }

  // The same description cut down to `names`, in this table's order and with no key: for a
  // statement that writes only some columns (an INSERT leaving an AUTOINCREMENT id and the
  // defaults to SQLite). A name this table lacks is a bug in the caller (asserted).
  Table Subset(const std::vector<std::string_view>& names) const {
    std::vector<Column<Record>> kept;
    for (const Column<Record>& c : columns_) {
      for (std::string_view n : names) {
        if (c.name == n) kept.push_back(c);
      }
    }
    assert(kept.size() == names.size());
    return Table(name_, std::move(kept), 0);
  }

 private:
  std::string name_;
  std::vector<Column<Record>> columns_;
  size_t key_columns_;
};

}  // namespace geysir::control
