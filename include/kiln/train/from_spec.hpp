// Spec to model file, model file to metrics and predictions: what the `kiln train`,
// `kiln eval` and `kiln predict` commands do, as library calls.
//
//   auto spec = kiln::train::ModelSpec::load("examples/specs/iris.json");
//   auto result = kiln::train::train_from_spec(spec, "data/iris.csv", {.target = "species"});
//   result.save("iris.kiln");                       // spec and data schema stored in the file
//   double acc = result.test.at("test_accuracy");   // on the spec's held-out split
//
//   kiln::train::Evaluation ev = kiln::train::evaluate_csv("iris.kiln", "more_iris.csv");
//   kiln::train::Predictions p = kiln::train::predict_csv("iris.kiln", "new_iris.csv");
//   std::string csv = p.to_csv();                   // "species\nsetosa\n..."
//
// train_from_spec reads the CSV (kiln::data::read_csv with the spec's target), holds out
// training.test_split of the rows (seeded, stratified for classifiers) or reads a given test
// file, fits the spec's scaling on the training rows, builds the model (build_model), trains
// it with kiln::train::Trainer and the spec's optimizer, schedule, clipping and early
// stopping, and evaluates the model file it made on the test rows. The file records the
// scaling as its preprocessing, the class names as its labels, the test metrics, the spec
// ("kiln.spec") and the CSV schema ("kiln.data"), so evaluate_csv and predict_csv read new
// files exactly as the training file was read, and the reference profile
// ("kiln.profile", kiln::monitor::build_profile): the raw training features (categorical
// columns as categories), the model's outputs on the test rows and the test metrics, what
// kiln validate and the drift monitor compare new data with. Inputs with more than
// max_profile_features elements per row (images above 64x64 grey) get no profile.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/spec.hpp"
#include "kiln/train/trainer.hpp"

namespace kiln::train {

/// The largest feature row train_from_spec profiles (per-element histograms stay small).
inline constexpr std::int64_t max_profile_features = 4096;

struct SpecTrainOptions {
  /// The target column; "" : the spec's task.target (one of them must name it).
  std::string target = {};
  /// A CSV file to test on instead of holding out training.test_split of the data.
  std::string test_data = {};
  /// Overrides of training.seed and training.epochs.
  std::optional<std::uint64_t> seed = {};
  std::optional<std::int64_t> epochs = {};
  /// Save a checkpoint/model pair here after every epoch (Trainer::save_checkpoint).
  std::string checkpoint_dir = {};
  /// Continue from the newest pair in checkpoint_dir (if there is one).
  bool resume = false;
  Progress progress = Progress::automatic;
  /// Where progress goes (stderr when null).
  std::FILE* progress_file = nullptr;
  /// The model file's creation time ("YYYY-MM-DDTHH:MM:SSZ"; empty: now).
  std::string creation_time = {};
  /// Further fit callbacks, called after the spec's own (e.g. kiln::report::record).
  std::vector<std::shared_ptr<Callback>> callbacks = {};
  /// Warm start: a model file (e.g. the production version) whose parameter values
  /// initialise the new model's, matched by parameter name ("fc1.weight", ...) where the
  /// shapes and dtypes agree; the others keep their seeded initialisation. "" : from scratch.
  /// SpecTrainResult::warm_started lists the parameters copied.
  std::string initial_model = {};
  /// Train data-parallel over these ranks (TrainerOptions::communicator): every rank
  /// reads the data file and splits it alike, trains on its shard; the result (model,
  /// history, test metrics) is the same on every rank, and only rank 0 writes checkpoints.
  dist::Communicator* communicator = nullptr;
};

/// A model file's metrics on a labelled CSV file.
struct Evaluation {
  Task task = Task::classification;
  std::int64_t rows = 0;
  /// "accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss" (classifiers);
  /// "mse", "mae", "r2" (regression); plus the spec's own metrics.
  Logs metrics;
  /// Classifiers only.
  metrics::ConfusionMatrix confusion;
  std::vector<std::string> labels;
};

struct KILN_API SpecTrainResult {
  /// The trained model file's bytes.
  std::vector<std::uint8_t> model;
  /// The spec as trained (with the overrides and the target applied).
  ModelSpec spec;
  History history;
  /// Metrics of the model file on the test rows: "test_accuracy", ... (empty without a
  /// test set).
  Logs test;
  std::int64_t train_rows = 0;
  std::int64_t test_rows = 0;
  /// Class names (classifiers).
  std::vector<std::string> labels;
  /// The training and test rows as read (features before the spec's scaling, the target
  /// as class indices or values; the test set is empty without test rows).
  data::Dataset train_data, test_data;
  /// The model file's evaluation on the test rows (metrics without the "test_" prefix,
  /// the confusion matrix of classifiers); rows 0 without test rows.
  Evaluation evaluation;
  /// The parameters initialised from SpecTrainOptions::initial_model (empty without it).
  std::vector<std::string> warm_started;
  /// Writes `model` to `path` atomically; IoError naming the file.
  void save(const std::string& path) const;
};

/// Trains the model a spec describes on a CSV file (see the top of this file). Throws
/// IoError / DataError for the files, ValueError for a bad spec or options, and what
/// Trainer::fit throws (e.g. for a non-finite loss).
KILN_API SpecTrainResult train_from_spec(const ModelSpec& spec, const std::string& csv_path,
                                         const SpecTrainOptions& options = {});

/// A CSV file read for a model file written by train_from_spec, exactly as its training file
/// was (kiln::data::read_csv_with_schema with the file's "kiln.data" schema): raw features
/// (the model file's preprocessing is not applied) and, as `target` says, the target.
/// Throws FormatError for a model without the spec and data sections, DataError for a file
/// that does not fit the model's columns.
KILN_API data::Dataset read_csv_for_model(
    const std::string& model_path, const std::string& csv_path,
    data::TargetColumn target = data::TargetColumn::if_present);

/// Evaluates a model file written by train_from_spec on a CSV with its target column.
/// Throws FormatError for a model without the spec and data sections, DataError for a
/// file that does not fit the model's columns.
KILN_API Evaluation evaluate_csv(const std::string& model_path, const std::string& csv_path);

/// A model file's predictions for the rows of a CSV file (the target column is not needed).
struct KILN_API Predictions {
  Task task = Task::classification;
  /// The target column's name (the prediction column's header).
  std::string target;
  /// Class names, by class index (classifiers).
  std::vector<std::string> labels;
  /// The predicted class of each row (classifiers; binary: P(class 1) > 0.5).
  std::vector<std::int64_t> classes;
  /// Class probabilities [N, C] (classifiers; binary: [N, 2]).
  Tensor probabilities;
  /// Predicted values [N] (regression).
  std::vector<double> values;
  /// CSV text: a header, then one line per row: the class name or value, and with
  /// `probabilities` a column "p_<class>" per class.
  std::string to_csv(bool probabilities = false) const;
};

KILN_API Predictions predict_csv(const std::string& model_path, const std::string& csv_path);

}  // namespace kiln::train
