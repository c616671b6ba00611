// train_and_record: train_from_spec with a RunRecorder (what `kiln train` does).
#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/report/explain.hpp"
#include "kiln/report/report.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/metrics.hpp"
#include "report/record_impl.hpp"
#include "train/collective.hpp"

namespace kiln::report {
using internal::Json;
namespace {

// evaluation.json (docs/run-format.md): test metrics, and for classifiers the confusion
// matrix (rows: true class) with per-class precision, recall, f1 and support.
Json evaluation_json(const train::Evaluation& ev) {
  Json j;
  j["split"] = "test";
  j["rows"] = ev.rows;
  Json metrics = Json::object();
  for (const auto& [k, v] : ev.metrics) metrics[k] = internal::number(v);
  j["metrics"] = std::move(metrics);
  const metrics::ConfusionMatrix& cm = ev.confusion;
  if (ev.task == train::Task::regression || cm.classes == 0) return j;
  std::vector<std::string> labels = ev.labels;
  for (auto c = static_cast<std::int64_t>(labels.size()); c < cm.classes; ++c)
    labels.push_back(std::to_string(c));
  labels.resize(static_cast<std::size_t>(cm.classes));
  j["labels"] = labels;
  Json rows = Json::array();
  for (std::int64_t t = 0; t < cm.classes; ++t) {
    Json row = Json::array();
    for (std::int64_t p = 0; p < cm.classes; ++p) row.push_back(cm.at(t, p));
    rows.push_back(std::move(row));
  }
  j["confusion"] = std::move(rows);
  const metrics::ClassScores s = metrics::precision_recall_f1(cm);
  Json per_class = Json::array();
  for (std::size_t c = 0; c < labels.size(); ++c)
    per_class.push_back({{"label", labels[c]},
                         {"precision", internal::number(s.precision[c])},
                         {"recall", internal::number(s.recall[c])},
                         {"f1", internal::number(s.f1[c])},
                         {"support", s.support[c]}});
  j["per_class"] = std::move(per_class);
  return j;
}

// ===== explanations.json =================================================================
// explanations.json from kiln/report/explain.hpp: permutation importance over the test rows
// and integrated gradients of the predicted class of the first 3 test rows, for the model
// file the run saved. Nothing without test rows. An explanation that fails does not fail
// the trained run: its message goes into run.json as "explanations_error".
void write_explanations(RunRecorder& recorder, const train::SpecTrainResult& result,
                        const std::string& model_path) {
  if (result.test_data.empty()) return;
  std::vector<std::int64_t> rows;
  for (std::int64_t r = 0; r < std::min<std::int64_t>(3, result.test_data.size()); ++r)
    rows.push_back(r);
  try {
    recorder.set_explanations_json(explanations_json(model_path, result.test_data, rows));
  } catch (const Error& e) {
    RecorderAccess::Impl& m = RecorderAccess::of(recorder);
    m.run["explanations_error"] = e.what();
    m.write_run_json();
  }
}
// =========================================================================================

}  // namespace

RecordedRun train_and_record(const train::ModelSpec& spec, const std::string& csv_path,
                             const train::SpecTrainOptions& train_options,
                             const RecordedRunOptions& options) {
  if (options.record.dir.empty())
    throw ValueError("train_and_record: RecordedRunOptions::record.dir (the run folder) is empty");
  // Data-parallel (SpecTrainOptions::communicator), rank 0 records the run and the other
  // ranks only train; a recorder that cannot be made stops every rank.
  dist::Communicator* const comm = train_options.communicator;
  std::unique_ptr<RunRecorder> recorder;
  train::run_collectively(comm, true,
                          [&] { recorder = std::make_unique<RunRecorder>(options.record); });
  if (!recorder) {
    RecordedRun other;
    other.result = train::train_from_spec(spec, csv_path, train_options);
    return other;
  }
  RunRecorder& rec = *recorder;
  RecordedRun run;
  run.dir = rec.dir();
  try {
    // The spec as train_from_spec will train it (its overrides applied).
    train::ModelSpec trained = spec;
    if (!train_options.target.empty()) trained.task.target = train_options.target;
    if (train_options.seed) trained.training.seed = *train_options.seed;
    if (train_options.epochs) trained.training.epochs = *train_options.epochs;
    rec.set_config(trained.to_json(-1));
    rec.set_seed(trained.training.seed);
    rec.add_data_file(csv_path);
    if (!train_options.test_data.empty()) rec.add_data_file(train_options.test_data);

    train::SpecTrainOptions o = train_options;
    o.callbacks.push_back(record(rec));
    run.result = train::train_from_spec(spec, csv_path, o);
    const train::SpecTrainResult& r = run.result;

    rec.set_data(r.train_data, r.test_rows, csv_path, r.spec.task.target);
    if (r.test_rows > 0) rec.set_evaluation_json(evaluation_json(r.evaluation).dump());
    rec.save_model(r.model);
    if (options.explain) write_explanations(rec, r, rec.dir() + "/model.kiln");
    train::Logs final_values;
    if (!r.history.epochs.empty()) final_values = r.history.epochs.back();
    for (const auto& [k, v] : r.test) final_values[k] = v;
    rec.finish("completed", final_values);
  } catch (const std::exception& e) {
    if (!rec.finished()) rec.finish("failed", {}, e.what());
    // The report of what was recorded; the fit's error is the one that matters.
    if (options.report) {
      try {
        write_report(run.dir);
      } catch (const std::exception&) {
      }
    }
    throw;
  }
  if (options.report) run.report = write_report(run.dir);
  return run;
}

}  // namespace kiln::report
