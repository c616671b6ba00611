// Internal: the Trainer's state, shared by trainer.cpp (fit, evaluate, predict) and
// trainer_state.cpp (checkpoint pairs, resume).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/runtime/executable.hpp"
#include "kiln/train/trainer.hpp"

namespace kiln::train {

/// Named tensors: the trainer's part of a checkpoint ("trainer.*", "history.*",
/// "callback.*", "pair.*").
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

/// Sums of the epoch so far (a resumed fit continues them).
struct EpochSums {
  double loss_sum = 0.0;  // sum of batch loss * batch rows
  std::int64_t rows = 0;
  std::vector<Tensor> predictions;  // per batch, when metrics are asked for
  std::vector<Tensor> targets;
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

  /// The trainer's state for a checkpoint (position, sums, history, callbacks).
  NamedTensors trainer_state() const;
  /// Restores trainer_state()'s output; `source` names the checkpoint in errors.
  void load_trainer_state(const NamedTensors& state, const std::string& source);
  /// The model file's bytes (TrainerOptions::model with defaults); ValueError for
  /// non-finite weights.
  std::vector<std::uint8_t> model_bytes() const;
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
