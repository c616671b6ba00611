// kiln::serve::ModelServer — the model server behind `kiln serve`, without the transport:
// it loads models from files or registry references, answers requests given as (method,
// path, body) with JSON, runs rows that arrive together as one batch, watches every row with
// the drift monitor, and swaps in the version a registry alias points at without dropping a
// request. `kiln serve` puts it behind HTTP (cpp-httplib); an application can put it behind
// its own HTTP or RPC stack the same way. docs/serving.md is the full contract (routes,
// JSON, status codes, metrics).
//
//   kiln::serve::ServerOptions o;
//   o.registry_dir = "registry";
//   o.models = {{.name = "digits", .reference = "digits@production"}};
//   kiln::serve::ModelServer server(o);                  // loads; throws kiln::Error
//   kiln::serve::Response r = server.handle("POST", "/v1/models/digits:predict",
//                                           R"({"instances": [[0, 0, 5, ...]]})");
//   // r.status == 200, r.body == {"model":"digits","version":"3",...}
//   server.shutdown();                                   // finishes what is queued
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/monitor/monitor.hpp"

namespace kiln::serve {

/// One served model.
struct ModelSource {
  /// The name in URLs (/v1/models/<name>); empty: the registry model's name, or the file's
  /// stem. Letters, digits, '-', '_' and '.' only.
  std::string name = {};
  /// A model file path, or (with ServerOptions::registry_dir) a registry reference:
  /// "digits" (latest), "digits:3" (pinned) or "digits@production" (follows the alias).
  std::string reference = {};
};

struct BatchingOptions {
  /// Off: every request runs alone, as it arrives (one-by-one).
  bool enabled = true;
  /// Rows per run at most; a request with more rows runs alone.
  std::int64_t max_batch_size = 32;
  /// How long the first request of a batch may wait for others to join it. 0 (the default)
  /// never waits: a batch is what queued while the worker was busy, which on the measured
  /// small models never cost latency and raised throughput (docs/serving.md, Performance);
  /// a delay pays only when batches fill and a run costs much more than a request.
  std::chrono::microseconds max_delay{0};
};

struct ServerOptions {
  std::vector<ModelSource> models;
  /// The registry references are resolved in ("" when every model is a file).
  std::string registry_dir = {};
  BatchingOptions batching = {};
  /// Threads that run batches (per server; each runs one batch at a time).
  std::int64_t workers = 1;
  /// Requests waiting (queued, not yet running) across all models at most; one more is
  /// answered 503 at once.
  std::size_t max_queue = 256;
  /// Rows in one request at most (413 beyond).
  std::int64_t max_rows = 1024;
  /// Request bodies larger than this are refused (413) before they are parsed.
  std::size_t max_body_bytes = std::size_t{8} << 20;
  /// JSON nested deeper than this is refused (400) while parsing, before it is built.
  std::int64_t max_json_depth = 32;
  /// A request not answered after this long (queued + run) gets 504; its rows are dropped
  /// if they have not started running.
  std::chrono::milliseconds request_timeout{10000};
  /// How often registry aliases are checked for a move (0: never; reload_now() still works).
  std::chrono::milliseconds reload_interval{1000};
  /// Where drift snapshots are written ("" : none): DIR/<name>-v<version>.json and the same
  /// counts as DIR/<name>.json (a name for the CT trigger), rewritten atomically every
  /// snapshot_interval, at a switch (the replaced version's) and at shutdown (for
  /// `kiln drift` and the CT trigger; docs/serving.md "Monitoring while serving").
  std::string snapshot_dir = {};
  std::chrono::milliseconds snapshot_interval{60000};
  /// The drift monitor of every served version (inputs are raw: the server applies the
  /// model's recorded preprocessing). sample_every defaults to 1 here: every row is seen.
  monitor::MonitorOptions monitor = {.sample_every = 1};
  /// Predictions remembered (per model) so that labels posted later by id can be matched.
  std::size_t feedback_capacity = 100000;
};

/// Whether `name` can name a served model in URLs: not empty, letters, digits, '-', '_' and
/// '.' only.
KILN_API bool valid_model_name(std::string_view name);

/// An answer: HTTP status, content type and body (JSON, or Prometheus text for /metrics).
struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body = {};
  std::vector<std::pair<std::string, std::string>> headers = {};
};

/// What GET /v1/models lists, per model.
struct ModelStatus {
  std::string name;
  std::string reference;  ///< as configured
  std::string version;    ///< the registry version ("3") or, for a file, "file"
  std::string hash;       ///< content hash of the version serving
  std::string state;      ///< "serving"; "serving (reload refused: ...)" after a bad version
  std::int64_t reloads = 0;
  std::int64_t refused_reloads = 0;
};

class KILN_API ModelServer {
 public:
  /// Loads every model (and opens the registry); throws kiln::Error (IoError, FormatError,
  /// NameError naming the reference) when one cannot be served. Starts the batch workers,
  /// the alias watcher and the snapshot writer.
  explicit ModelServer(ServerOptions options);
  /// shutdown(), then joins every thread.
  ~ModelServer();
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  /// Answers one request; never throws (errors are 4xx/5xx JSON {"error": {"code": ...,
  /// "message": ...}}). Thread-safe: the transport calls it from many threads at once and
  /// it blocks until the answer is ready (at most request_timeout).
  Response handle(std::string_view method, std::string_view path, std::string_view body);

  /// Checks every alias now and reloads the models whose alias moved (what the watcher does
  /// every reload_interval); returns the number of models switched to a new version.
  std::int64_t reload_now();
  /// Models being served, in configuration order.
  std::vector<ModelStatus> models() const;
  /// True while serving (false once shutdown() began): /readyz.
  bool ready() const;
  /// Stops taking requests (503 "shutting down"), runs what is queued, writes the final
  /// snapshots. Idempotent.
  void shutdown();

  const ServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve
