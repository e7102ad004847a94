// The SQL helpers the Store's units share (store.cpp, store_resources.cpp):
// a prepared statement that throws StoreFailure on errors, and an IMMEDIATE
// transaction rolled back unless committed. Internal to the store.
#pragma once

#include <sqlite3.h>

#include <ctime>
#include <optional>
#include <string>

#include <fmt/core.h>

#include "control/store.h"

namespace strata::control::sql {

// One prepared statement; binds by position, throws StoreFailure on errors.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }

  Statement& bind(int index, const std::string& text) {
    check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind(int index, int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, double value) {
    check(sqlite3_bind_double(stmt_, index, value));
    return *this;
  }
  template <typename T>
  Statement& bind(int index, const std::optional<T>& value) {
    if (value) return bind(index, static_cast<int64_t>(*value));
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }
  Statement& bindOptionalText(int index, const std::optional<std::string>& value) {
    if (value) return bind(index, *value);
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }
  // True while there is a row to read.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail("step");
    return false;
  }
  // Runs a statement that may violate a constraint; false when it did.
  bool stepUnlessConstraint() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return true;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return false;
    fail("step");
    return false;
  }
  std::string text(int column) const {
    auto* data = sqlite3_column_text(stmt_, column);
    return data ? reinterpret_cast<const char*>(data) : "";
  }
  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool isNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::optional<uint64_t> optionalCount(int column) const {
    if (isNull(column)) return std::nullopt;
    return static_cast<uint64_t>(integer(column));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
  }
  [[noreturn]] void fail(const char* what) {
    throw StoreFailure(fmt::format("database {}: {}", what, sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE takes the write lock up front, so a check-then-insert inside
// cannot interleave with another connection's; rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw StoreFailure(fmt::format("database {}: {}", sql, sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  bool done_ = false;
};

inline int64_t now() { return static_cast<int64_t>(::time(nullptr)); }

}  // namespace strata::control::sql
