// The model registry (kiln/mlops/registry.hpp): a SQLite index (registry.db) beside model
// files stored once by content hash (objects/). docs/mlops.md "The registry" describes the
// layout, the tables, crash safety and concurrency.
#include "kiln/mlops/registry.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <span>
#include <string_view>
#include <thread>

#include "internal/utc_time.hpp"
#include "io/model_data.hpp"
#include "io/sha256.hpp"
#include "kiln/core/error.hpp"

#if KILN_WITH_SQLITE
#include <nlohmann/json.hpp>

#include "mlops/sqlite_db.hpp"
#endif

namespace kiln::registry {

#if KILN_WITH_SQLITE

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using internal::SqliteBusyError;
using internal::SqliteDb;
using internal::SqliteReadTransaction;
using internal::SqliteStatement;
using internal::SqliteWriteTransaction;

// The schema this library reads and writes (PRAGMA user_version). A later Kiln that changes
// the tables raises it and migrates older databases in migrate() on open; a database with a
// higher version than this is refused (written by a newer Kiln).
constexpr std::int64_t schema_version = 1;
// How long a statement waits for another process's write lock before giving up.
constexpr int busy_timeout_ms = 60000;

constexpr const char* schema_sql = R"sql(
CREATE TABLE versions (
  name            TEXT    NOT NULL,
  version         INTEGER NOT NULL CHECK (version > 0),
  hash            TEXT    NOT NULL,
  created         TEXT    NOT NULL,
  bytes           INTEGER NOT NULL,
  parent          INTEGER,
  data            TEXT    NOT NULL,
  spec            TEXT    NOT NULL,
  params          TEXT    NOT NULL,
  metrics         TEXT    NOT NULL,
  library_version TEXT    NOT NULL,
  run_dir         TEXT    NOT NULL,
  source          TEXT    NOT NULL,
  note            TEXT    NOT NULL,
  PRIMARY KEY (name, version),
  UNIQUE (name, hash)
);
CREATE TABLE aliases (
  name    TEXT    NOT NULL,
  alias   TEXT    NOT NULL,
  version INTEGER NOT NULL,
  updated TEXT    NOT NULL,
  PRIMARY KEY (name, alias),
  FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  time     TEXT    NOT NULL,
  name     TEXT    NOT NULL,
  action   TEXT    NOT NULL,
  alias    TEXT    NOT NULL,
  version  INTEGER,
  previous INTEGER,
  source   TEXT    NOT NULL
);
CREATE INDEX events_by_alias ON events (name, alias, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the registry event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the registry event log is append-only'); END;
PRAGMA user_version = 1;
)sql";

constexpr const char* version_columns =
    "name, version, hash, created, bytes, parent, data, spec, params, metrics, library_version, "
    "run_dir, source, note";

using kiln::internal::utc_now;

using kiln::internal::to_hex;

bool is_hash(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The hash a stored model file is named by: its content hash (format v2), or for a version 1
// file (which has none) the SHA-256 of the whole file. FormatError naming `source`.
std::string object_hash(std::span<const std::uint8_t> bytes, const std::string& source) {
  std::string h = model_content_hash(bytes, source);
  if (h.empty()) h = to_hex(internal::sha256(bytes));
  return h;
}

// Model names and aliases: a letter or digit, then letters, digits, '.', '_' or '-'.
void check_name(const std::string& s, const char* what) {
  const auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  };
  const bool ok = !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), ok_char) &&
                  s[0] != '.' && s[0] != '-' && s[0] != '_';
  if (!ok)
    throw ValueError(std::string("bad ") + what + " '" + s +
                     "': use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter "
                     "or digit");
}

struct Reference {
  std::string name;
  std::optional<std::int64_t> version;
  std::string alias;
};

