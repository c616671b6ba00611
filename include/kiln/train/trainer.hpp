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
//                                      .callbacks = {kiln::train::early_stopping(
//                                          {.patience = 5, .restore_best_weights = true})}});
//   kiln::train::Logs scores = trainer.evaluate(test);   // {"loss": .., "accuracy": ..}
//   kiln::Tensor logits_out = trainer.predict(test);
//
// Feeds. Dataset tensors whose names are graph inputs feed those inputs; other tensors
// are ignored. A graph input the loss (fit, evaluate) or the predictions (predict) need
// that the dataset lacks is a NameError naming both. Metrics compare the predictions with
// the dataset's target tensor (TrainerOptions::target, or the dataset's info().target).
//
// Modes. fit() trains with a TrainStep (dropout on, batch norm on batch statistics);
// evaluate() and predict() run an Executable compiled without training (dropout off,
// batch norm on its running statistics). Both share the graph's parameter storage.
//
// Checkpoints and resuming. save_checkpoint(dir) writes the model file and the checkpoint
// of the same step as one pair: "model-<step>.kiln" first, then "ckpt-<step>.kiln", which
// records the model file's SHA-256 and is the commit point (see latest_checkpoint). The
// checkpoint holds the parameters, buffers, optimizer state, the TrainStep's run counter
// (dropout masks), the epoch and batch to continue from, the epoch's partial loss and
// metric sums, the history so far and every callback's state. resume(path) restores all
// of it, and the next fit() with the same datasets and FitOptions continues where the
// saved one stopped: the result is bitwise what a fit that never stopped gives.
//
// Data-parallel training. With TrainerOptions::communicator (e.g. kiln::dist::init's, from
// Kiln::kiln_mpi), every rank runs the same program: fit() broadcasts rank 0's parameters
// and buffers (verified by checksum), each rank reads its shard of every epoch
// (LoaderOptions::shard_index/shard_count; FitOptions::batch_size is per rank), gradients
// are averaged over the ranks (kiln::dist::DataParallel: buckets, overlapping backward)
// before callbacks' on_gradients and the optimizer step, batch norm's running statistics
// are averaged after every step, and the epoch's loss and metrics are those of all ranks'
// rows (validation runs on every rank over the whole validation set). Logs, history and
// callback decisions are the same on every rank. save_checkpoint and save_model are
// collective: every rank calls them, rank 0 writes, and an error writing is thrown on
// every rank. resume(path) is collective too: rank 0 reads the files and sends them, so
// other ranks need no shared file system; a checkpoint saved by another number of ranks
// continues at the first global batch not fully trained, floor(rows of the epoch trained /
// (batch_size x ranks)) (rows of a partly trained one are trained again and count twice in
// that epoch's loss and metrics). A stop() on any rank stops every rank after the epoch.
// evaluate() and predict() are not collective (this rank alone). Only rank 0 shows
// progress. Files other callbacks write are the caller's: add a run recorder
// (kiln::report::record) on rank 0 only (see docs/distributed.md).
//
// A non-finite loss (or gradient) stops fit() with kiln::NonFiniteError by default; the
// weights are those before the bad step, and no checkpoint or model with them is written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln::dist {
class Communicator;
}  // namespace kiln::dist

namespace kiln::train {

class Trainer;

/// Metric values by name ("loss", "accuracy", "val_loss", "val_accuracy", "lr", ...).
using Logs = std::map<std::string, double>;

/// What a callback keeps across checkpoints, by name (scalars as 0-d or 1-element tensors,
/// copies of weights as tensors). Saved with Trainer::save_checkpoint, handed back by
/// Callback::load_state when a resumed fit begins.
using CallbackState = std::vector<std::pair<std::string, Tensor>>;

/// Hooks into fit(); every method has an empty default. Steps count optimizer steps from
/// 0 over the whole fit (Trainer::global_step), epochs count from 0.
class KILN_API Callback {
 public:
  virtual ~Callback();
  /// A short kind ("early_stopping", ...): with the callback's position in
  /// FitOptions::callbacks it names the callback's state in a checkpoint.
  virtual std::string kind() const { return "callback"; }

