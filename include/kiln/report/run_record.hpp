// Run records: a training run written as a folder of JSON files (docs/run-format.md) that
// kiln::report::render_report, `kiln report` and `kiln board` turn into charts.
//
// With the Trainer, add the recording callback:
//
//   kiln::report::RunRecorder rec({.dir = "runs/digits-mlp", .sample_every = 50});
//   rec.set_config(R"({"lr": 0.01, "hidden": 128})");
//   rec.add_data_file("data/digits.csv");
//   trainer.fit(train, {.epochs = 20, .callbacks = {kiln::report::record(rec)}});
//   rec.save_model(model_bytes);
//   rec.finish();                                        // status "completed"
//
// In a custom loop, the same calls by hand:
//
//   rec.set_model(g, {logits}, &step.executable());   // graph.json
//   for (...) {
//     kiln::report::StepSample sample = rec.sample(step_index, epoch, step);
//     double loss = step.run(feeds, sample.observer());  // activations (sampled steps only)
//     sample.before_update();                            // gradients, weights before the step
//     opt.step(step.gradients());
//     sample.after_update();                             // weights, update ratio; one line
//     rec.log_step(step_index, epoch, {{"loss", loss}, {"lr", opt.lr()}});
//   }
//   rec.log_epoch(epoch, steps_so_far, {{"loss", mean_loss}, {"val_accuracy", acc}});
//
// Per-layer statistics cost one pass over each observed tensor on sampled steps only; other
// steps pay nothing beyond the metrics line (see benchmarks/bench_recording.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"
#include "kiln/train/trainer.hpp"

namespace kiln::report {

/// Values by name, as the trainer logs them ("loss", "lr", "accuracy", "val_loss", ...).
using Logs = train::Logs;

struct RecordOptions {
  /// The run folder (created with its parents). A folder that already holds a run.json
  /// is refused (IoError) unless `resume`: then the run's files are appended to.
  std::string dir = {};
  /// The run's name; empty: the folder's name.
  std::string name = {};
  /// Per-layer statistics every N optimizer steps (and at step 0); 0: never.
  std::int64_t sample_every = 50;
  /// A metrics line every N optimizer steps (epoch lines are always written); 0: none.
  std::int64_t log_every = 1;
  /// Bins of each statistics histogram.
  std::int64_t histogram_bins = 30;
  bool activations = true;
  bool gradients = true;
  bool weights = true;
  bool resume = false;
};

/// Summary statistics of one tensor (non-finite elements are left out of all but `count`
/// and `nonfinite`; with no finite element mean ... histogram_hi are NaN). `std` is the
/// population standard deviation, `norm` the L2 norm, `zero_fraction` the share of the
/// finite elements that are exactly 0.
struct TensorStats {
  std::int64_t count = 0;
  std::int64_t nonfinite = 0;
  double mean = 0.0, std = 0.0, min = 0.0, max = 0.0, norm = 0.0;
  double zero_fraction = 0.0;
  double histogram_lo = 0.0, histogram_hi = 0.0;
  std::vector<std::int64_t> histogram;
};
/// The statistics of a float tensor with `bins` equal-width histogram bins over [min, max]:
/// a value v goes into bin floor((v - min) * (bins / (max - min))), the last bin for
/// v == max; min == max: every count in bin 0.
/// ValueError for a non-float tensor or bins < 1.
KILN_API TensorStats tensor_stats(const Tensor& t, std::int64_t bins = 30);

class RunRecorder;

/// One optimizer step's statistics collection (see the custom-loop example at the top).
/// On a step that is not sampled every call does nothing and observer() is null.
class KILN_API StepSample {
 public:
  StepSample(StepSample&&) noexcept;
  StepSample& operator=(StepSample&&) noexcept;
  ~StepSample();
  bool active() const;
  /// Pass to TrainStep::run / Executable::run: collects layer output statistics.
  RunObserver* observer();
  /// After the run, before the optimizer step: gradient statistics, weight copies.
  void before_update();
  /// After the optimizer step: weight statistics and update ratios; writes the line.
  void after_update();

 private:
  friend class RunRecorder;
  struct Impl;
  explicit StepSample(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct RecorderAccess;

class KILN_API RunRecorder {
 public:
  /// Creates the folder and writes run.json with status "running" and the environment
  /// facts known now (version, threads, OS, compiler). IoError naming the folder.
  explicit RunRecorder(RecordOptions options);
  /// A run never finished is marked "failed" ("the recorder was destroyed before finish").
  ~RunRecorder();
  RunRecorder(const RunRecorder&) = delete;
  RunRecorder& operator=(const RunRecorder&) = delete;

  const std::string& dir() const;
  const RecordOptions& options() const;

  /// Hyper-parameters as a JSON object text (e.g. ModelSpec::to_json()); ValueError if it
  /// is not one.
  void set_config(const std::string& json_object);
  void set_seed(std::uint64_t seed);
  /// Records the file's path, size and SHA-256 (IoError naming it if unreadable).
  void add_data_file(const std::string& path);
  /// Writes graph.json: the layers `outputs` depend on (kiln::nn::summarize), their
  /// inputs, and, given an executable, the ops and kernels of its plan per layer.
  void set_model(const Graph& graph, const std::vector<Value>& outputs,
                 Executable* plan_source = nullptr);
  /// Writes data.json from a dataset's column info and its target's class balance (the
  /// training rows; `test_rows` held out; `file` and `target_column` as data.json names
  /// them, default: the dataset's source and target tensor).
  void set_data(const data::Dataset& train, std::int64_t test_rows = 0,
                const std::string& file = {}, const std::string& target_column = {});
  /// Writes evaluation.json (text: one JSON object, see docs/run-format.md).
  void set_evaluation_json(const std::string& json_object);
  /// Writes explanations.json (text: one JSON object, see docs/run-format.md).
  void set_explanations_json(const std::string& json_object);

  /// Appends a step line when step % log_every == 0.
  void log_step(std::int64_t step, std::int64_t epoch, const Logs& values);
  /// Appends an epoch line.
  void log_epoch(std::int64_t epoch, std::int64_t steps, const Logs& values);
  /// Whether per-layer statistics are taken at this step.
  bool sampled(std::int64_t step) const;
  /// A statistics collection for this step of `train_step` (inactive when not sampled).
  StepSample sample(std::int64_t step, std::int64_t epoch, TrainStep& train_step);

  /// Writes model.kiln atomically.
  void save_model(std::span<const std::uint8_t> model_file);
  /// Sets run.json's status ("completed", "stopped" or "failed"), finish time, error
  /// message and final values.
  void finish(const std::string& status = "completed", const Logs& final_values = {},
              const std::string& error = {});
  bool finished() const;

 private:
  friend struct RecorderAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A Trainer callback that records the fit into `recorder` (which must outlive the fit):
/// graph.json and the seed-free environment at fit begin, a step line per step, an epoch
/// line per epoch, per-layer statistics on sampled steps (through Callback::observer), and
/// status "failed" with the error when the fit throws. finish() stays with the caller,
/// who may add a model and test metrics first.
KILN_API std::shared_ptr<train::Callback> record(RunRecorder& recorder);

}  // namespace kiln::report
