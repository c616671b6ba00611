// `kiln train` as a library call: train a spec on a CSV file and record the run.
//
//   auto run = kiln::report::train_and_record(spec, "data/iris.csv",
//                                             {.target = "species"}, {.dir = "runs/iris"});
//   // runs/iris: run.json, metrics.jsonl, layers.jsonl, graph.json, data.json,
//   //            evaluation.json, explanations.json, model.kiln, report.html
#pragma once

#include <string>

#include "kiln/export.hpp"
#include "kiln/report/run_record.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln::report {

struct RecordedRunOptions {
  /// Recording options (dir is required).
  RecordOptions record = {};
  /// Permutation importance and integrated gradients of a few test rows in
  /// explanations.json.
  bool explain = true;
  /// Write report.html at the end (also after a failed fit, with what was recorded).
  bool report = true;
};

struct RecordedRun {
  train::SpecTrainResult result;
  std::string dir;
  std::string report;  ///< report.html's path ("" if not written)
};

/// train_from_spec with a RunRecorder: the spec as config, the data file's hash, the data
/// summary, per-layer statistics, test evaluation (confusion matrix), explanations, the
/// model file and the report. On an error the run is marked failed (its report still
/// written) and the error rethrown.
///
/// Data-parallel (train_options.communicator), every rank calls it: rank 0 records the
/// run into options.record.dir, the other ranks train alongside it and write nothing
/// (their RecordedRun has the same result, an empty dir and no report). An error making
/// rank 0's recorder is thrown on every rank.
KILN_API RecordedRun train_and_record(const train::ModelSpec& spec, const std::string& csv_path,
                                      const train::SpecTrainOptions& train_options,
                                      const RecordedRunOptions& options);

}  // namespace kiln::report
