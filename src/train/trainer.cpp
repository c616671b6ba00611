// Trainer: construction, fit, evaluate, predict. Checkpoint pairs and resuming are in
// trainer_state.cpp.
#include "kiln/train/trainer.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "internal/text.hpp"
#include "kiln/core/error.hpp"
#include "kiln/data/loader.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/dist/data_parallel.hpp"
#include "kiln/train/metrics.hpp"
#include "train/progress.hpp"
#include "train/trainer_impl.hpp"

namespace kiln::train {
namespace {

// Hands each step to several callbacks' observers, in order.
class FanOut final : public RunObserver {
 public:
  explicit FanOut(const std::vector<RunObserver*>& observers) : observers_(observers) {}
  void on_step(const ObservedStep& step) override {
    for (RunObserver* o : observers_) o->on_step(step);
  }

 private:
  const std::vector<RunObserver*>& observers_;
};

std::vector<std::string> names_of(const data::Batch& tensors) {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors) out.push_back(name);
  return out;
}

std::string dataset_label(const data::Dataset& d) {
  return d.info().source.empty() ? std::string("the dataset") : "dataset '" + d.info().source + "'";
}

void check_positive(std::int64_t v, const char* what) {
  if (v < 1)
    throw ValueError(std::string("Trainer: ") + what + " must be at least 1, got " +
                     std::to_string(v));
}

// Graph values of the optimizer's parameters (matched by storage), in the optimizer's order.
std::vector<Value> optimizer_parameters(Graph& graph, const optim::Optimizer& opt) {
  std::vector<Value> params = graph.parameters();
  std::vector<Value> out;
  const auto& tensors = opt.parameters();
  const auto& names = opt.parameter_names();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Value* found = nullptr;
    for (const Value& p : params)
      if (graph.tensor(p).raw() == tensors[i].raw()) found = &p;
    if (!found)
      throw ValueError("Trainer: optimizer parameter '" + names[i] +
                       "' is not a trainable parameter of the graph (make the optimizer from "
                       "nn::named_parameters(graph))");
    out.push_back(*found);
  }
  return out;
}

}  // namespace

Callback::~Callback() = default;

std::vector<double> History::values(const std::string& key) const {
  std::vector<double> out;
  for (const Logs& logs : epochs) {
    auto it = logs.find(key);
    out.push_back(it == logs.end() ? std::numeric_limits<double>::quiet_NaN() : it->second);
  }
  return out;
}

std::vector<std::string> needed_inputs(const Graph& graph, const std::vector<Value>& outputs) {
  std::int32_t last = -1;
  for (const Value& v : outputs) last = std::max(last, v.id());
  std::vector<bool> needed(static_cast<std::size_t>(last + 1), false);
  for (const Value& v : outputs) needed[static_cast<std::size_t>(v.id())] = true;
  for (std::int32_t id = last; id >= 0; --id) {
    if (!needed[static_cast<std::size_t>(id)]) continue;
    for (auto i : graph.node(id).inputs) needed[static_cast<std::size_t>(i)] = true;
  }
  std::vector<std::string> out;
  for (std::int32_t id = 0; id <= last; ++id)
    if (needed[static_cast<std::size_t>(id)] && graph.node(id).op == Op::input)
      out.push_back(graph.node(id).name);
  return out;
}

Feeds feeds_for(const data::Batch& tensors, const std::vector<std::string>& inputs,
                const std::string& where, const std::string& source) {
  Feeds feeds;
  for (const std::string& name : inputs) {
    const auto* found = static_cast<const Tensor*>(nullptr);
    for (const auto& [n, t] : tensors)
      if (n == name) found = &t;
    if (!found)
      throw NameError("Trainer." + where + ": the graph needs input '" + name + "', which " +
                      source + " lacks (it has " + internal::quoted_list(names_of(tensors)) + ")");
    feeds.emplace_back(name, *found);
  }
  return feeds;
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  if (parts.empty()) return {};
  std::int64_t rows = 0;
  for (const Tensor& p : parts) rows += p.rank() == 0 ? 1 : p.dim(0);
  std::vector<std::int64_t> dims;
  for (std::size_t d = 0; d < parts[0].rank(); ++d) dims.push_back(parts[0].dim(d));
  if (dims.empty()) dims.push_back(0);
  dims[0] = rows;
  Tensor out = Tensor::empty(Shape(dims), parts[0].dtype());
  auto* dst = static_cast<std::uint8_t*>(out.raw());
  for (const Tensor& p : parts) {
    const Tensor c = p.contiguous();
    std::memcpy(dst, c.raw(), c.nbytes());
    dst += c.nbytes();
  }
  return out;
}