Reference parse_reference(const std::string& ref) {
  Reference r;
  const auto at = ref.find('@');
  const auto colon = ref.find(':');
  if (at != std::string::npos && colon != std::string::npos)
    throw ValueError("bad model reference '" + ref +
                     "': use NAME, NAME:VERSION or NAME@ALIAS, not both ':' and '@'");
  if (at != std::string::npos) {
    r.name = ref.substr(0, at);
    r.alias = ref.substr(at + 1);
    check_name(r.name, "model name");
    check_name(r.alias, "alias");
  } else if (colon != std::string::npos) {
    r.name = ref.substr(0, colon);
    check_name(r.name, "model name");
    const std::string v = ref.substr(colon + 1);
    std::int64_t n = 0;
    const bool digits = !v.empty() && v.size() <= 18 && std::all_of(v.begin(), v.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (digits) n = std::stoll(v);
    if (!digits || n <= 0)
      throw ValueError("bad model reference '" + ref +
                       "': the version after ':' is a number 1, 2, ...");
    r.version = n;
  } else {
    r.name = ref;
    check_name(r.name, "model name");
  }
  return r;
}

Json pairs_json(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Json j = Json::array();
  for (const auto& [k, v] : pairs) j.push_back(Json::array({k, v}));
  return j;
}

Json metrics_json(const std::vector<std::pair<std::string, double>>& metrics) {
  Json j = Json::array();
  for (const auto& [k, v] : metrics) {
    // JSON has no NaN or infinity: a non-finite metric is stored as null (read back as NaN).
    j.push_back(Json::array({k, std::isfinite(v) ? Json(v) : Json(nullptr)}));
  }
  return j;
}

// The lineage of a hyper-parameter list: the spec's "training" object, flattened to dotted
// keys ("optimizer.lr" = "0.003"); strings unquoted, other values as JSON.
void flatten(const Json& j, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else if (j.is_string()) {
    out.emplace_back(prefix, j.get<std::string>());
  } else {
    out.emplace_back(prefix, j.dump());
  }
}

std::string join_data(const std::vector<std::pair<std::string, std::string>>& data) {
  std::string s;
  for (const auto& [path, sha] : data) {
    if (!s.empty()) s += ", ";
    s += path + " (" + sha + ")";
  }
  return s;
}

}  // namespace

struct Registry::Impl {
  Impl(std::string d, const std::string& db_path)
      : dir(std::move(d)), db(db_path, busy_timeout_ms) {}

  std::string dir;
  SqliteDb db;
  mutable std::mutex mutex;  // one connection: statements of one thread at a time

  std::string object_path(const std::string& hash) const {
    return dir + "/objects/" + hash.substr(0, 2) + "/" + hash + ".kiln";
  }

  [[noreturn]] void corrupt(const std::string& what) const {
    throw FormatError(db.path() + ": " + what + " (a corrupt registry database)");
  }

