// Internal: the run recorder's state, shared by run_record.cpp, layer_stats.cpp and
// record_callback.cpp; JSON helpers of the run folder files (docs/run-format.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "internal/utc_time.hpp"
#include "kiln/report/run_record.hpp"

namespace kiln::report::internal {

using Json = nlohmann::ordered_json;

/// A double as JSON: null for NaN and infinities.
Json number(double v);
/// Appends the shortest text that reads back to `v` ("null" when not finite).
void append_number(std::string& out, double v);
/// Appends `s` as a JSON string (quoted, escaped).
void append_string(std::string& out, std::string_view s);
/// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
using kiln::internal::utc_now;
/// Writes `j` (indented) to `path` atomically; IoError naming the file.
void write_json_file(const std::string& path, const Json& j);
/// Parses a JSON file; IoError / FormatError naming it.
Json read_json_file(const std::string& path);
/// Appends a TensorStats as the statistics keys of a layers.jsonl entry
/// (,"count":..,...,"histogram":{..}).
void append_stats(std::string& out, const TensorStats& s);
/// The statistics of `n` floats (one pass for the moments and range, one for the
/// deviations and the histogram).
TensorStats float_stats(const float* data, std::int64_t n, std::int64_t bins);

/// A JSON Lines file appended one whole line per write() (O_APPEND), nothing buffered:
/// a crash loses at most the line being written.
class JsonLines {
 public:
  JsonLines() = default;
  ~JsonLines();
  JsonLines(const JsonLines&) = delete;
  JsonLines& operator=(const JsonLines&) = delete;
  /// Opens (creates) `path` for appending, emptied first with `truncate`. A last line
  /// without its newline (a crash mid-line) is cut off first, so that appended lines stay
  /// parseable.
  void open(const std::string& path, bool truncate = false);
  /// Appends `line` and a newline; IoError naming the file.
  void append(std::string& line);

 private:
  int fd_ = -1;
  std::string path_;
};

/// The forward pass of a layer as the compiled plan runs it.
struct LayerPlan {
  std::vector<std::string> ops;      ///< "matmul+bias+relu", in plan order
  std::vector<std::string> kernels;  ///< distinct kernel names, in plan order
};

/// One activation statistic slot: the latest forward value of a layer scope.
struct ActivationSlot {
  std::string scope;
  std::string op;
  Tensor buffer;  ///< a copy of the value (reused across samples)
  bool seen = false;
};

/// The recorder's observer: copies every layer's output (the last forward step of its
/// scope) and learns the plan's ops and kernels per layer from the first run it sees.
class LayerObserver : public RunObserver {
 public:
  /// Starts a run: with `activations` it copies layer outputs; with `plan` it records the
  /// ops and kernels.
  void begin(const Graph* graph, bool activations, bool with_plan);
  void on_step(const ObservedStep& step) override;

  std::vector<ActivationSlot> slots;  ///< in forward order
  std::vector<std::pair<std::string, LayerPlan>> plan;
  std::map<std::string, std::int64_t> backend_steps;  ///< plan steps per kernel backend
  bool plan_complete = false;

 private:
  const Graph* graph_ = nullptr;
  bool activations_ = false;
  bool plan_ = false;
};

/// The kernel's backend: its name up to the first '_' ("onednn_matmul" -> "onednn").
std::string kernel_backend(std::string_view kernel);
/// graph.json's content (docs/run-format.md) from summarize, edges and the plan.
Json graph_json(const Graph& graph, const std::vector<Value>& outputs,
                const std::vector<std::pair<std::string, LayerPlan>>& plan);

}  // namespace kiln::report::internal

namespace kiln::report {

struct RunRecorder::Impl {
  RecordOptions options;
  std::string run_json_path;
  internal::Json run;  // run.json's content
  internal::JsonLines metrics, layers;
  std::chrono::system_clock::time_point started;
  bool finished = false;
  std::string line;         // reused for metrics lines
  std::string layers_line;  // and for layers lines

  // The model (set_model) and what the plan showed.
  const Graph* graph = nullptr;
  std::vector<Value> outputs;
  bool want_plan = false;
  bool graph_written = false;
  internal::LayerObserver observer;

  // The TrainStep whose parameters the cached names belong to.
  const TrainStep* params_of = nullptr;
  std::vector<std::string> param_names, param_layers;
  std::vector<Tensor> weights_before;

  double elapsed() const;
  void write_run_json();
  void write_graph_json();
  /// Updates run.json's environment from the plan the observer saw.
  void plan_seen();
  void cache_parameters(const TrainStep& step);
};

/// The recorder's state for StepSample and the record() callback.
struct RecorderAccess {
  using Impl = RunRecorder::Impl;
  static Impl& of(RunRecorder& r) { return *r.impl_; }
};

}  // namespace kiln::report