Trainer::Trainer(Graph& graph, TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (!options.loss.valid()) throw ValueError("Trainer: the loss is an empty Value");
  if (!options.predictions.valid()) throw ValueError("Trainer: the predictions are an empty Value");
  if (&options.loss.graph() != &graph)
    throw ValueError("Trainer: loss '" + options.loss.name() + "' belongs to another graph");
  if (&options.predictions.graph() != &graph)
    throw ValueError("Trainer: predictions '" + options.predictions.name() +
                     "' belong to another graph");
  if (!options.optimizer) throw ValueError("Trainer: no optimizer (TrainerOptions::optimizer)");
  for (const std::string& metric : options.metrics) {
    // An unknown name fails now rather than after the first epoch (a probe whose other
    // errors, such as shapes that do not suit the metric, say nothing about the name).
    try {
      (void)metrics::compute(metric, Tensor::from<float>({0.3f, 0.7f, 0.6f, 0.4f}, Shape({2, 2})),
                             Tensor::from<std::int32_t>({1, 0}, Shape({2})));
    } catch (const Error& e) {
      if (std::string(e.what()).find("unknown metric") != std::string::npos)
        throw ValueError(std::string("Trainer: ") + e.what());
    }
  }
  m.graph = &graph;
  m.options = std::move(options);
  TrainStepOptions so;
  so.parameters = optimizer_parameters(graph, *m.options.optimizer);
  if (!m.options.metrics.empty()) so.outputs = {m.options.predictions};
  so.backend = m.options.backend;
  so.check_finite = m.options.check_finite || m.options.detect_anomaly;
  so.detect_anomaly = m.options.detect_anomaly;
  m.step = std::make_unique<TrainStep>(m.options.loss, so);
  if (m.options.communicator && m.options.bucket_bytes == 0)
    throw ValueError("Trainer: bucket_bytes must be at least 1");
  m.loss_inputs = needed_inputs(graph, {m.options.loss});
  m.prediction_inputs = needed_inputs(graph, {m.options.predictions});
}

Trainer::~Trainer() = default;

Graph& Trainer::graph() { return *impl_->graph; }
optim::Optimizer& Trainer::optimizer() { return *impl_->options.optimizer; }
TrainStep& Trainer::step() { return *impl_->step; }
const TrainerOptions& Trainer::options() const { return impl_->options; }
std::int64_t Trainer::global_step() const { return impl_->position.step; }
std::int64_t Trainer::epoch() const { return impl_->position.epoch; }
std::int64_t Trainer::batches_per_epoch() const { return impl_->batches; }
TrainerPosition Trainer::position() const { return impl_->position; }
std::span<const std::shared_ptr<Callback>> Trainer::callbacks() const { return impl_->callbacks; }
void Trainer::stop() { impl_->stop = true; }
bool Trainer::stop_requested() const { return impl_->stop; }

namespace {

std::string target_name(const TrainerOptions& o, const data::Dataset& d) {
  return o.target.empty() ? d.info().target : o.target;
}

void check_target(const TrainerOptions& o, const data::Dataset& d, const std::string& target,
                  const char* where) {
  if (o.metrics.empty() || d.contains(target)) return;
  const std::string has = internal::quoted_list(names_of(d.tensors()));
  if (target.empty())
    throw NameError(std::string("Trainer.") + where + ": the metrics need a target tensor, and " +
                    dataset_label(d) +
                    " names none (set TrainerOptions::target or the "
                    "dataset's info().target; it has " +
                    has + ")");
  throw NameError(std::string("Trainer.") + where + ": the metrics need target '" + target +
                  "', which " + dataset_label(d) + " lacks (it has " + has + ")");
}

// Metrics of concatenated predictions against targets, under `prefix`.
void add_metrics(Logs& logs, const std::vector<std::string>& names, const Tensor& predictions,
                 const Tensor& targets, const std::string& prefix) {
  for (const std::string& name : names)
    logs[prefix + name] = metrics::compute(name, predictions, targets);
}

}  // namespace

