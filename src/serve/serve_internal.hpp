// The model server's parts (kiln/serve/server.hpp), shared by src/serve/*.cpp:
//   RequestError       a 4xx/5xx answer, thrown inside and turned into JSON by handle()
//   LoadedVersion      one loaded, checked, immutable version of a model
//   ServedModel        a name and the version serving now; hot reload; feedback log
//   parse_predict      request JSON -> feeds (codec.cpp); format_predict: outputs -> JSON
//   Metrics            counters and histograms, Prometheus text (metrics.cpp)
//   Batcher            the bounded queue and the workers that run batches (batcher.cpp)
// docs/serving.md is the contract of what they answer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/monitor/monitor.hpp"
#include "kiln/serve/server.hpp"

namespace kiln::serve::detail {

using Clock = std::chrono::steady_clock;

/// An answer other than 200: status, a stable code ("bad_json", "wrong_shape",
/// "unknown_model", "queue_full", "timeout", "too_large", "shutting_down", ...; the table is
/// in docs/serving.md) and a message naming the input, value or limit.
struct RequestError : std::runtime_error {
  RequestError(int http_status, std::string error_code, const std::string& message)
      : std::runtime_error(message), status(http_status), code(std::move(error_code)) {}
  int status;
  std::string code;
};

/// {"error": {"code": CODE, "message": MESSAGE}} with the error's status.
Response error_response(const RequestError& e);

/// One version of a model, loaded with apply_preprocessing (requests carry raw values) and
/// checked; never changes once published (only its monitor accumulates).
struct LoadedVersion {
  infer::Model model;
  std::string version;  ///< registry version number ("3"), or "file"
  std::string hash;     ///< content hash
  std::string path;     ///< the file loaded
  /// The drift monitor of this version (ServerOptions::monitor); null when the file has no
  /// reference profile (then nothing is monitored and /metrics says so).
  std::shared_ptr<monitor::Monitor> monitor;
  Clock::time_point loaded_at;
};

/// Loads `path` and builds its monitor. Throws kiln::Error naming the file.
std::shared_ptr<const LoadedVersion> load_version(const std::string& path, std::string version,
                                                  const ServerOptions& options);

/// Why `candidate` cannot replace `serving` ("" when it can): same input names, dtypes and
/// shapes but the batch dimension, same output names and dtypes, same class labels count.
std::string incompatibility(const LoadedVersion& serving, const LoadedVersion& candidate);

/// A served model: its name, where it comes from, the version serving now (swapped
/// atomically: a request holds the shared_ptr it started with, so a switch drops nothing),
/// and the recent predictions labels can be posted for.
class ServedModel {
 public:
  /// Loads the first version; `registry` (may be null for files) must outlive this.
  ServedModel(ModelSource source, const registry::Registry* registry, const ServerOptions& options);
  const std::string& name() const;
  const ModelSource& source() const;
  std::shared_ptr<const LoadedVersion> current() const;
  /// For an alias or a bare name: resolves the reference again; when it names another
  /// content hash, loads the file through Registry::verified_path (hash checked), checks
  /// incompatibility() against the serving version and switches. Returns true when it
  /// switched. A version that fails to load or is incompatible is refused (the old one keeps
  /// serving; status() says why; refused once per hash, not retried every poll). A registry
  /// that cannot be read is reported the same way (each new message counted once), never
  /// thrown. A version served again (a rollback) continues the monitor of its earlier load.
  /// Files and pinned references ("name:3") never reload.
  bool check_for_update();
  ModelStatus status() const;

