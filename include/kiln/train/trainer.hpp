// Trainer: fit, evaluate and predict for a graph with a loss, over kiln::data datasets,
// built on TrainStep, the optimizers and the LR schedules (a custom loop can do all of
// it by hand; this is the short way).
//
//   kiln::Graph g;  ... x = g.input("features", ...), y = g.input("target", ...), logits, loss
//   kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 1e-2});
//   kiln::train::Trainer trainer(g, {.loss = loss, .predictions = logits, .optimizer = &opt,
//                                    .metrics = {"accuracy"}});
//   auto history = trainer.fit(train, {.epochs = 50, .batch_size = 16, .seed = 1,
//                                      .validation_split = 0.1,
//                                      .callbacks = {kiln::train::early_stopping({.patience =
//                                      5})}});
//   auto scores = trainer.evaluate(test);       // {"loss": .., "accuracy": ..}
//   kiln::Tensor logits_out = trainer.predict(test);
//
// Dataset tensors feed the graph inputs of the same name.
// (Draft contract: the trainer helper owns this header and completes it.)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln::train {

class Trainer;

/// Metric values by name ("loss", "accuracy", "val_loss", "val_accuracy", "lr", ...).
using Logs = std::map<std::string, double>;

/// Hooks into fit(); every method has an empty default.
class KILN_API Callback {
 public:
  virtual ~Callback();
  virtual void on_fit_begin(Trainer&) {}
  virtual void on_epoch_begin(Trainer&, std::int64_t /*epoch*/) {}
  /// After the backward pass, before the optimizer step: gradients may be changed in place.
  virtual void on_gradients(Trainer&, std::span<const Tensor> /*gradients*/) {}
  /// After the optimizer step; logs hold "loss" and "lr" of the step.
  virtual void on_step_end(Trainer&, std::int64_t /*step*/, const Logs&) {}
  /// After validation; logs hold the epoch's train and validation metrics.
  virtual void on_epoch_end(Trainer&, std::int64_t /*epoch*/, Logs&) {}
  virtual void on_fit_end(Trainer&) {}
};

struct TrainerOptions {
  /// The scalar loss; graph inputs it needs are fed from dataset tensors of the same name.
  Value loss;
  /// What predict() returns and metrics are computed from (logits, probabilities or a
  /// regression output).
  Value predictions;
  /// Updates the parameters (made from nn::named_parameters(graph)); not owned.
  optim::Optimizer* optimizer = nullptr;
  /// Metric names (see kiln::metrics::compute) reported by fit() and evaluate().
  std::vector<std::string> metrics = {};
  std::string backend = {};
};

enum class Progress { automatic, bar, lines, none };

struct FitOptions {
  std::int64_t epochs = 10;
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;
  /// Share of the training rows held out for validation (seeded), or a validation set.
  double validation_split = 0.0;
  const data::Dataset* validation = nullptr;
  std::vector<std::shared_ptr<Callback>> callbacks = {};
  /// automatic: a progress bar on a terminal, a line per epoch otherwise.
  Progress progress = Progress::automatic;
};

struct History {
  std::vector<Logs> epochs;
};

class KILN_API Trainer {
 public:
  Trainer(Graph& graph, TrainerOptions options);
  ~Trainer();

  History fit(const data::Dataset& train, const FitOptions& options = {});
  Logs evaluate(const data::Dataset& data, std::int64_t batch_size = 256);
  Tensor predict(const data::Dataset& data, std::int64_t batch_size = 256);
  /// Asks fit() to stop after the current epoch (e.g. from a callback).
  void stop();

  Graph& graph();
  optim::Optimizer& optimizer();
  TrainStep& step();
  std::int64_t global_step() const;
  std::int64_t epoch() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::train
