// Model specs: a model, its inputs, its task and loss, its preprocessing and its training
// settings as one plain struct that reads and writes JSON, so a model can be described in
// a file (for the `kiln` command) or in C++, and every trained model carries the recipe it
// was trained from (the "kiln.spec" section of its model file).
//
//   kiln::train::ModelSpec spec = kiln::train::ModelSpec::load("examples/specs/iris.json");
//   // or in C++:
//   kiln::train::ModelSpec s;
//   s.layers = {{.type = "dense", .units = 16, .activation = "relu"},
//               {.type = "dense", .units = kiln::train::auto_size}};
//   s.task.type = kiln::train::Task::classification;
//   s.training.epochs = 100;
//   std::string json = s.to_json();
//
//   kiln::train::BuiltModel m = kiln::train::build_model(spec, {.input_shapes = {{"features",
//                                                         {4}}}, .classes = 3});
//   // m.graph, m.inputs, m.target, m.predictions (logits or the regression value), m.output
//   // (probabilities for classifiers) and m.loss, ready for kiln::train::Trainer.
//
// The JSON form (docs/cli.md has the full reference):
//
//   {"inputs": [{"name": "features", "shape": ["auto"]}],
//    "layers": [{"type": "dense", "units": 16, "activation": "relu"},
//               {"type": "dense", "units": "auto"}],
//    "task": {"type": "classification"},
//    "preprocessing": {"scaling": "standardize"},
//    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 100,
//                 "batch_size": 16, "seed": 1, "test_split": 0.2}}
//
// Instead of "layers" (applied in order to the single input) a spec may give "graph":
// {"nodes": [{"name": ..., "type": ..., "inputs": [...], ...}], "output": "<node>"}, whose
// nodes read model inputs or earlier nodes by name and may also be "add" or "concat".
//
// A bad spec is a ValueError naming the source and the JSON path of the bad value
// ("iris.json: layers[2].units: expected a positive integer, got -3"). Keys a spec does
// not know are errors too, so a typo is never silently ignored.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::train {

/// A size taken from the data ("auto" in JSON): an input's feature count, or the units of
/// the last dense layer (the number of classes; 1 for binary and regression tasks).
inline constexpr std::int64_t auto_size = -1;

/// One layer of a layer list, or one node of a graph spec. Fields a type does not use stay
/// at their defaults (to_json writes only the ones it uses).
struct LayerSpec {
  /// "dense", "dropout", "batch_norm", "layer_norm", "conv2d", "max_pool2d", "avg_pool2d",
  /// "flatten", "global_avg_pool2d", "activation", "reshape"; the sequence layers "lstm",
  /// "gru", "attention", "transformer_encoder", "positional_encoding", "last_step",
  /// "mean_steps" (docs/sequence.md); in a graph also "add" and "concat".
  std::string type;
  /// The layer's name (its parameters are "<name>.weight", ...); "" in a layer list:
  /// automatic ("dense_0", ...). Required in a graph, where inputs refer to it.
  std::string name = {};
  /// Graph nodes only: model inputs or earlier nodes, by name ("add" and "concat" take
  /// two or more, the others one).
  std::vector<std::string> inputs = {};
  /// dense: output units (auto_size: see above).
  std::int64_t units = 0;
  /// conv2d: output channels.
  std::int64_t filters = 0;
  /// conv2d and pooling window; stride (0: 1 for conv2d, the kernel for pooling); padding.
  std::array<std::int64_t, 2> kernel = {0, 0};
  std::array<std::int64_t, 2> stride = {0, 0};
  std::array<std::int64_t, 2> padding = {0, 0};
  /// dense, conv2d, activation: "none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
  /// "softmax".
  std::string activation = "none";
  /// dropout: the drop probability in [0, 1).
  double rate = 0.0;
  /// concat: the axis (counted from the end when negative).
  std::int64_t axis = -1;
  /// reshape: the per-row shape without the batch dimension ([8, 8] views 64 features as
  /// 8 steps of 8); the element count must stay the same.
  std::vector<std::int64_t> shape = {};
  /// lstm, gru: the hidden size H, the number of stacked layers ("layers" in JSON), both
  /// directions, and what the layer returns: "sequence" ([batch, T, directions * H]) or
  /// "last" (the last layer's final states, [batch, directions * H]).
  std::int64_t hidden = 0;
  std::int64_t num_layers = 1;
  bool bidirectional = false;
  std::string returns = "sequence";
  /// attention, transformer_encoder: heads (dividing the feature size), causal masking;
  /// transformer_encoder: the feed-forward width, pre-norm (norm_first), and `activation`
  /// relu or gelu (exact).
  std::int64_t heads = 1;
  bool causal = false;
  std::int64_t feedforward = 0;
  bool norm_first = false;
  /// positional_encoding: a learned table (a parameter) instead of the sinusoidal one.
  bool learned = false;
  friend bool operator==(const LayerSpec&, const LayerSpec&) = default;
};