Logs Trainer::evaluate(const data::Dataset& data, std::int64_t batch_size) {
  Impl& m = *impl_;
  check_positive(batch_size, "evaluate's batch_size");
  if (data.empty()) throw ValueError("Trainer.evaluate: " + dataset_label(data) + " has no rows");
  (void)feeds_for(data.tensors(), m.loss_inputs, "evaluate", dataset_label(data));
  const std::string target = target_name(m.options, data);
  check_target(m.options, data, target, "evaluate");
  if (!m.eval_exe)
    m.eval_exe = std::make_unique<Executable>(
        *m.graph, std::vector<Value>{m.options.loss, m.options.predictions},
        CompileOptions{.training = false, .backend = m.options.backend});
  double loss_sum = 0.0;
  std::vector<Tensor> predictions;
  for (std::int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const std::int64_t end = std::min(data.size(), begin + batch_size);
    const data::Dataset part = data.rows(begin, end);
    auto out =
        m.eval_exe->run_views(feeds_for(part.tensors(), m.loss_inputs, "evaluate", "the dataset"));
    loss_sum += out[0].item() * static_cast<double>(end - begin);
    if (!m.options.metrics.empty()) predictions.push_back(out[1].clone());
  }
  Logs logs;
  logs["loss"] = loss_sum / static_cast<double>(data.size());
  if (!m.options.metrics.empty())
    add_metrics(logs, m.options.metrics, concat_rows(predictions), data[target], "");
  return logs;
}

Tensor Trainer::predict(const data::Dataset& data, std::int64_t batch_size) {
  Impl& m = *impl_;
  check_positive(batch_size, "predict's batch_size");
  if (data.empty()) throw ValueError("Trainer.predict: " + dataset_label(data) + " has no rows");
  (void)feeds_for(data.tensors(), m.prediction_inputs, "predict", dataset_label(data));
  if (!m.predict_exe)
    m.predict_exe = std::make_unique<Executable>(
        *m.graph, std::vector<Value>{m.options.predictions},
        CompileOptions{.training = false, .backend = m.options.backend});
  std::vector<Tensor> parts;
  for (std::int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const std::int64_t end = std::min(data.size(), begin + batch_size);
    const data::Dataset part = data.rows(begin, end);
    auto out = m.predict_exe->run_views(
        feeds_for(part.tensors(), m.prediction_inputs, "predict", "the dataset"));
    parts.push_back(out[0].clone());
  }
  return concat_rows(parts);
}

