// Internal: a thin RAII layer over SQLite for the model registry. Every SQLite error becomes
// a kiln::Error naming the database file: FormatError for a file that is not a database or is
// corrupt, IoError for one that cannot be opened, read, written or locked in time, Error for
// the rest. Only compiled with KILN_WITH_SQLITE.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/core/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace kiln::internal {

class SqliteDb;

/// A prepared statement: bind with bind(), step with step() (true while a row is there),
/// read the row's columns with the column accessors. Finalised by the destructor.
class SqliteStatement {
 public:
  SqliteStatement(SqliteDb& db, std::string_view sql);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  /// Parameters are numbered from 1.
  SqliteStatement& bind(int index, std::string_view text);
  SqliteStatement& bind(int index, std::int64_t value);
  SqliteStatement& bind(int index, std::optional<std::int64_t> value);
  SqliteStatement& bind_null(int index);

  /// Runs to the next row: true when there is one, false when done.
  bool step();
  /// step() until done (statements that return no rows).
  void run();

  /// Columns are numbered from 0.
  std::string text(int column) const;
  std::int64_t integer(int column) const;
  std::optional<std::int64_t> optional_integer(int column) const;
  bool is_null(int column) const;

 private:
  SqliteDb& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// SQLITE_BUSY / SQLITE_LOCKED: another connection held the lock past the busy timeout, or
/// SQLite refused at once without waiting (as it does while another connection sets up a
/// new database's WAL). An IoError to callers; open() retries it.
struct SqliteBusyError : IoError {
  using IoError::IoError;
};

class SqliteDb {
 public:
  /// Opens (creating when missing) the database file; busy_timeout_ms is how long a
  /// statement waits for another connection's lock before failing with IoError.
  SqliteDb(const std::string& path, int busy_timeout_ms);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  /// Runs one or more statements that return nothing.
  void exec(const std::string& sql);
  /// Throws the kiln::Error that SQLite result code `rc` stands for, naming the database
  /// and saying what was being done.
  [[noreturn]] void fail(int rc, std::string_view doing) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

/// A write transaction: BEGIN IMMEDIATE (takes the write lock up front, waiting for other
/// writers up to the busy timeout, so two writers never deadlock upgrading a read lock);
/// rolled back by the destructor unless commit() was called.
class SqliteWriteTransaction {
 public:
  explicit SqliteWriteTransaction(SqliteDb& db);
  ~SqliteWriteTransaction();
  SqliteWriteTransaction(const SqliteWriteTransaction&) = delete;
  SqliteWriteTransaction& operator=(const SqliteWriteTransaction&) = delete;
  void commit();

 private:
  SqliteDb& db_;
  bool open_ = true;
};

/// A read transaction (BEGIN DEFERRED): the statements inside see one snapshot.
class SqliteReadTransaction {
 public:
  explicit SqliteReadTransaction(SqliteDb& db);
  ~SqliteReadTransaction();
  SqliteReadTransaction(const SqliteReadTransaction&) = delete;
  SqliteReadTransaction& operator=(const SqliteReadTransaction&) = delete;

 private:
  SqliteDb& db_;
};

}  // namespace kiln::internal