/// A model input: its name (the dataset tensor that feeds it; the CSV reader's features
/// are "features"), its per-row shape without the batch dimension (a dim may be auto_size,
/// taken from the data) and its dtype.
struct InputSpec {
  std::string name = "features";
  std::vector<std::int64_t> shape = {auto_size};
  DType dtype = DType::f32;
  friend bool operator==(const InputSpec&, const InputSpec&) = default;
};

enum class Task { classification, binary, regression };

struct TaskSpec {
  Task type = Task::classification;
  /// "" : the task's default. classification: "softmax_cross_entropy"; binary:
  /// "bce_with_logits"; regression: "mse" or "huber".
  std::string loss = {};
  /// huber: quadratic below delta, linear above.
  double huber_delta = 1.0;
  /// One weight per class (classification: C, binary: 2); the loss is the weighted mean
  /// sum(w[y_i] * l_i) / sum(w[y_i]), as PyTorch's CrossEntropyLoss(weight=...). Empty: 1.
  std::vector<double> class_weights = {};
  /// The target column ("" : given on the command line, `--target`).
  std::string target = {};
  friend bool operator==(const TaskSpec&, const TaskSpec&) = default;
};

enum class Scaling { none, standardize, minmax };

/// Scaling of numeric features, fitted on the training split and stored in the model file
/// as its preprocessing (minmax as mean = min, stddev = max - min).
struct PreprocessingSpec {
  Scaling scaling = Scaling::standardize;
  friend bool operator==(const PreprocessingSpec&, const PreprocessingSpec&) = default;
};

/// The optimizer and its options (PyTorch's names and defaults; each name accepts only its
/// own options in JSON): "sgd" (lr, momentum, dampening, weight_decay, nesterov), "adam"
/// and "adamw" (lr, beta1, beta2, eps, weight_decay, amsgrad), "rmsprop" (lr, alpha, eps,
/// weight_decay, momentum, centered). weight_decay < 0 means the optimizer's default
/// (0, or 0.01 for adamw).
struct OptimizerSpec {
  std::string name = "adam";
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = -1.0;
  bool nesterov = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool amsgrad = false;
  double alpha = 0.99;
  bool centered = false;
  friend bool operator==(const OptimizerSpec&, const OptimizerSpec&) = default;
};

/// Learning-rate schedule per epoch: "none", "step" (step_size, gamma), "exponential"
/// (gamma), "cosine" (t_max, eta_min), "warmup" (epoch e < warmup_epochs uses
/// lr * (e + 1) / (warmup_epochs + 1), then lr), "reduce_on_plateau" (monitor, factor, patience,
/// min_lr).
struct ScheduleSpec {
  std::string type = "none";
  std::int64_t step_size = 10;
  double gamma = 0.1;
  std::int64_t t_max = 0;  ///< 0: the number of epochs
  double eta_min = 0.0;
  std::int64_t warmup_epochs = 5;
  std::string monitor = "val_loss";
  double factor = 0.1;
  std::int64_t patience = 10;
  double min_lr = 0.0;
  friend bool operator==(const ScheduleSpec&, const ScheduleSpec&) = default;
};