  std::vector<std::pair<std::string, std::string>> read_pairs(const std::string& text,
                                                              const char* column) const {
    std::vector<std::pair<std::string, std::string>> out;
    const Json j = Json::parse(text, nullptr, false);
    if (!j.is_array()) corrupt(std::string("bad '") + column + "' value");
    for (const Json& p : j) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string())
        corrupt(std::string("bad '") + column + "' value");
      out.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
    }
    return out;
  }

  std::vector<std::pair<std::string, double>> read_metrics(const std::string& text) const {
    std::vector<std::pair<std::string, double>> out;
    const Json j = Json::parse(text, nullptr, false);
    if (!j.is_array()) corrupt("bad 'metrics' value");
    for (const Json& p : j) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_string() ||
          !(p[1].is_number() || p[1].is_null()))
        corrupt("bad 'metrics' value");
      out.emplace_back(p[0].get<std::string>(), p[1].is_null()
                                                    ? std::numeric_limits<double>::quiet_NaN()
                                                    : p[1].get<double>());
    }
    return out;
  }

  // A row selected with version_columns.
  Version read_version(const SqliteStatement& s) const {
    Version v;
    v.name = s.text(0);
    v.version = s.integer(1);
    v.hash = s.text(2);
    if (!is_hash(v.hash))
      corrupt("version " + v.name + ":" + std::to_string(v.version) + " has a malformed hash '" +
              v.hash + "'");
    v.created = s.text(3);
    v.bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.integer(4)));
    v.path = object_path(v.hash);
    v.lineage.parent = s.optional_integer(5);
    v.lineage.data = read_pairs(s.text(6), "data");
    v.lineage.spec = s.text(7);
    v.lineage.params = read_pairs(s.text(8), "params");
    v.lineage.metrics = read_metrics(s.text(9));
    v.lineage.library_version = s.text(10);
    v.lineage.run_dir = s.text(11);
    v.lineage.source = s.text(12);
    v.lineage.note = s.text(13);
    v.registered = false;
    return v;
  }

  void fill_aliases(std::vector<Version>& versions) {
    if (versions.empty()) return;
    SqliteStatement s(db, "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias");
    s.bind(1, versions.front().name);
    while (s.step()) {
      const std::int64_t target = s.integer(1);
      for (Version& v : versions)
        if (v.version == target) v.aliases.push_back(s.text(0));
    }
  }

  std::optional<Version> find_version(const std::string& name, std::int64_t version) {
    SqliteStatement s(db, std::string("SELECT ") + version_columns +
                              " FROM versions WHERE name = ? AND version = ?");
    s.bind(1, name).bind(2, version);
    if (!s.step()) return std::nullopt;
    std::vector<Version> one{read_version(s)};
    fill_aliases(one);
    return std::move(one.front());
  }

  std::vector<std::string> model_names() {
    std::vector<std::string> names;
    SqliteStatement s(db, "SELECT DISTINCT name FROM versions ORDER BY name");
    while (s.step()) names.push_back(s.text(0));
    return names;
  }

  std::int64_t latest(const std::string& name) {
    SqliteStatement s(db, "SELECT max(version) FROM versions WHERE name = ?");
    s.bind(1, name);
    s.step();
    return s.is_null(0) ? 0 : s.integer(0);
  }

  [[noreturn]] void unknown_model(const std::string& name) {
    const std::vector<std::string> names = model_names();
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    throw NameError("no model named '" + name + "' in the registry " + dir +
                    (known.empty() ? " (it is empty)" : " (models: " + known + ")"));
  }

  // The highest version of `name`; NameError when there is none.
  std::int64_t require_model(const std::string& name) {
    const std::int64_t n = latest(name);
    if (n == 0) unknown_model(name);
    return n;
  }

  Version require_version(const std::string& name, std::int64_t version) {
    const std::int64_t n = require_model(name);
    std::optional<Version> v = find_version(name, version);
    if (!v)
      throw NameError("model '" + name + "' has no version " + std::to_string(version) +
                      " (its versions are 1 to " + std::to_string(n) + ")");
    return std::move(*v);
  }

  std::optional<std::int64_t> alias_target(const std::string& name, const std::string& alias) {
    SqliteStatement s(db, "SELECT version FROM aliases WHERE name = ? AND alias = ?");
    s.bind(1, name).bind(2, alias);
    if (!s.step()) return std::nullopt;
    return s.integer(0);
  }

  [[noreturn]] void unknown_alias(const std::string& name, const std::string& alias) {
    std::string known;
    SqliteStatement s(db, "SELECT alias FROM aliases WHERE name = ? ORDER BY alias");
    s.bind(1, name);
    while (s.step()) known += (known.empty() ? "" : ", ") + s.text(0);
    throw NameError("model '" + name + "' has no alias '" + alias + "'" +
                    (known.empty() ? " (it has none)" : " (its aliases: " + known + ")"));
  }

  Version resolve(const std::string& reference) {
    const Reference r = parse_reference(reference);
    const std::int64_t newest = require_model(r.name);
    if (r.version) return require_version(r.name, *r.version);
    if (!r.alias.empty()) {
      const std::optional<std::int64_t> target = alias_target(r.name, r.alias);
      if (!target) unknown_alias(r.name, r.alias);
      std::optional<Version> v = find_version(r.name, *target);
      if (!v) corrupt("alias " + reference + " names a missing version");
      return std::move(*v);
    }
    return require_version(r.name, newest);
  }

  void log_event(const std::string& name, const char* action, const std::string& alias,
                 std::optional<std::int64_t> version, std::optional<std::int64_t> previous,
                 const std::string& source) {
    SqliteStatement s(db,
                      "INSERT INTO events (time, name, action, alias, version, previous, source) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, utc_now()).bind(2, name).bind(3, action).bind(4, alias).bind(5, version);
    s.bind(6, previous).bind(7, source).run();
  }

  // The bytes of a version's stored file after checking that their hash is its name.
  std::vector<std::uint8_t> verified_bytes(const Version& v, const std::string& reference) const {
    std::vector<std::uint8_t> bytes = internal::read_file(v.path);
    std::string actual;
    try {
      actual = object_hash(bytes, v.path);
    } catch (const FormatError& e) {
      throw FormatError(std::string(e.what()) + " (the stored file of " + reference +
                        " is damaged or was tampered with)");
    }
    if (actual != v.hash)
      throw FormatError(v.path + ": content hash " + actual + " does not match the hash " + v.hash +
                        " registered for " + reference + " (the file was tampered with)");
    return bytes;
  }

  // Creates the tables of a new database, or migrates an older schema (none yet).
  void prepare_schema() {
    auto user_version = [&] {
      SqliteStatement s(db, "PRAGMA user_version");
      s.step();
      return s.integer(0);
    };
    std::int64_t found = user_version();
    if (found == 0) {
      SqliteWriteTransaction tx(db);
      found = user_version();  // another process may have created it meanwhile
      if (found == 0) {
        SqliteStatement tables(db, "SELECT count(*) FROM sqlite_master");
        tables.step();
        if (tables.integer(0) != 0)
          throw FormatError(db.path() +
                            ": an SQLite database that is not a Kiln model registry (it has "
                            "tables but no registry schema version)");
        db.exec(schema_sql);
        found = schema_version;
      }
      tx.commit();
    }
    if (found > schema_version)
      throw FormatError(db.path() + ": registry schema version " + std::to_string(found) +
                        " was written by a newer Kiln (this one reads up to version " +
                        std::to_string(schema_version) + ")");
    if (found < 0) corrupt("negative schema version " + std::to_string(found));
    SqliteStatement check(db,
                          "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                          "('versions', 'aliases', 'events')");
    check.step();
    if (check.integer(0) != 3) corrupt("the versions, aliases or events table is missing");
  }
};

Registry::Registry(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

const std::string& Registry::dir() const { return impl_->dir; }

Registry open(const std::string& folder) {
  if (folder.empty()) throw ValueError("registry folder: the path is empty");
  std::string dir = folder;  // "models/" -> "models" (file paths read models/objects/...)
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::error_code ec;
  fs::create_directories(dir + "/objects", ec);
  if (ec) throw IoError(dir + ": cannot create the registry folder: " + ec.message());
  auto impl = std::make_unique<Registry::Impl>(dir, dir + "/registry.db");
  SqliteDb& db = impl->db;
  // Processes opening a new registry at the same moment: while one switches the new file to
  // WAL, SQLite answers the others' statements SQLITE_BUSY at once, without its busy
  // handler (seen in about 1 of 70 simultaneous first opens). Each setup step is retried,
  // as the busy handler would wait, until the busy timeout.
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  auto retrying = [&](auto&& step) {
    for (int attempt = 0;; ++attempt) {
      try {
        return step();
      } catch (const SqliteBusyError&) {
        if (std::chrono::steady_clock::now() >= give_up) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(1 + std::min(attempt, 50)));
      }
    }
  };
  retrying([&] {
    SqliteStatement wal(db, "PRAGMA journal_mode = WAL");
    wal.step();
    if (wal.text(0) != "wal")
      throw IoError(db.path() +
                    ": the registry needs SQLite's WAL journal, which this file "
                    "system refuses (journal mode '" +
                    wal.text(0) + "')");
  });
  retrying([&] {
    db.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
    impl->prepare_schema();
  });
  return Registry(std::move(impl));
}

Version Registry::register_model(const std::string& name, const std::string& model_path,
                                 Lineage lineage) {
  check_name(name, "model name");
  const std::vector<std::uint8_t> bytes = internal::read_file(model_path);
  const infer::Model model = infer::Model::load(bytes, model_path);  // it must load
  std::string hash = model.content_hash();
  if (hash.empty()) hash = to_hex(internal::sha256(bytes));

  // Lineage fields the caller left empty come from the file.
  if (lineage.metrics.empty()) lineage.metrics = model.metadata().metrics;
  if (lineage.library_version.empty()) lineage.library_version = model.metadata().library_version;
  if (lineage.spec.empty() && model.has_section("kiln.spec")) {
    const auto s = model.section("kiln.spec");
    lineage.spec.assign(s.begin(), s.end());
  }
  if (lineage.params.empty() && !lineage.spec.empty()) {
    const Json spec = Json::parse(lineage.spec, nullptr, false);
    if (spec.is_object() && spec.contains("training"))
      flatten(spec["training"], "", lineage.params);
  }
  for (auto& [path, sha] : lineage.data)
    if (sha.empty()) sha = internal::sha256_file_hex(path);
  if (lineage.source.empty()) lineage.source = "user";

  std::lock_guard lock(impl_->mutex);
  SqliteDb& db = impl_->db;

  // The file goes in first (atomically: temp file, fsync, rename, fsync of the folder), so a
  // committed row never names a missing or partial file. A crash between the two leaves an
  // unreferenced object, which the next registration of the same model reuses.
  const std::string object = impl_->object_path(hash);
  const std::string folder = impl_->dir + "/objects/" + hash.substr(0, 2);
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw IoError(folder + ": cannot create the object folder: " + ec.message());
  // Temp files of writers killed mid-write in this folder go first (write_file_atomically
  // only removes those of its own target, and every object has a target of its own).
  internal::remove_stale_temp_files(folder, [](std::string_view) { return true; });
  bool present = false;
  if (fs::exists(object, ec)) {
    try {
      present = object_hash(internal::read_file(object), object) == hash;
    } catch (const Error&) {
      present = false;  // damaged: written again below
    }
  }
  if (!present) internal::write_file_atomically(object, bytes);
  // The stored file's size (a reused file may differ from this one in its provenance bytes).
  const std::uint64_t stored_bytes = present ? fs::file_size(object, ec) : bytes.size();

  SqliteWriteTransaction tx(db);
  {
    SqliteStatement s(db, "SELECT version FROM versions WHERE name = ? AND hash = ?");
    s.bind(1, name).bind(2, hash);
    if (s.step()) {
      const std::int64_t existing = s.integer(0);
      Version v = *impl_->find_version(name, existing);
      tx.commit();
      return v;  // registered = false: this model already has it
    }
  }
  const std::int64_t version = impl_->latest(name) + 1;
  if (lineage.parent && !impl_->find_version(name, *lineage.parent))
    throw NameError("the parent version " + std::to_string(*lineage.parent) + " of model '" + name +
                    "' does not exist" +
                    (version > 1 ? " (its versions are 1 to " + std::to_string(version - 1) + ")"
                                 : " (it has no versions yet)"));
  const std::string created = utc_now();
  {
    SqliteStatement s(db, std::string("INSERT INTO versions (") + version_columns +
                              ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, name).bind(2, version).bind(3, hash).bind(4, created);
    s.bind(5, static_cast<std::int64_t>(stored_bytes)).bind(6, lineage.parent);
    s.bind(7, pairs_json(lineage.data).dump()).bind(8, lineage.spec);
    s.bind(9, pairs_json(lineage.params).dump()).bind(10, metrics_json(lineage.metrics).dump());
    s.bind(11, lineage.library_version).bind(12, lineage.run_dir).bind(13, lineage.source);
    s.bind(14, lineage.note).run();
  }
  impl_->log_event(name, "register", "", version, std::nullopt, lineage.source);
  tx.commit();

  Version v;
  v.name = name;
  v.version = version;
  v.hash = hash;
  v.created = created;
  v.path = object;
  v.bytes = stored_bytes;
  v.lineage = std::move(lineage);
  v.registered = true;
  return v;
}

void Registry::set_alias(const std::string& name, const std::string& alias, std::int64_t version,
                         const std::string& source) {
  check_name(name, "model name");
  check_name(alias, "alias");
  std::lock_guard lock(impl_->mutex);
  SqliteDb& db = impl_->db;
  SqliteWriteTransaction tx(db);
  impl_->require_version(name, version);
  const std::optional<std::int64_t> previous = impl_->alias_target(name, alias);
  if (previous == version) return;  // already there: nothing moves, nothing is logged
  SqliteStatement s(db,
                    "INSERT INTO aliases (name, alias, version, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, "
                    "updated = excluded.updated");
  s.bind(1, name).bind(2, alias).bind(3, version).bind(4, utc_now()).run();
  impl_->log_event(name, "alias_set", alias, version, previous, source);
  tx.commit();
}

void Registry::remove_alias(const std::string& name, const std::string& alias,
                            const std::string& source) {
  check_name(name, "model name");
  check_name(alias, "alias");
  std::lock_guard lock(impl_->mutex);
  SqliteDb& db = impl_->db;
  SqliteWriteTransaction tx(db);
  impl_->require_model(name);
  const std::optional<std::int64_t> previous = impl_->alias_target(name, alias);
  if (!previous) impl_->unknown_alias(name, alias);
  SqliteStatement s(db, "DELETE FROM aliases WHERE name = ? AND alias = ?");
  s.bind(1, name).bind(2, alias).run();
  impl_->log_event(name, "alias_removed", alias, std::nullopt, previous, source);
  tx.commit();
}

std::int64_t Registry::rollback(const std::string& name, const std::string& alias,
                                const std::string& source) {
  check_name(name, "model name");
  check_name(alias, "alias");
  std::lock_guard lock(impl_->mutex);
  SqliteDb& db = impl_->db;
  SqliteWriteTransaction tx(db);
  impl_->require_model(name);
  const std::optional<std::int64_t> current = impl_->alias_target(name, alias);
  if (!current) impl_->unknown_alias(name, alias);
  // The alias's history from the log: each move pushes its target, each rollback pops one,
  // a removal ends the history (setting the alias again starts a new one).
  std::vector<std::int64_t> history;
  {
    SqliteStatement s(
        db, "SELECT action, version FROM events WHERE name = ? AND alias = ? ORDER BY id");
    s.bind(1, name).bind(2, alias);
    while (s.step()) {
      const std::string action = s.text(0);
      if (action == "alias_set" || action == "rollback") {
        if (s.is_null(1)) impl_->corrupt("event without a version for alias " + name + "@" + alias);
        if (action == "alias_set") {
          history.push_back(s.integer(1));
        } else if (!history.empty()) {
          history.pop_back();
        }
      } else if (action == "alias_removed") {
        history.clear();
      }
    }
  }
  if (history.size() < 2)
    throw ValueError("cannot roll back " + name + "@" + alias + ": it points at version " +
                     std::to_string(*current) +
                     " and has no earlier target to go back to since it was set");
  history.pop_back();
  const std::int64_t target = history.back();
  impl_->require_version(name, target);
  SqliteStatement s(db, "UPDATE aliases SET version = ?, updated = ? WHERE name = ? AND alias = ?");
  s.bind(1, target).bind(2, utc_now()).bind(3, name).bind(4, alias).run();
  impl_->log_event(name, "rollback", alias, target, current, source);
  tx.commit();
  return target;
}

std::vector<std::string> Registry::models() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->model_names();
}

