// kiln::monitor::Monitor — drift monitoring where the model runs (part of kiln_infer, also in
// the C API): an opt-in object beside an infer::Model that accumulates live statistics of
// the inputs it is shown and of the model's predictions, in fixed memory and thread-safely,
// and compares them with the reference profile stored in the model file.
//
//   auto model = kiln::infer::Model::load("digits.kiln", {.apply_preprocessing = true});
//   kiln::monitor::Monitor monitor(model);                 // reads the "kiln.profile" section
//   auto out = monitor.run(model, {{"pixels", x}});        // model.run + observe
//   ...
//   kiln::monitor::DriftReport r = monitor.report();
//   if (r.drifted) ...                                      // r.features[i].psi, .p_value ...
//   monitor.write_snapshot("drift.json");                   // for `kiln drift`, the report, CT
//   monitor.observe_labels(predicted_classes, labels);     // later, when labels arrive
//
// Tests: every numeric feature and numeric prediction gets a two-sample Kolmogorov-Smirnov
// test on the reference histogram's bins, every categorical feature and the predicted classes
// a chi-squared test; a feature drifts when its p-value is below alpha / m (Bonferroni over
// the m tests, features plus predictions, so the chance of any false alarm on data from the
// reference distribution stays at or below alpha) once it has min_rows live rows. PSI is
// reported beside every test with its level (moderate >= 0.1, significant >= 0.2 by default)
// as an effect size. Labels give live metrics (accuracy for classes, MSE for values) and a
// decay alarm when the live metric is worse than the profile's recorded one by more than
// decay_tolerance with one-sided significance decay_alpha.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln::infer {
class Model;
}

namespace kiln::monitor {

struct MonitorOptions {
  double alpha = 0.05;  ///< family-wise false-alarm rate (Bonferroni)
  double psi_moderate = 0.1;
  double psi_significant = 0.2;
  std::uint64_t min_rows = 100;  ///< no feature is flagged before this many live rows
  /// Observe one row in `sample_every` (counted over all rows seen, deterministic: rows 0,
  /// N, 2N, ...): the cost knob for latency-critical paths; predictions are sampled with
  /// their rows. The default keeps the monitor under 5% of W3's batch-1 latency (784
  /// features; benchmarks/RESULTS.md); 1 observes every row (tests, offline checks, small
  /// models where the cost does not matter).
  std::uint32_t sample_every = 32;
  /// The inputs given to observe()/run() are already preprocessed (the model was loaded
  /// without apply_preprocessing): the monitor undoes the recorded normalisation before
  /// comparing with the profile, which is in raw units.
  bool inputs_preprocessed = false;
  double decay_tolerance = 0.02;  ///< allowed drop of the live metric (absolute)
  double decay_alpha = 0.05;
  std::uint64_t decay_min_labels = 100;
};

enum class PsiLevel : std::uint8_t { none = 0, moderate = 1, significant = 2 };

struct FeatureDrift {
  std::string name;
  FeatureKind kind = FeatureKind::numeric;
  const char* test = "ks";  ///< "ks" or "chi2"
  std::uint64_t rows = 0;   ///< live values compared (finite ones)
  double statistic = 0, p_value = 1, psi = 0;
  PsiLevel psi_level = PsiLevel::none;
  bool drifted = false;
  // Anomalies seen live (counted on every observed row).
  std::uint64_t nonfinite = 0, below_min = 0, above_max = 0, unseen_category = 0;
  double live_mean = 0;  ///< numeric: mean of the finite live values
  /// Live counts per reference bin / category (same layout as the profile's).
  std::vector<std::uint64_t> live_counts;
};

struct LabelMetrics {
  std::uint64_t labelled = 0;
  std::string metric;    ///< "accuracy" or "mse"
  double live = 0;       ///< the live metric
  double reference = 0;  ///< from the profile's metrics (NaN when it has none)
  bool decayed = false;  ///< the decay alarm
  double p_value = 1;    ///< one-sided test of live worse than reference - tolerance
  /// The sums behind `live` (kept so snapshots can be merged): accuracy: correct
  /// predictions (sum) and the same again (sum_sq, 0/1 squared); mse: the squared errors'
  /// sum and the sum of their squares.
  double sum = 0, sum_sq = 0;
};

struct DriftReport {
  std::string model;  ///< model name, version and content hash, as the file says
  std::string model_version, model_hash;
  std::string created;  ///< UTC, ISO 8601
  std::uint64_t rows_seen = 0, rows_observed = 0;
  double alpha = 0.05, corrected_alpha = 0.05;  ///< alpha / m
  std::vector<FeatureDrift> features;
  FeatureDrift prediction;  ///< name "prediction"; rows 0 without a prediction profile
  bool drifted = false;     ///< any feature or the prediction drifted
  std::int64_t features_drifted = 0;
  double max_psi = 0;
  LabelMetrics labels;
};

class KILN_API Monitor {
 public:
  /// Reads the model's profile; throws NameError when the model file has none.
  explicit Monitor(const infer::Model& model, MonitorOptions options = {});
  Monitor(Profile profile, MonitorOptions options = {});
  ~Monitor();
  Monitor(Monitor&&) noexcept;
  Monitor& operator=(Monitor&&) noexcept;

  const Profile& profile() const;
  const MonitorOptions& options() const;

  /// Adds the rows of `feeds[profile().input]` and, when given, the model's outputs for them
  /// (the profile's output, by name). Thread-safe; memory does not grow with the rows.
  /// Throws ShapeError / NameError when the feeds do not fit the profile.
  void observe(const Feeds& feeds, std::span<const Tensor> outputs = {},
               std::span<const std::string> output_names = {});
  /// model.run(feeds), observing the inputs and outputs; returns the outputs.
  std::vector<Tensor> run(const infer::Model& model, const Feeds& feeds);
  /// Predictions logged earlier and the labels that arrived for them: class indices, or values.
  void observe_labels(std::span<const std::int64_t> predicted,
                      std::span<const std::int64_t> labels);
  void observe_labels(std::span<const double> predicted, std::span<const double> labels);

  /// The comparison with the profile now.
  DriftReport report() const;
  /// Writes report() with the live counts as JSON (docs/mlops.md), atomically.
  void write_snapshot(const std::string& path) const;
  /// Forgets the live statistics (a new window).
  void reset();
  /// Adds the live counts of a snapshot of a monitor of the same profile (another device or
  /// process; read_drift_snapshot in kiln/mlops/drift.hpp reads them from files). Throws
  /// ValueError naming the first feature whose layout differs.
  void merge(const DriftReport& snapshot);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// "none", "moderate" or "significant".
KILN_API const char* psi_level_name(PsiLevel level);

}  // namespace kiln::monitor