  virtual void on_fit_begin(Trainer&) {}
  virtual void on_epoch_begin(Trainer&, std::int64_t /*epoch*/) {}
  /// Before the step's forward pass (e.g. to set a per-step learning rate).
  virtual void on_step_begin(Trainer&, std::int64_t /*step*/) {}
  /// After on_step_begin: an observer to see this step's forward and backward values
  /// (see RunObserver), or null (the default: the step runs unobserved). Several
  /// callbacks' observers are called in the callbacks' order.
  virtual RunObserver* observer(Trainer&, std::int64_t /*step*/) { return nullptr; }
  /// After the backward pass, before the optimizer step: gradients may be changed in place.
  virtual void on_gradients(Trainer&, std::span<const Tensor> /*gradients*/) {}
  /// After the optimizer step; logs hold "loss" and "lr" of the step.
  virtual void on_step_end(Trainer&, std::int64_t /*step*/, const Logs&) {}
  /// After validation; logs hold the epoch's train and validation metrics and "lr" (a
  /// callback may add entries; they go into the History).
  virtual void on_epoch_end(Trainer&, std::int64_t /*epoch*/, Logs&) {}
  /// After every callback's on_step_end / on_epoch_end: the trainer's state is now that of
  /// a fit continuing with the next step / epoch, so this is where checkpoints are taken.
  virtual void on_step_complete(Trainer&, std::int64_t /*step*/) {}
  virtual void on_epoch_complete(Trainer&, std::int64_t /*epoch*/) {}
  /// After the last epoch (or a stop, or an error: then `error` is true and the callback
  /// should only release what it holds).
  virtual void on_fit_end(Trainer&, bool /*error*/) {}