std::vector<Version> Registry::versions(const std::string& name) const {
  check_name(name, "model name");
  std::lock_guard lock(impl_->mutex);
  SqliteReadTransaction tx(impl_->db);
  std::vector<Version> out;
  SqliteStatement s(impl_->db, std::string("SELECT ") + version_columns +
                                   " FROM versions WHERE name = ? ORDER BY version");
  s.bind(1, name);
  while (s.step()) out.push_back(impl_->read_version(s));
  if (out.empty()) impl_->unknown_model(name);
  impl_->fill_aliases(out);
  return out;
}

Version Registry::resolve(const std::string& reference) const {
  std::lock_guard lock(impl_->mutex);
  SqliteReadTransaction tx(impl_->db);
  return impl_->resolve(reference);
}

std::vector<Event> Registry::events(const std::string& name) const {
  if (!name.empty()) check_name(name, "model name");
  std::lock_guard lock(impl_->mutex);
  SqliteReadTransaction tx(impl_->db);
  if (!name.empty()) impl_->require_model(name);
  SqliteStatement s(impl_->db, name.empty()
                                   ? "SELECT id, time, name, action, alias, version, previous, "
                                     "source FROM events ORDER BY id"
                                   : "SELECT id, time, name, action, alias, version, previous, "
                                     "source FROM events WHERE name = ? ORDER BY id");
  if (!name.empty()) s.bind(1, name);
  std::vector<Event> out;
  while (s.step()) {
    Event e;
    e.id = s.integer(0);
    e.time = s.text(1);
    e.name = s.text(2);
    e.action = s.text(3);
    e.alias = s.text(4);
    e.version = s.optional_integer(5);
    e.previous = s.optional_integer(6);
    e.source = s.text(7);
    out.push_back(std::move(e));
  }
  return out;
}

