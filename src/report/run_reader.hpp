// Internal: a run folder (docs/run-format.md) read into memory for the report and the
// board. JSON documents stay nlohmann values (readers ignore keys they do not know); the
// JSON Lines files become rows with their numbers as doubles (null: NaN).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::report::internal {

using json = nlohmann::json;

/// One metrics.jsonl line: its kind ("step" or "epoch"), step, epoch, time and the
/// logged values (every other numeric key; null values are NaN).
struct MetricsLine {
  std::string kind;
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double time = 0.0;
  std::map<std::string, double> values;
};

/// One tensor's statistics in a layers.jsonl line.
struct TensorRecord {
  std::string layer, kind, tensor, op;
  std::vector<std::int64_t> shape;
  double mean = 0.0, std = 0.0, min = 0.0, max = 0.0, norm = 0.0, zero_fraction = 0.0;
  std::optional<double> update_ratio;  ///< weights only; nullopt when null or absent
  double histogram_lo = 0.0, histogram_hi = 0.0;
  std::vector<double> histogram;
};

struct LayersLine {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::vector<TensorRecord> tensors;
};

struct RunData {
  std::string dir;
  json run;  ///< run.json (always an object)
  /// Optional documents: null when the file is absent.
  json graph, data, evaluation, explanations;
  bool has_metrics = false, has_layers = false;
  std::vector<MetricsLine> metrics;
  std::vector<LayersLine> layers;
  /// Changes whenever a file of the run changes (names, sizes, modification times).
  std::string version;

  std::string name() const;
  std::string status() const;
  std::string text(const char* key) const;  ///< a string member of run.json, "" otherwise
};

/// The lines of a JSON Lines file: blank lines are skipped, a last line that does not
/// parse (a writer interrupted mid-line) is dropped, any other bad line is a FormatError
/// "FILE:LINE: ...". IoError if the file cannot be read.
std::vector<json> read_json_lines(const std::string& path);

/// Reads a run folder. IoError when the folder or its run.json is missing or unreadable,
/// FormatError naming the file (and line) for malformed content.
RunData read_run(const std::string& dir);

/// The run's name and status and the counts the board lists, reading run.json and
/// metrics.jsonl only.
struct RunSummary {
  json run;
  std::int64_t epochs = 0, steps = 0;
  std::map<std::string, double> latest;  ///< the last epoch line's values
  std::string version;
};
RunSummary read_run_summary(const std::string& dir);

/// The version stamp of a run folder (see RunData::version).
std::string run_version(const std::string& dir);

/// The shortest text that reads back to the same double (nlohmann's, as in the files);
/// integers print without a fraction, NaN as "NaN".
std::string number_text(double v);

/// Config values flattened to dotted paths, as JSON text ("training.optimizer.lr" ->
/// "0.003", "training.optimizer.name" -> "\"adam\""); arrays stay whole.
std::map<std::string, std::string> flatten_config(const json& config);

}  // namespace kiln::report::internal
