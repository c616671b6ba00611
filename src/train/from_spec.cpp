// train_from_spec: a CSV file and a ModelSpec in, a trained model file (with its spec,
// data schema, preprocessing, labels and test metrics) out.
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/collective_text.hpp"
#include "internal/utc_time.hpp"
#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/data/scale.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/train/callbacks.hpp"
#include "train/spec_eval.hpp"

namespace kiln::train {
namespace {

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerSpec& o, Graph& g) {
  auto params = nn::named_parameters(g);
  if (o.name == "sgd")
    return std::make_unique<optim::SGD>(
        params, optim::SGDOptions{.lr = o.lr,
                                  .momentum = o.momentum,
                                  .dampening = o.dampening,
                                  .weight_decay = std::max(0.0, o.weight_decay),
                                  .nesterov = o.nesterov});
  if (o.name == "adamw")
    return std::make_unique<optim::AdamW>(
        params, optim::AdamWOptions{.lr = o.lr,
                                    .beta1 = o.beta1,
                                    .beta2 = o.beta2,
                                    .eps = o.eps,
                                    .weight_decay = o.weight_decay < 0 ? 1e-2 : o.weight_decay,
                                    .amsgrad = o.amsgrad});
  if (o.name == "rmsprop")
    return std::make_unique<optim::RMSprop>(
        params, optim::RMSpropOptions{.lr = o.lr,
                                      .alpha = o.alpha,
                                      .eps = o.eps,
                                      .weight_decay = std::max(0.0, o.weight_decay),
                                      .momentum = o.momentum,
                                      .centered = o.centered});
  return std::make_unique<optim::Adam>(
      params, optim::AdamOptions{.lr = o.lr,
                                 .beta1 = o.beta1,
                                 .beta2 = o.beta2,
                                 .eps = o.eps,
                                 .weight_decay = std::max(0.0, o.weight_decay),
                                 .amsgrad = o.amsgrad});
}

std::vector<std::shared_ptr<Callback>> make_callbacks(const TrainingSpec& t, optim::Optimizer& opt,
                                                      const std::string& checkpoint_dir) {
  std::vector<std::shared_ptr<Callback>> cbs;
  const ScheduleSpec& s = t.schedule;
  if (s.type == "step") {
    cbs.push_back(lr_schedule(std::make_shared<optim::StepLR>(opt, s.step_size, s.gamma)));
  } else if (s.type == "exponential") {
    cbs.push_back(lr_schedule(std::make_shared<optim::ExponentialLR>(opt, s.gamma)));
  } else if (s.type == "cosine") {
    cbs.push_back(lr_schedule(std::make_shared<optim::CosineAnnealingLR>(
        opt, s.t_max > 0 ? s.t_max : t.epochs, s.eta_min)));
  } else if (s.type == "warmup") {
    // Epoch e < warmup_epochs uses base * (e + 1) / (warmup_epochs + 1), then base.
    const double start = 1.0 / static_cast<double>(s.warmup_epochs + 1);
    cbs.push_back(lr_schedule(std::make_shared<optim::LinearLR>(opt, start, 1.0, s.warmup_epochs)));
  } else if (s.type == "reduce_on_plateau") {
    cbs.push_back(reduce_on_plateau(
        {.monitor = s.monitor, .factor = s.factor, .patience = s.patience, .min_lr = s.min_lr}));
  }
  if (t.clip_norm > 0) cbs.push_back(clip_grad_norm(t.clip_norm));
  if (t.clip_value > 0) cbs.push_back(clip_grad_value(t.clip_value));
  const EarlyStoppingSpec& e = t.early_stopping;
  if (e.enabled)
    cbs.push_back(early_stopping({.monitor = e.monitor,
                                  .patience = e.patience,
                                  .min_delta = e.min_delta,
                                  .restore_best_weights = e.restore_best}));
  if (!checkpoint_dir.empty())
    cbs.push_back(checkpoint({.dir = checkpoint_dir, .every_steps = 0, .every_epochs = 1}));
  return cbs;
}

/// The dataset a spec's graph trains on: features under the model input's name, the loss
/// target as the graph wants it, and the classes under "target_class" for metrics.
data::Dataset training_view(const data::Dataset& d, const std::string& input, Task task,
                            const Normalization* norm) {
  data::Batch b;
  const Tensor& x = d["features"];
  b.emplace_back(input, norm ? data::apply_normalization(x, *norm) : x);
  const Tensor& y = d["target"];
  if (task == Task::binary) {
    b.emplace_back("target", y.to(DType::f32).reshape(Shape{y.dim(0), 1}));
    b.emplace_back("target_class", y);
  } else {
    b.emplace_back("target", y);
  }
  data::DatasetInfo info = d.info();
  info.features = input;
  info.target = task == Task::binary ? "target_class" : "target";
  return data::Dataset(std::move(b), std::move(info));
}

/// Copies the parameters (and buffers) of the model file `path` into `g` by name where the
/// shape and dtype agree; returns the names copied.
std::vector<std::string> warm_start(Graph& g, const std::string& path) {
  LoadedGraph from = load_graph(path);
  std::vector<std::string> copied;
  std::vector<Value> mine = g.parameters();
  for (const Value& v : g.buffers()) mine.push_back(v);
  for (const Value& v : mine) {
    if (!from.graph->contains(v.name())) continue;
    const Value src = from.graph->find(v.name());
    const Node& n = src.node();
    if (n.op != Op::parameter || n.shape != v.shape() || n.dtype != v.dtype()) continue;
    g.tensor(v).copy_from(from.graph->tensor(src));
    copied.push_back(v.name());
  }
  return copied;
}

/// The categorical columns of a CSV schema inside its feature row (one-hot groups or index
/// columns), at their offsets.
std::vector<monitor::CategoricalColumn> categorical_columns(const data::CsvSchema& schema) {
  std::vector<monitor::CategoricalColumn> out;
  const bool one_hot = schema.encoding == data::CategoryEncoding::one_hot;
  std::int64_t offset = 0;
  for (const data::CsvColumn& c : schema.features) {
    if (c.kind != data::ColumnKind::categorical) {
      offset += 1;
      continue;
    }
    out.push_back(
        {.name = c.name, .offset = offset, .categories = c.categories, .one_hot = one_hot});
    offset += one_hot ? static_cast<std::int64_t>(c.categories.size()) : 1;
  }
  return out;
}

/// The reference profile of a trained model (kiln::monitor::build_profile): the raw
/// training features, the schema's categorical columns and feature names, the model's
/// outputs on the test rows and its test metrics. None for inputs with more than
/// max_profile_features elements per row (large images: see docs/mlops.md).
std::optional<monitor::Profile> reference_profile(
    const data::Dataset& train, const data::CsvSchema& schema, const std::string& input,
    const std::string& output, Task task, const std::vector<std::string>& labels,
    const Tensor& test_outputs, const Evaluation& evaluation) {
  const Tensor& x = train["features"];
  if (x.numel() / std::max<std::int64_t>(1, x.dim(0)) > max_profile_features) return std::nullopt;
  monitor::ProfileInputs in{.input = input, .features = x};
  in.feature_names = schema.feature_names();
  in.categorical = categorical_columns(schema);
  if (test_outputs.numel() > 0) {
    in.predictions = test_outputs;
    in.predicted = task == Task::regression ? monitor::PredictionKind::values
                                            : monitor::PredictionKind::classes;
    in.output = output;
    if (task != Task::regression) in.labels = labels;
    for (const auto& [k, v] : evaluation.metrics) in.metrics.emplace_back(k, v);
  }
  return monitor::build_profile(in);
}

}  // namespace