VersionDiff Registry::diff(const std::string& a, const std::string& b) const {
  VersionDiff d;
  {
    std::lock_guard lock(impl_->mutex);
    SqliteReadTransaction tx(impl_->db);
    d.a = impl_->resolve(a);
    d.b = impl_->resolve(b);
  }
  const Lineage& la = d.a.lineage;
  const Lineage& lb = d.b.lineage;
  auto field = [&](const std::string& key, const std::string& x, const std::string& y) {
    if (x != y) d.fields.emplace_back(key, x, y);
  };
  auto opt = [](const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : ""; };
  field("name", d.a.name, d.b.name);
  field("hash", d.a.hash, d.b.hash);
  field("bytes", std::to_string(d.a.bytes), std::to_string(d.b.bytes));
  field("parent", opt(la.parent), opt(lb.parent));
  field("data", join_data(la.data), join_data(lb.data));
  field("spec", la.spec, lb.spec);
  // Hyper-parameters one by one, in a's order then b's extra ones.
  std::vector<std::string> keys;
  for (const auto& [k, v] : la.params) keys.push_back(k);
  for (const auto& [k, v] : lb.params)
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  auto lookup = [](const auto& pairs, const std::string& k) {
    for (const auto& [key, value] : pairs)
      if (key == k) return std::optional(value);
    return std::optional<std::decay_t<decltype(pairs.front().second)>>{};
  };
  for (const std::string& k : keys)
    field("params." + k, lookup(la.params, k).value_or(""), lookup(lb.params, k).value_or(""));
  field("library_version", la.library_version, lb.library_version);
  field("run_dir", la.run_dir, lb.run_dir);
  field("source", la.source, lb.source);
  field("note", la.note, lb.note);
  // Metrics either has; one the other lacks is NaN on its side.
  std::vector<std::string> names;
  for (const auto& [k, v] : la.metrics) names.push_back(k);
  for (const auto& [k, v] : lb.metrics)
    if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const std::string& k : names) {
    const double x = lookup(la.metrics, k).value_or(nan);
    const double y = lookup(lb.metrics, k).value_or(nan);
    if (x != y && !(std::isnan(x) && std::isnan(y))) d.metrics.emplace_back(k, x, y);
  }
  return d;
}

