// Continuous training: `kiln ct PIPELINE.json` as a library call. One run of a pipeline
//   1. checks its trigger (new data files in a folder that production's line was not
//      trained on, a drift snapshot of production that drifted, its decay alarm, or none:
//      always run) and stops with `skipped` when it has not fired;
//   2. validates the new data and the holdout against the production model's schema
//      (kiln::mlops::validate_csv); errors end the run with `invalid_data`;
//   3. trains a candidate from the pipeline's spec on the training data (recorded as a run
//      folder; from scratch, or warm-started from production's weights:
//      train::SpecTrainOptions::initial_model);
//   4. evaluates the candidate and production on the same holdout file (evaluate_csv);
//   5. applies the gate (apply_gate): every gated metric of the candidate within its
//      min / max, and no worse than production's by more than its tolerance;
//   6. registers the candidate (lineage: parent = production, data hashes, spec, params,
//      metrics, run folder) and moves the promotion alias to it, or rejects it with the
//      reasons; a rejected candidate is NOT registered (work_dir/candidate.kiln keeps it);
//   7. writes result.json, report.html (the last run's) and a line of history.jsonl in the
//      pipeline's work folder.
// A run that is interrupted can be run again: training is seeded (the same inputs give the
// same model file, hence the same content hash) and the registry returns the version it
// already has, so nothing is registered twice; a promotion already done is not redone.
//
//   auto spec = kiln::mlops::PipelineSpec::load("pipeline.json");
//   kiln::mlops::PipelineResult r = kiln::mlops::run_pipeline(spec);
//   if (r.outcome == kiln::mlops::Outcome::promoted) ... r.version ...
//   return kiln::mlops::outcome_exit_code(r.outcome);    // 0, 10, 11 or 2, as kiln ct does
//
// The JSON file (docs/mlops.md; relative paths are relative to the file's folder):
//   {"name": "digits", "registry": "models", "spec": "digits.json",
//    "data": {"train": "data/new", "holdout": "data/holdout.csv", "target": "label"},
//    "trigger": {"type": "new_data" | "drift" | "decay" | "always",
//                "snapshot": "drift.json"},
//    "warm_start": false, "alias": "production", "work_dir": "ct", "seed": 1, "epochs": 20,
//    "gate": {"metrics": {"accuracy": {"min": 0.9, "tolerance": 0.01},
//                         "log_loss": {"max": 0.5}}}}
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/export.hpp"

namespace kiln::mlops {

enum class TriggerType : std::uint8_t { always, new_data, drift, decay };

struct GateRule {
  std::optional<double> min = {};  ///< absolute minimum of the candidate's metric
  std::optional<double> max = {};  ///< absolute maximum (metrics where lower is better)
  double tolerance = 0;            ///< allowed loss against production (absolute)
  bool higher_is_better = true;    ///< inferred from the metric name when read from JSON
};

struct KILN_API PipelineSpec {
  std::string name;      ///< the registry model name
  std::string registry;  ///< registry folder
  std::string spec;      ///< model spec file (kiln::train::ModelSpec)
  /// Training data: a CSV file, or a folder whose *.csv files (sorted) are all used.
  std::string train_data;
  std::string holdout;  ///< CSV file both models are evaluated on
  std::string target;   ///< target column ("" : the spec's)
  TriggerType trigger = TriggerType::always;
  std::string trigger_snapshot;  ///< drift / decay: the snapshot file
  bool warm_start = false;
  std::string alias = "production";
  std::string work_dir;  ///< runs, reports and state ("" : "<name>-ct" beside the file)
  std::map<std::string, GateRule> gate;  ///< by metric name as evaluate_csv names it
  std::optional<std::uint64_t> seed;     ///< overrides the spec's training seed
  std::optional<std::int64_t> epochs;    ///< overrides the spec's epochs
  /// Where it was read from (load's path, from_json's source); the registry's lineage
  /// source is "kiln ct <source>". Not written by to_json.
  std::string source;

  /// Reads and checks a pipeline file; FormatError naming the file and JSON path.
  static PipelineSpec load(const std::string& path);
  static PipelineSpec from_json(const std::string& json, const std::string& source,
                                const std::string& base_dir);
  std::string to_json() const;
};

enum class Outcome : std::uint8_t { promoted, rejected, skipped, invalid_data };

/// "promoted", "rejected", "skipped", "invalid_data".
KILN_API const char* outcome_name(Outcome outcome);
/// The exit code `kiln ct` gives each outcome (docs/cli.md): 0, 10, 11, 2.
KILN_API int outcome_exit_code(Outcome outcome);

struct GateCheck {
  std::string metric;
  double candidate = 0;
  std::optional<double> production;
  bool passed = true;
  std::string reason;  ///< "accuracy 0.12 < minimum 0.90", "" when passed
};

struct KILN_API PipelineResult {
  Outcome outcome = Outcome::skipped;
  std::string trigger_reason;              ///< why it ran or was skipped
  std::optional<std::int64_t> version;     ///< the candidate's version when registered
  std::optional<std::int64_t> production;  ///< production's version before the run
  std::vector<GateCheck> checks;
  std::vector<std::string> reasons;  ///< rejection reasons (gate, validation)
  std::string candidate_path, report_path, run_dir;
  bool already_registered = false;  ///< a rerun found the candidate registered
  bool already_promoted = false;    ///< the alias already pointed at the candidate
  std::string name, alias;          ///< the pipeline's model name and promotion alias
  std::string result_path;          ///< work_dir/result.json
  /// The holdout metrics of the candidate and of production (empty without production).
  std::map<std::string, double> candidate_metrics, production_metrics;
  std::string to_json() const;
};

/// Whether a larger value of a metric is better: false for names containing "loss" and for
/// mse, mae, rmse; true otherwise (accuracy, f1_macro, r2, ...).
KILN_API bool metric_higher_is_better(const std::string& metric);

/// The gate's checks of a candidate's metrics, in the gate's (sorted) metric order: the
/// absolute min / max, and with production's metrics (null: no production) the tolerance.
/// ValueError naming the metric when the candidate's metrics lack a gated one.
KILN_API std::vector<GateCheck> apply_gate(const std::map<std::string, GateRule>& gate,
                                           const std::map<std::string, double>& candidate,
                                           const std::map<std::string, double>* production);

struct PipelineOptions {
  /// Run even when the trigger has not fired (kiln ct --force).
  bool force = false;
  /// Called after each step with its name ("trigger", "validate", "train", "evaluate",
  /// "gate", "register", "promote", "report") and a one-line summary; what kiln ct
  /// prints. An exception thrown here stops the run where it is (tests use it to
  /// interrupt a run between two steps).
  std::function<void(const std::string& step, const std::string& summary)> on_step = {};
  /// Where training progress goes (null: none).
  std::FILE* progress_file = nullptr;
};

/// Runs the pipeline once (see the top of this file). Throws IoError / FormatError /
/// DataError for files it cannot read; a gate failure is an outcome, not an error.
KILN_API PipelineResult run_pipeline(const PipelineSpec& spec);
KILN_API PipelineResult run_pipeline(const PipelineSpec& spec, const PipelineOptions& options);

}  // namespace kiln::mlops