struct EarlyStoppingSpec {
  bool enabled = false;
  std::string monitor = "val_loss";
  std::int64_t patience = 10;
  double min_delta = 0.0;
  bool restore_best = true;
  friend bool operator==(const EarlyStoppingSpec&, const EarlyStoppingSpec&) = default;
};

struct TrainingSpec {
  OptimizerSpec optimizer = {};
  ScheduleSpec schedule = {};
  std::int64_t epochs = 20;
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;
  /// Share of the training rows held out for validation each epoch (0: none).
  double validation_split = 0.0;
  /// Share of the data held out as the test set that training reports on (seeded by
  /// `seed`, stratified for classifiers); 0: no test set.
  double test_split = 0.2;
  EarlyStoppingSpec early_stopping = {};
  /// Gradient clipping by global norm / by value (0: off).
  double clip_norm = 0.0;
  double clip_value = 0.0;
  /// Metrics to report (kiln::metrics::compute names); empty: the task's defaults
  /// (accuracy for classifiers, mse, mae and r2 for regression).
  std::vector<std::string> metrics = {};
  friend bool operator==(const TrainingSpec&, const TrainingSpec&) = default;
};

struct KILN_API ModelSpec {
  std::string name = {};
  std::string description = {};
  std::vector<InputSpec> inputs = {InputSpec{}};
  /// A layer list applied in order to the single input; or, when `nodes` is not empty, a
  /// graph of named nodes whose `output` node is the model's output.
  std::vector<LayerSpec> layers = {};
  std::vector<LayerSpec> nodes = {};
  std::string output = {};
  TaskSpec task = {};
  PreprocessingSpec preprocessing = {};
  TrainingSpec training = {};

  /// The spec as JSON text (indent < 0: one line). from_json(to_json()) == *this.
  std::string to_json(int indent = 2) const;
  /// Parses and checks a spec; ValueError naming `source` and the JSON path of a bad or
  /// unknown entry (and the line and column of a JSON syntax error).
  static ModelSpec from_json(std::string_view text, const std::string& source = "<spec>");
  /// from_json of a file's text; IoError naming the file if it cannot be read.
  static ModelSpec load(const std::string& path);
  /// The metric names training reports: training.metrics or the task's defaults.
  std::vector<std::string> metric_names() const;
  friend bool operator==(const ModelSpec&, const ModelSpec&) = default;
};

/// Sizes the data decides (for auto_size dims and units).
struct BuildOptions {
  /// The per-row shape of each input (without the batch dim), by input name; needed for
  /// inputs whose spec shape has auto_size dims, checked against the spec otherwise.
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> input_shapes = {};
  /// Number of classes of a classification task (>= 2).
  std::int64_t classes = 0;
  /// The name of the target input of the loss.
  std::string target = "target";
  /// Names the spec in error messages (its file).
  std::string source = "<spec>";
};

/// A model built from a spec, with everything a Trainer and save_model need.
struct KILN_API BuiltModel {
  std::unique_ptr<Graph> graph;
  /// Model inputs, in spec order.
  std::vector<Value> inputs;
  /// The loss's target input: i32 [batch] class indices for classification, f32 [batch, 1]
  /// values (0/1 for binary) otherwise.
  Value target;
  /// What metrics use: logits [batch, C] (classification), logits [batch, 1] (binary), the
  /// prediction [batch, 1] (regression).
  Value predictions;
  /// What the saved model returns: probabilities [batch, C] "probs" (classification),
  /// P(class 1) [batch, 1] "probability" (binary), [batch, 1] "prediction" (regression).
  Value output;
  std::string output_name;
  /// The scalar training loss.
  Value loss;
};

/// Builds the graph a spec describes. Throws ValueError for sizes the spec leaves to the
/// data but `options` does not give, and ValueError / ShapeError naming the layer (by its
/// JSON path, e.g. "layers[2]") whose shapes do not fit.
KILN_API BuiltModel build_model(const ModelSpec& spec, const BuildOptions& options = {});

/// Names used in JSON and messages: "classification", "standardize", ...
KILN_API std::string_view task_name(Task task);
KILN_API std::string_view scaling_name(Scaling scaling);

}  // namespace kiln::train