  /// State that affects training, saved in checkpoints (names without '/').
  virtual CallbackState state() const { return {}; }
  /// Restores a state() taken from a callback of the same kind and options; called after
  /// on_fit_begin of a resumed fit. Throws ValueError for a state that does not fit.
  virtual void load_state(const CallbackState&) {}
};

struct TrainerOptions {
  /// The scalar loss; graph inputs it needs are fed from dataset tensors of the same name.
  Value loss = {};
  /// What predict() returns and metrics are computed from (logits, probabilities or a
  /// regression output).
  Value predictions = {};
  /// Updates the parameters (made from nn::named_parameters(graph)); not owned.
  optim::Optimizer* optimizer = nullptr;
  /// Metric names (see kiln::metrics::compute) reported by fit() and evaluate().
  std::vector<std::string> metrics = {};
  /// The dataset tensor metrics compare predictions with; empty: the dataset's
  /// info().target.
  std::string target = {};
  /// Kernel backend restriction (see CompileOptions::backend).
  std::string backend = {};
  /// Stop with NonFiniteError when a step's loss or gradients are NaN or infinite (before
  /// the optimizer step). Off: the step is taken anyway.
  bool check_finite = true;
  /// On a non-finite loss or gradient, name the op and layer that first produced it
  /// (TrainStepOptions::detect_anomaly; slow, for debugging).
  bool detect_anomaly = false;
  /// How save_checkpoint() / save_model() write the model file: inputs (default: the graph
  /// inputs the predictions need), outputs (default: the predictions), metadata and
  /// sections. The creation time can be fixed here for byte-identical files.
  SaveOptions model = {};
  /// Train data-parallel over these ranks (not owned; see "Data-parallel training" above);
  /// null: this process alone.
  dist::Communicator* communicator = nullptr;
  /// Gradient bucket size for data-parallel training (DataParallelOptions::bucket_bytes).
  std::size_t bucket_bytes = std::size_t{4} << 20;
};

enum class Progress { automatic, bar, lines, none };

struct FitOptions {
  std::int64_t epochs = 10;
  std::int64_t batch_size = 32;
  /// Seeds the per-epoch shuffle and the validation split.
  std::uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;
  /// Share of the training rows held out for validation (seeded; stratified by the target
  /// when it is an integer tensor), or a validation set (then validation_split must be 0).
  double validation_split = 0.0;
  const data::Dataset* validation = nullptr;
  /// Rows per batch when validating (evaluate's batch size).
  std::int64_t validation_batch_size = 256;
  /// Called in order (see Callback); their state is saved in checkpoints.
  std::vector<std::shared_ptr<Callback>> callbacks = {};
  /// automatic: a progress bar when the output is a terminal, a line per epoch otherwise.
  Progress progress = Progress::automatic;
  /// Where progress goes: `progress_stream` if set, else `progress_file` (stderr if null).
  std::ostream* progress_stream = nullptr;
  std::FILE* progress_file = nullptr;
};

struct History {
  /// One entry per finished epoch (including those before a resume).
  std::vector<Logs> epochs = {};
  /// The values of one key over the epochs (NaN where an epoch lacks it).
  std::vector<double> values(const std::string& key) const;
};

/// Where a fit stands: the next epoch and batch, and the optimizer steps taken.
struct TrainerPosition {
  std::int64_t epoch = 0;
  std::int64_t batch = 0;
  std::int64_t step = 0;
};

/// One checkpoint/model pair written by Trainer::save_checkpoint.
struct CheckpointPair {
  std::string checkpoint = {};  ///< ".../ckpt-<step>.kiln"
  std::string model = {};       ///< ".../model-<step>.kiln"
  std::int64_t step = 0;
};

struct CheckpointPairOptions {
  /// Keep this many newest pairs in the folder and remove older ones (0: keep all).
  std::int64_t keep_last = 3;
};

/// The newest pair in `dir` whose checkpoint and model files are complete (their
/// envelopes and checksums hold); older pairs are tried when a newer one is not (e.g. after
/// a crash mid-save). nullopt if there is none. (Trainer::resume also checks that the model
/// file is the one saved with the checkpoint.)
KILN_API std::optional<CheckpointPair> latest_checkpoint(const std::string& dir);

class KILN_API Trainer {
 public:
  /// Throws ValueError for an empty loss or predictions, values of another graph, no
  /// optimizer, or an optimizer whose parameters are not the graph's trainable parameters.
  Trainer(Graph& graph, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains for options.epochs epochs (counting the epochs of a resumed fit) and returns
  /// the per-epoch logs. Throws what a step throws (NonFiniteError for a non-finite loss),
  /// NameError for a graph input the dataset lacks, ValueError for bad options.
  History fit(const data::Dataset& train, const FitOptions& options = {});
  /// Loss and metrics over a dataset (batched, evaluation mode). The loss is the mean of
  /// the batch losses weighted by their rows (the dataset mean for a mean loss).
  Logs evaluate(const data::Dataset& data, std::int64_t batch_size = 256);
  /// The predictions for every row (batched, evaluation mode, concatenated). Only the
  /// inputs the predictions need must be in the dataset.
  Tensor predict(const data::Dataset& data, std::int64_t batch_size = 256);
  /// Asks fit() to stop after the current epoch (e.g. from a callback).
  void stop();
  bool stop_requested() const;

  /// Writes the model file and the checkpoint of the current step as one pair into `dir`
  /// (created if missing), removes pairs beyond options.keep_last and returns the pair.
  /// Throws IoError naming the file, NonFiniteError for non-finite weights.
  CheckpointPair save_checkpoint(const std::string& dir, const CheckpointPairOptions& options = {});
  /// Writes the model file (TrainerOptions::model) to `path` atomically.
  void save_model(const std::string& path);
  /// Restores a checkpoint written by save_checkpoint: `path` is a checkpoint file or a
  /// folder (its latest_checkpoint). Parameters, buffers, optimizer, run counter and
  /// position are restored now; callback states when the next fit() begins. Throws
  /// IoError / FormatError for a missing or bad file, ValueError when a folder holds no
  /// complete pair or the model file does not match the checkpoint.
  TrainerPosition resume(const std::string& path);

  Graph& graph();
  optim::Optimizer& optimizer();
  TrainStep& step();
  const TrainerOptions& options() const;
  /// Optimizer steps taken by fit() so far (across resumes).
  std::int64_t global_step() const;
  /// The epoch being trained (or next to train).
  std::int64_t epoch() const;
  /// Batches per epoch of the running fit (0 outside fit()).
  std::int64_t batches_per_epoch() const;
  TrainerPosition position() const;
  /// The callbacks of the running fit (empty outside fit()).
  std::span<const std::shared_ptr<Callback>> callbacks() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::train
