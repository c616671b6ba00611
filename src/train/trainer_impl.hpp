// Internal: the Trainer's state, shared by trainer.cpp (fit, evaluate, predict),
// trainer_state.cpp (checkpoint pairs, resume) and trainer_dist.cpp (what data-parallel
// training adds: gathering the epoch's predictions, agreeing on errors and logs).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/dist/data_parallel.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/checkpoint.hpp"
#include "kiln/train/trainer.hpp"
#include "train/collective.hpp"

namespace kiln::train {

/// Named tensors: the trainer's part of a checkpoint ("trainer.*", "history.*",
/// "callback.*", "pair.*").
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// Sums of the epoch so far (a resumed fit continues them). Data-parallel, loss_sum and
/// rows are over all ranks' rows, and predictions/targets hold the batches of all ranks
/// gathered so far, in the epoch's (unsharded) row order; this rank's batches since the
/// last gather wait in local_predictions/local_targets (Impl::gather_epoch_outputs).
struct EpochSums {
  double loss_sum = 0.0;  // sum of batch loss * batch rows
  std::int64_t rows = 0;
  std::vector<Tensor> predictions;  // per batch, when metrics are asked for
  std::vector<Tensor> targets;
  std::vector<Tensor> local_predictions;
  std::vector<Tensor> local_targets;
  void clear() { *this = EpochSums{}; }
};

struct Trainer::Impl {
  Graph* graph = nullptr;
  TrainerOptions options;
  std::unique_ptr<TrainStep> step;
  std::unique_ptr<Executable> eval_exe;     // {loss, predictions}, evaluation mode
  std::unique_ptr<Executable> predict_exe;  // {predictions}
  std::vector<std::string> loss_inputs;     // graph inputs the loss needs
  std::vector<std::string> prediction_inputs;

  TrainerPosition position;
  bool stop = false;
  History history;
  EpochSums sums;
  std::vector<std::shared_ptr<Callback>> callbacks;  // of the running fit
  std::int64_t batches = 0;
  bool fitting = false;

  // Set by resume(), used by the next fit().
  bool resumed = false;
  std::map<std::string, CallbackState> callback_states;  // by "<index>.<kind>"

  // Rows of the current epoch's order trained so far (all ranks' batches), saved as
  // "trainer.epoch_rows": where a fit with another number of ranks continues. -1: unknown
  // (a checkpoint written before it was saved).
  std::int64_t epoch_rows = 0;
  // The number of ranks that wrote the checkpoint resume() read ("dist.world_size", 1
  // when absent).
  std::int64_t saved_world = 1;
  // Data-parallel training (TrainerOptions::communicator); made by the first fit.
  std::unique_ptr<dist::DataParallel> data_parallel;

  /// The communicator, or null when training alone.
  dist::Communicator* comm() const { return options.communicator; }
  /// 0 alone.
  int rank() const;
  /// 1 alone.
  int world() const;

  /// The trainer's state for a checkpoint (position, sums, history, callbacks).
  NamedTensors trainer_state() const;
  /// Restores trainer_state()'s output; `source` names the checkpoint in errors.
  void load_trainer_state(const NamedTensors& state, const std::string& source);
  /// The model file's bytes (TrainerOptions::model with defaults); ValueError for
  /// non-finite weights.
  std::vector<std::uint8_t> model_bytes() const;
  /// Restores the checkpoint `path` names (a file, or a folder's newest pair that loads;
  /// the model file must match it) and returns the checkpoint file's path; its bytes go
  /// to `checkpoint_bytes` when given.
  std::string restore_pair(const std::string& path, std::vector<std::uint8_t>* checkpoint_bytes);
  /// The trainer state of a restored checkpoint; then the next fit continues it.
  void finish_restore(const CheckpointInfo& info, const std::string& source);

  // trainer_dist.cpp ----------------------------------------------------------------------
  /// Collective (with a communicator and metrics): appends every rank's local predictions
  /// and targets to sums.predictions/targets in the epoch's row order and clears the local
  /// ones. Nothing alone.
  void gather_epoch_outputs();
  /// Collective: makes every rank's logs rank 0's (validation runs on each rank alone).
  void agree_on_logs(Logs& logs) const;
  /// Collective: true on every rank when any rank asked to stop.
  bool agree_on_stop(bool stop) const;
  /// Collective: throws DistributedError on every rank when a rank's fit differs from
  /// rank 0's in what every rank must share (`facts`: name and value).
  void check_same_fit(const std::vector<std::pair<std::string, std::int64_t>>& facts) const;
};

/// Graph inputs (names, in graph order) that `outputs` depend on.
std::vector<std::string> needed_inputs(const Graph& graph, const std::vector<Value>& outputs);
/// The dataset's tensors that feed `inputs`; NameError naming the input, `what` needs it
/// for, and the dataset's tensors when one is missing.
Feeds feeds_for(const data::Batch& tensors, const std::vector<std::string>& inputs,
                const std::string& where, const std::string& source);
/// Rows of same-shaped tensors stacked along dimension 0.
Tensor concat_rows(const std::vector<Tensor>& parts);
/// "ckpt-000000000012.kiln" / "model-000000000012.kiln".
std::string checkpoint_file_name(std::int64_t step);
std::string model_file_name(std::int64_t step);

}  // namespace kiln::train