std::string Registry::verified_path(const std::string& reference) const {
  const Version v = resolve(reference);
  impl_->verified_bytes(v, reference);
  return v.path;
}

infer::Model Registry::load(const std::string& reference, infer::LoadOptions options) const {
  const Version v = resolve(reference);
  // The bytes checked are the bytes loaded (no window for the file to change in between).
  const std::vector<std::uint8_t> bytes = impl_->verified_bytes(v, reference);
  return infer::Model::load(bytes, v.path, std::move(options));
}

std::vector<std::string> Registry::verify() const {
  std::vector<std::string> problems;
  std::vector<Version> all;
  {
    std::lock_guard lock(impl_->mutex);
    SqliteDb& db = impl_->db;
    SqliteReadTransaction tx(db);
    {
      SqliteStatement s(db, "PRAGMA quick_check");
      while (s.step())
        if (s.text(0) != "ok") problems.push_back(db.path() + ": " + s.text(0));
    }
    {
      SqliteStatement s(db,
                        "SELECT a.name, a.alias, a.version FROM aliases a LEFT JOIN versions v "
                        "ON v.name = a.name AND v.version = a.version WHERE v.name IS NULL");
      while (s.step())
        problems.push_back(db.path() + ": alias " + s.text(0) + "@" + s.text(1) +
                           " points at the missing version " + std::to_string(s.integer(2)));
    }
    {
      SqliteStatement s(
          db, std::string("SELECT ") + version_columns + " FROM versions ORDER BY name, version");
      while (s.step()) all.push_back(impl_->read_version(s));
    }
  }
  std::string name;
  std::int64_t expected = 0;
  for (const Version& v : all) {
    if (v.name != name) {
      name = v.name;
      expected = 1;
    }
    const std::string ref = v.name + ":" + std::to_string(v.version);
    if (v.version != expected)
      problems.push_back(impl_->db.path() + ": model '" + v.name + "' has version " +
                         std::to_string(v.version) + " where version " + std::to_string(expected) +
                         " was expected (a gap)");
    expected = v.version + 1;
    try {
      impl_->verified_bytes(v, ref);
    } catch (const Error& e) {
      problems.push_back(ref + ": " + e.what());
    }
  }
  return problems;
}