void SpecTrainResult::save(const std::string& path) const {
  kiln::internal::write_file_atomically(path, model);
}

SpecTrainResult train_from_spec(const ModelSpec& spec_in, const std::string& csv_path,
                                const SpecTrainOptions& options) {
  SpecTrainResult result;
  ModelSpec spec = spec_in;
  if (!options.target.empty()) spec.task.target = options.target;
  if (options.seed) spec.training.seed = *options.seed;
  if (options.epochs) spec.training.epochs = *options.epochs;
  if (spec.task.target.empty())
    throw ValueError(
        "train_from_spec: no target column (give SpecTrainOptions::target or the "
        "spec's task.target)");
  if (spec.inputs.size() != 1)
    throw ValueError("train_from_spec: a CSV file feeds one input; the spec has " +
                     std::to_string(spec.inputs.size()));
  const TrainingSpec& t = spec.training;
  const Task task = spec.task.type;
  const std::string& input = spec.inputs[0].name;

  // Read, then hold out the test rows.
  data::CsvOptions csv;
  csv.target = spec.task.target;
  csv.task = task == Task::regression ? data::CsvTask::regression : data::CsvTask::classification;
  data::CsvData all = data::read_csv(csv_path, csv);
  const std::vector<std::string> labels = all.schema.labels;
  if (task == Task::binary && labels.size() != 2)
    throw DataError(csv_path + ": column '" + spec.task.target +
                    "': a binary task needs 2 classes, found " + std::to_string(labels.size()));
  data::Dataset train, test;
  if (!options.test_data.empty()) {
    train = all.dataset;
    test = data::read_csv_with_schema(options.test_data, all.schema, data::TargetColumn::required);
  } else if (t.test_split > 0) {
    std::tie(train, test) = data::split(
        all.dataset,
        {.test_fraction = t.test_split, .seed = t.seed, .stratify = task != Task::regression});
  } else {
    train = all.dataset;
  }
  result.train_rows = train.size();
  result.test_rows = test.size();
  result.train_data = train;
  result.test_data = test;
  result.labels = labels;

  // Preprocessing fitted on the training rows (numeric tabular features only).
  std::vector<Normalization> preprocessing;
  const bool image = all.schema.image_shape[0] != 0;
  if (spec.preprocessing.scaling != Scaling::none && !image) {
    Normalization norm = data::fit_scaling(train, spec.preprocessing.scaling == Scaling::minmax
                                                      ? data::Scaling::min_max
                                                      : data::Scaling::standardize);
    norm.input = input;  // the model input the features feed
    preprocessing.push_back(std::move(norm));
  }
  const data::Dataset train_view =
      training_view(train, input, task, preprocessing.empty() ? nullptr : &preprocessing[0]);

  // The model.
  std::vector<std::int64_t> row_shape(train["features"].shape().dims().begin() + 1,
                                      train["features"].shape().dims().end());
  BuiltModel m = build_model(spec, {.input_shapes = {{input, row_shape}},
                                    .classes = static_cast<std::int64_t>(labels.size()),
                                    .target = "target",
                                    .source = spec.name.empty() ? "spec" : spec.name});
  if (!options.initial_model.empty())
    result.warm_started = warm_start(*m.graph, options.initial_model);
  std::unique_ptr<optim::Optimizer> opt = make_optimizer(t.optimizer, *m.graph);

  SaveOptions save;
  save.inputs = m.inputs;
  save.outputs = {m.output};
  save.output_names = {m.output_name};
  save.metadata.name = spec.name;
  save.metadata.description = spec.description;
  if (task != Task::regression) save.metadata.labels = labels;
  save.metadata.preprocessing = preprocessing;
  save.metadata.extra.emplace_back("task", std::string(task_name(task)));
  save.metadata.extra.emplace_back("target", spec.task.target);
  save.metadata.extra.emplace_back("trained_on", csv_path);
  const std::string spec_json = spec.to_json();
  const std::string schema_json = all.schema.to_json();
  save.sections["kiln.spec"] = std::vector<std::uint8_t>(spec_json.begin(), spec_json.end());
  save.sections["kiln.data"] = std::vector<std::uint8_t>(schema_json.begin(), schema_json.end());
  save.creation_time = options.creation_time;
  dist::Communicator* const comm = options.communicator;
  if (comm && save.creation_time.empty()) {
    // One creation time for every rank, so that every rank's model file is the same bytes.
    save.creation_time = dist::broadcast_text(
        *comm, comm->rank() == 0 ? kiln::internal::utc_now() : std::string(), 0);
  }

  Trainer trainer(*m.graph, {.loss = m.loss,
                             .predictions = m.predictions,
                             .optimizer = opt.get(),
                             .metrics = spec.metric_names(),
                             .target = task == Task::binary ? "target_class" : "target",
                             .model = save,
                             .communicator = comm});
  std::vector<std::shared_ptr<Callback>> callbacks =
      make_callbacks(t, *opt, options.checkpoint_dir);
  callbacks.insert(callbacks.end(), options.callbacks.begin(), options.callbacks.end());
  if (options.resume && !options.checkpoint_dir.empty()) {
    // Data-parallel, rank 0 (which reads and writes the checkpoints) decides for all.
    std::vector<std::uint8_t> found{0};
    if (!comm || comm->rank() == 0) found[0] = latest_checkpoint(options.checkpoint_dir) ? 1 : 0;
    if (comm) comm->broadcast(found, 0);
    if (found[0]) trainer.resume(options.checkpoint_dir);
  }
  result.history = trainer.fit(train_view, {.epochs = t.epochs,
                                            .batch_size = t.batch_size,
                                            .seed = t.seed,
                                            .validation_split = t.validation_split,
                                            .callbacks = callbacks,
                                            .progress = options.progress,
                                            .progress_file = options.progress_file});

  // The model file, then its metrics on the test rows (from the file itself, as
  // evaluate_csv computes them) and the reference profile, stored in it.
  std::vector<std::uint8_t> bytes = serialize_model(*m.graph, save);
  Tensor test_outputs;
  if (!test.empty()) {
    const infer::Model model =
        infer::Model::load(bytes, "<trained model>", {.apply_preprocessing = true});
    Evaluation ev = internal::evaluate_dataset(model, test, spec, labels);
    for (const auto& [k, v] : ev.metrics) {
      result.test["test_" + k] = v;
      save.metadata.metrics.emplace_back("test_" + k, v);
    }
    test_outputs = internal::run_model(model, test);
    result.evaluation = std::move(ev);
  }
  if (std::optional<monitor::Profile> profile = reference_profile(
          train, all.schema, input, m.output_name, task, labels, test_outputs, result.evaluation))
    save.sections[monitor::profile_section] = profile->to_bytes();
  if (!test.empty() || save.sections.count(monitor::profile_section))
    bytes = serialize_model(*m.graph, save);
  result.model = std::move(bytes);
  result.spec = std::move(spec);
  return result;
}

}  // namespace kiln::train