History Trainer::fit(const data::Dataset& train, const FitOptions& fo) {
  Impl& m = *impl_;
  if (m.fitting) throw ValueError("Trainer.fit: already fitting (fit called from a callback)");
  if (fo.epochs < 0)
    throw ValueError("Trainer.fit: epochs must be >= 0, got " + std::to_string(fo.epochs));
  check_positive(fo.batch_size, "fit's batch_size");
  check_positive(fo.validation_batch_size, "fit's validation_batch_size");
  if (!(fo.validation_split >= 0.0 && fo.validation_split < 1.0))
    throw ValueError("Trainer.fit: validation_split must be in [0, 1), got " +
                     std::to_string(fo.validation_split));
  if (fo.validation_split > 0.0 && fo.validation)
    throw ValueError("Trainer.fit: give validation_split or a validation dataset, not both");
  if (train.empty()) throw ValueError("Trainer.fit: " + dataset_label(train) + " has no rows");
  for (const auto& cb : fo.callbacks)
    if (!cb) throw ValueError("Trainer.fit: a callback is null");
  (void)feeds_for(train.tensors(), m.loss_inputs, "fit", dataset_label(train));
  const std::string target = target_name(m.options, train);
  const bool with_metrics = !m.options.metrics.empty();
  check_target(m.options, train, target, "fit");

  // The validation split: seeded, stratified for an integer target.
  data::Dataset train_part, val_part;
  const data::Dataset* fit_set = &train;
  const data::Dataset* val_set = fo.validation;
  if (fo.validation_split > 0.0) {
    // data::split stratifies by info().target: only when that is the metrics' target.
    const std::string& info_target = train.info().target;
    const bool stratify = train.contains(info_target) && target == info_target &&
                          !is_floating(train[info_target].dtype());
    std::tie(train_part, val_part) = data::split(
        train, {.test_fraction = fo.validation_split, .seed = fo.seed, .stratify = stratify});
    fit_set = &train_part;
    val_set = &val_part;
  }

  // Data-parallel: this rank's shard of every epoch; a global batch is the k-th batch of
  // every shard.
  dist::Communicator* const comm = m.comm();
  const std::int64_t world = m.world();
  data::Loader loader(*fit_set, {.batch_size = fo.batch_size,
                                 .shuffle = fo.shuffle,
                                 .seed = fo.seed,
                                 .drop_last = fo.drop_last,
                                 .shard_index = m.rank(),
                                 .shard_count = world});
  m.batches = loader.batches();
  if (!m.resumed) {
    m.position.epoch = 0;
    m.position.batch = 0;
    m.stop = false;
    m.history = {};
    m.sums.clear();
    m.epoch_rows = 0;
  } else if (m.saved_world != world && m.epoch_rows >= 0) {
    // A checkpoint of another number of ranks: continue at the first global batch of this
    // fit that was not fully trained (its rows before the checkpoint's position are seen
    // again). The epoch's order is the same for any number of ranks.
    const std::int64_t consumed = m.epoch_rows;
    const std::int64_t global_batch = fo.batch_size * world;
    // Rows this fit trains per epoch (every row, or whole global batches only).
    const std::int64_t epoch_total = fo.drop_last ? m.batches * global_batch : fit_set->size();
    if (consumed >= epoch_total) {
      m.position.batch = m.batches;
      m.epoch_rows = consumed;
    } else {
      m.position.batch = consumed / global_batch;
      m.epoch_rows = m.position.batch * global_batch;
    }
  }
  // A checkpoint written before epoch_rows was saved continues at its batch index.
  if (m.epoch_rows < 0) m.epoch_rows = m.position.batch * fo.batch_size * world;
  if (m.position.batch > m.batches)
    throw ValueError("Trainer.fit: the checkpoint continues at batch " +
                     std::to_string(m.position.batch) + " of an epoch, but this dataset has " +
                     std::to_string(m.batches) + " batches per epoch");
  if (comm) {
    // Every rank must run this same fit: a difference would leave ranks waiting for each
    // other, so it is an error on every rank now. (Callbacks may differ: rank 0 alone may
    // record the run.)
    double split = fo.validation_split;
    std::int64_t split_bits = 0;
    std::memcpy(&split_bits, &split, sizeof split);
    m.check_same_fit({{"training rows", fit_set->size()},
                      {"validation rows", val_set ? val_set->size() : -1},
                      {"batches per epoch", m.batches},
                      {"epochs", fo.epochs},
                      {"seed", static_cast<std::int64_t>(fo.seed)},
                      {"shuffle", fo.shuffle ? 1 : 0},
                      {"validation_split bits", split_bits},
                      {"metrics", static_cast<std::int64_t>(m.options.metrics.size())},
                      {"resumed", m.resumed ? 1 : 0},
                      {"epoch", m.position.epoch},
                      {"batch", m.position.batch},
                      {"step", m.position.step}});
    if (!m.data_parallel)
      m.data_parallel = std::make_unique<dist::DataParallel>(
          *m.step, *comm, dist::DataParallelOptions{.bucket_bytes = m.options.bucket_bytes});
    m.data_parallel->broadcast_parameters();
  }
  m.callbacks = fo.callbacks;
  m.fitting = true;
  FitOptions shown = fo;
  if (m.rank() != 0) shown.progress = Progress::none;
  ProgressReporter progress(shown);
  optim::Optimizer& opt = *m.options.optimizer;
  std::vector<Tensor> buffer_backup;
  std::vector<Value> buffers = m.graph->buffers();
  std::vector<RunObserver*> observers;
  FanOut fan_out(observers);

  auto end_fit = [&](bool error) {
    progress.finish();
    for (const auto& cb : m.callbacks) cb->on_fit_end(*this, error);
    m.fitting = false;
    m.resumed = false;
    m.callback_states.clear();
    m.callbacks.clear();
    m.batches = 0;
  };

  try {
    for (const auto& cb : m.callbacks) cb->on_fit_begin(*this);
    if (m.resumed) {
      for (std::size_t i = 0; i < m.callbacks.size(); ++i) {
        const std::string key = std::to_string(i) + "." + m.callbacks[i]->kind();
        auto it = m.callback_states.find(key);
        if (it != m.callback_states.end()) {
          m.callbacks[i]->load_state(it->second);
          m.callback_states.erase(it);
        }
      }
      if (!m.callback_states.empty())
        throw ValueError("Trainer.fit: the checkpoint holds the state of callback '" +
                         m.callback_states.begin()->first +
                         "' (position.kind), which this fit's callbacks lack");
    }
    while (m.position.epoch < fo.epochs && !m.stop) {
      const std::int64_t epoch = m.position.epoch;
      if (m.position.batch == 0) {
        m.sums.clear();
        m.epoch_rows = 0;
        for (const auto& cb : m.callbacks) cb->on_epoch_begin(*this, epoch);
      }
      loader.set_epoch(epoch, m.position.batch);
      progress.epoch_begin(epoch, fo.epochs, m.batches, m.position.batch);
      while (auto batch = loader.next()) {
        const std::int64_t step = m.position.step;
        const Feeds feeds = feeds_for(*batch, m.loss_inputs, "fit", dataset_label(train));
        for (const auto& cb : m.callbacks) cb->on_step_begin(*this, step);
        observers.clear();
        for (const auto& cb : m.callbacks)
          if (RunObserver* o = cb->observer(*this, step)) observers.push_back(o);
        if (m.options.check_finite && !buffers.empty()) {
          buffer_backup.clear();
          for (const Value& b : buffers) buffer_backup.push_back(m.graph->tensor(b).clone());
        }
        double loss = 0.0;
        std::int64_t rows = batch->front().second.dim(0);
        RunObserver* const observer = observers.size() == 1 ? observers.front()
                                      : observers.empty()   ? nullptr
                                                            : &fan_out;
        try {
          if (comm) {
            // The global mean loss; the gradients are averaged over the ranks.
            loss = m.data_parallel->run(feeds, observer);
            rows = m.data_parallel->global_rows();
          } else {
            loss = m.step->run(feeds, observer);
          }
        } catch (const NonFiniteError& e) {
          // Batch norm's running statistics changed in the forward pass: put them back too.
          for (std::size_t i = 0; i < buffer_backup.size(); ++i)
            m.graph->tensor(buffers[i]).copy_from(buffer_backup[i]);
          throw NonFiniteError("Trainer.fit: step " + std::to_string(step) + " (epoch " +
                               std::to_string(epoch) + ", batch " +
                               std::to_string(m.position.batch) +
                               "; the weights are those before it): " + e.what());
        }
        // Data-parallel: the gradients averaged over the ranks.
        const std::span<const Tensor> grads =
            comm ? m.data_parallel->gradients() : m.step->gradients();
        for (const auto& cb : m.callbacks) cb->on_gradients(*this, grads);
        opt.step(grads);
        m.sums.loss_sum += loss * static_cast<double>(rows);
        m.sums.rows += rows;
        m.epoch_rows += rows;
        if (with_metrics) {
          // Data-parallel, this rank's rows wait for the next gather.
          auto& predictions = comm ? m.sums.local_predictions : m.sums.predictions;
          auto& targets = comm ? m.sums.local_targets : m.sums.targets;
          predictions.push_back(m.step->outputs()[0].clone());
          for (const auto& [name, t] : *batch)
            if (name == target) targets.push_back(t);
        }
        ++m.position.step;
        ++m.position.batch;
        progress.step(m.position.batch, loss);
        const Logs step_logs{{"loss", loss}, {"lr", opt.lr()}};
        for (const auto& cb : m.callbacks) cb->on_step_end(*this, step, step_logs);
        for (const auto& cb : m.callbacks) cb->on_step_complete(*this, step);
      }
      m.gather_epoch_outputs();
      Logs logs;
      logs["loss"] = m.sums.rows > 0 ? m.sums.loss_sum / static_cast<double>(m.sums.rows)
                                     : std::numeric_limits<double>::quiet_NaN();
      if (with_metrics && !m.sums.predictions.empty())
        add_metrics(logs, m.options.metrics, concat_rows(m.sums.predictions),
                    concat_rows(m.sums.targets), "");
      if (val_set) {
        for (const auto& [k, v] : evaluate(*val_set, fo.validation_batch_size))
          logs["val_" + k] = v;
      }
      logs["lr"] = opt.lr();
      m.agree_on_logs(logs);  // validation ran on each rank alone
      for (const auto& cb : m.callbacks) cb->on_epoch_end(*this, epoch, logs);
      m.history.epochs.push_back(logs);
      progress.epoch_end(epoch, fo.epochs, logs);
      m.position.epoch = epoch + 1;
      m.position.batch = 0;
      m.epoch_rows = 0;
      m.sums.clear();
      for (const auto& cb : m.callbacks) cb->on_epoch_complete(*this, epoch);
      m.stop = m.agree_on_stop(m.stop);  // one decision for every rank
    }
  } catch (...) {
    end_fit(true);
    throw;
  }
  end_fit(false);
  return m.history;
}

}  // namespace kiln::train
