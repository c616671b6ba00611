// The model registry: versions of named models with their lineage and aliases, in a folder
// that many processes may read and write at once.
//
//   auto reg = kiln::registry::open("models");                  // created if missing
//   kiln::registry::Version v = reg.register_model("digits", "digits.kiln",
//                                                  {.run_dir = "runs/digits-..."});
//   reg.set_alias("digits", "production", v.version);            // promote
//   kiln::infer::Model m = reg.load("digits@production");        // hash-checked
//   reg.rollback("digits", "production");                         // to the previous target
//
// Layout (docs/mlops.md): DIR/registry.db is a SQLite database (WAL journal, transactions,
// busy timeout: concurrent readers and writers, crash safety) indexing versions, aliases and
// an append-only event log; DIR/objects/<first 2 hex>/<content hash>.kiln holds each model
// file once, named by its content hash (kiln::model_content_hash), written atomically before
// the index row that names it is committed. A file whose hash no longer matches its name is
// refused on load (FormatError naming the file): tampering is detected.
//
// References: "digits" (the newest version), "digits:3" (version 3), "digits@production"
// (an alias). Versions are numbered 1, 2, ... per model name. Registering a file whose
// content hash the model already has returns that version (registered = false) instead of
// adding a second one: re-running a pipeline never registers twice.
//
// A Registry may be shared between threads; processes each open their own. Errors:
// NameError naming an unknown model, version or alias (and listing what there is),
// ValueError for a malformed name or reference, IoError naming a file that cannot be read
// or written (or a lock held by another process for over 60 s), FormatError naming a
// corrupt database, a registry written by a newer Kiln, or a stored file that fails its
// hash check. A Kiln built without SQLite (KILN_WITH_SQLITE off: some cross builds) has no
// registry: open() throws kiln::Error saying so.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/infer/model.hpp"

namespace kiln::registry {

/// Where a version came from. Fields taken from the model file when left empty: the
/// metrics (ModelMetadata::metrics), the spec ("kiln.spec"), the hyper-parameters (the
/// spec's "training" object flattened: "optimizer.lr" = "0.003"), the library version;
/// the source defaults to "user".
struct Lineage {
  std::optional<std::int64_t> parent = {};  ///< the version it was warm-started from / replaces
  /// Data files it was trained on: path and SHA-256 (hashed on register when empty).
  std::vector<std::pair<std::string, std::string>> data = {};
  std::string spec = {};                                         ///< JSON
  std::vector<std::pair<std::string, std::string>> params = {};  ///< hyper-parameters
  std::vector<std::pair<std::string, double>> metrics = {};
  std::string library_version = {};
  std::string run_dir = {};  ///< the run folder (kiln train --run-dir)
  std::string source = {};   ///< who registered it ("kiln ct digits.json", "user")
  std::string note = {};
};

struct Version {
  std::string name;
  std::int64_t version = 0;
  std::string hash;     ///< content hash
  std::string created;  ///< registration time, UTC ISO 8601
  std::string path;     ///< the stored model file
  std::uint64_t bytes = 0;
  std::vector<std::string> aliases;  ///< aliases pointing at it now
  Lineage lineage;
  bool registered = true;  ///< register_model: false when the hash was already there
};

/// One entry of the append-only log: register, alias set, alias removed, rollback.
struct Event {
  std::int64_t id = 0;
  std::string time, name, action, alias;
  std::optional<std::int64_t> version, previous;
  std::string source;
};

/// What differs between two versions: lineage fields and metrics (name, a, b).
struct VersionDiff {
  Version a, b;
  std::vector<std::tuple<std::string, std::string, std::string>> fields;
  std::vector<std::tuple<std::string, double, double>> metrics;
};

class KILN_API Registry {
 public:
  ~Registry();
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;

  const std::string& dir() const;
  /// Copies a model file in (checked: it must load) and adds a version in one transaction;
  /// the returned Version has registered = false when the model already had the file's
  /// content hash (nothing is added then). NameError for a parent version that does not
  /// exist; IoError naming a data file that cannot be hashed.
  Version register_model(const std::string& name, const std::string& model_path,
                         Lineage lineage = {});
  /// Points `alias` ("production", "staging", ...) of `name` at `version`, logging the
  /// previous target. NameError for an unknown name or version.
  void set_alias(const std::string& name, const std::string& alias, std::int64_t version,
                 const std::string& source = "user");
  /// Removes an alias (NameError when it is not set), logging where it pointed.
  void remove_alias(const std::string& name, const std::string& alias,
                    const std::string& source = "user");
  /// Moves `alias` back to the version it pointed at before its last move; returns it.
  /// The history is read from the event log: each move pushes, each rollback pops, a
  /// removal clears it. ValueError when there is nothing to roll back to.
  std::int64_t rollback(const std::string& name, const std::string& alias,
                        const std::string& source = "user");

  /// Model names, sorted.
  std::vector<std::string> models() const;
  /// Versions of a model, oldest first; NameError for an unknown model.
  std::vector<Version> versions(const std::string& name) const;
  /// The version a reference names ("digits", "digits:3", "digits@production");
  /// NameError naming the reference when there is none.
  Version resolve(const std::string& reference) const;
  /// The event log (of one model, or of all), oldest first.
  std::vector<Event> events(const std::string& name = {}) const;
  /// Lineage fields (hash, bytes, parent, data, spec, params.<key>, library_version,
  /// run_dir, source, note) and metrics that differ between two references.
  VersionDiff diff(const std::string& a, const std::string& b) const;

  /// The stored file of a reference after checking its content hash (FormatError naming the
  /// file on a mismatch).
  std::string verified_path(const std::string& reference) const;
  /// Loads a reference through verified_path.
  infer::Model load(const std::string& reference, infer::LoadOptions options = {}) const;
  /// Checks the database (SQLite's quick_check, aliases naming existing versions, versions
  /// numbered without gaps) and every version's file against its hash; returns one message
  /// per problem (empty: consistent).
  std::vector<std::string> verify() const;

 private:
  friend KILN_API Registry open(const std::string& dir);
  struct Impl;
  explicit Registry(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Opens (creating when missing) the registry in `dir`; IoError naming it when it cannot.
KILN_API Registry open(const std::string& dir);

}  // namespace kiln::registry