  /// Remembers the predictions of a batch of rows (ids returned in the answer, in order):
  /// the predicted class index (classifiers) or value (first element of the first output).
  /// Returns the ids ("<version>-<sequence>").
  std::vector<std::string> remember(const std::shared_ptr<const LoadedVersion>& version,
                                    std::span<const double> predicted);
  /// Labels for remembered ids: each goes to the monitor of the version that predicted it
  /// (observe_labels). Returns how many ids were found; unknown or forgotten ids are
  /// listed in `unknown`.
  std::int64_t feedback(std::span<const std::string> ids, std::span<const double> labels,
                        std::vector<std::string>& unknown);
  /// Writes the current version's snapshot to DIR/<name>-v<version>.json and, the same
  /// report, DIR/<name>.json (a name for the CT trigger), each atomically; also rewrites the
  /// files of replaced versions that got labels since the last call. Nothing for a model
  /// without a profile. Throws IoError naming a file it cannot write.
  void write_snapshot(const std::string& dir) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// A parsed :predict body: feeds (with the batch dimension first) and the number of rows.
struct PredictRequest {
  Feeds feeds;
  std::int64_t rows = 0;
};

/// Parses a :predict body against a model's input signature (docs/serving.md: "inputs" as
/// named nested arrays, or "instances" as rows). Throws RequestError 400 (bad_json,
/// too_deep, missing_input, unknown_input, wrong_shape, wrong_type, not_finite) or 413
/// (too_many_rows) naming the input, row and value.
PredictRequest parse_predict(std::string_view body, const infer::Model& model,
                             const ServerOptions& options);

/// The predicted class index (classifier: the model has labels, argmax of the first output)
/// or value (first element of the first output) of each row.
std::vector<double> predicted_values(const infer::Model& model, const std::vector<Tensor>& outputs);
/// The same for a served version: a classifier also when its monitor's profile says the
/// predictions are classes (ServedModel::remember's rule), so labels posted by :feedback
/// are compared with class indices.
std::vector<double> predicted_values(const LoadedVersion& version,
                                     const std::vector<Tensor>& outputs);

/// The :predict answer for `rows` rows (docs/serving.md).
std::string format_predict(const std::string& name, const LoadedVersion& version,
                           const std::vector<Tensor>& outputs, const std::vector<std::string>& ids);

/// Parses a :feedback body {"ids": [...], "labels": [...]} (labels: class names, class
/// indices or numbers). Throws RequestError 400 naming the element.
struct FeedbackRequest {
  std::vector<std::string> ids;
  std::vector<double> labels;
};
FeedbackRequest parse_feedback(std::string_view body, const infer::Model& model,
                               const ServerOptions& options);

/// Request counts, latency and batch-size histograms; thread-safe, lock-light.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  /// One answered request: model ("" for routes without one), route ("predict",
  /// "feedback", "models", "metrics", "health", "other"), HTTP status, seconds taken.
  void request(std::string_view model, std::string_view route, int status, double seconds);
  /// One batch run: model, rows, requests in it, seconds the run took.
  void batch(std::string_view model, std::int64_t rows, std::int64_t requests, double seconds);
  void reload(std::string_view model, bool accepted);
  /// Everything so far in the Prometheus text format 0.0.4, plus the per-model lines of
  /// `models` (version info, drift statistics per feature from the monitors).
  std::string prometheus(const std::vector<const ServedModel*>& models, std::size_t queued) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The result of a request's rows after its batch ran.
struct BatchResult {
  std::shared_ptr<const LoadedVersion> version;  ///< the version that produced them
  std::vector<Tensor> outputs;                   ///< this request's rows only
  std::int64_t batch_rows = 0;                   ///< rows of the whole batch it ran in
};

/// The bounded queue and the worker threads. Requests of the same model whose feeds have
/// the same shapes but the batch dimension are run together: a batch closes at
/// max_batch_size rows or max_delay after its first request arrived (at once when batching
/// is off). The version is read once per batch, so every row of a batch (and every answer)
/// names the version that ran it.
class Batcher {
 public:
  Batcher(const ServerOptions& options, Metrics& metrics);
  ~Batcher();
  /// Queues a request; throws RequestError 503 queue_full / shutting_down. The future
  /// holds the result or a RequestError (504 timeout when its deadline passed before it
  /// ran; 500 run_failed with the kiln::Error's message).
  std::future<BatchResult> submit(ServedModel& model, PredictRequest request,
                                  Clock::time_point deadline);
  std::size_t queued() const;
  /// Refuses new requests, runs everything queued, joins the workers. Idempotent.
  void drain();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve::detail