#else  // !KILN_WITH_SQLITE

namespace {
[[noreturn]] void unavailable() {
  throw Error(
      "the model registry is unavailable: Kiln was built without SQLite (install libsqlite3-dev "
      "and rebuild)");
}
}  // namespace

struct Registry::Impl {
  std::string dir;
};

Registry::Registry(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;
const std::string& Registry::dir() const { return impl_->dir; }
Registry open(const std::string&) { unavailable(); }
Version Registry::register_model(const std::string&, const std::string&, Lineage) { unavailable(); }
void Registry::set_alias(const std::string&, const std::string&, std::int64_t, const std::string&) {
  unavailable();
}
void Registry::remove_alias(const std::string&, const std::string&, const std::string&) {
  unavailable();
}
std::int64_t Registry::rollback(const std::string&, const std::string&, const std::string&) {
  unavailable();
}
std::vector<std::string> Registry::models() const { unavailable(); }
std::vector<Version> Registry::versions(const std::string&) const { unavailable(); }
Version Registry::resolve(const std::string&) const { unavailable(); }
std::vector<Event> Registry::events(const std::string&) const { unavailable(); }
VersionDiff Registry::diff(const std::string&, const std::string&) const { unavailable(); }
std::string Registry::verified_path(const std::string&) const { unavailable(); }
infer::Model Registry::load(const std::string&, infer::LoadOptions) const { unavailable(); }
std::vector<std::string> Registry::verify() const { unavailable(); }

#endif  // KILN_WITH_SQLITE

}  // namespace kiln::registry
