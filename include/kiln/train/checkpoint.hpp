// Training checkpoints: parameters and buffers by name, optimizer state, step, RNG state,
// the TrainStep's run counter (dropout masks follow it) and named extra state of the
// training loop, in the model file's envelope (magic "KCKP", format version, payload
// length, SHA-256), written atomically.
//
//   kiln::save_checkpoint("run/ckpt.kiln", g,
//                         {.optimizer = &opt, .rng = &rng, .step = step, .train_step = &ts,
//                          .extra = {{"epoch", kiln::Tensor::scalar(epoch)}}});
//   ...
//   auto info = kiln::load_checkpoint("run/ckpt.kiln", g,
//                                     {.optimizer = &opt, .rng = &rng, .train_step = &ts});
//   step = info.step;  // info.extra holds "epoch"
//
// With the same batches after it, a run resumed from a checkpoint that has all of these
// computes bitwise what the run that never stopped computes.
//
// Loading checks every name, shape and dtype (and the optimizer's kind and state) before
// anything is written: on any error the graph, optimizer and RNG are unchanged.
//
// Everything is matched by name, the optimizer's state too: its entries are saved under the
// name of the graph parameter each optimizer parameter shares storage with ("fc1.weight.
// exp_avg"), so a checkpoint loads into a graph whose parameters were created in another
// order, with an optimizer made from nn::named_parameters or from plain tensors alike.
// (Format version 1 named them by the optimizer's parameter positions; still readable.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/optim/optimizer.hpp"

namespace kiln {

class TrainStep;

/// The newest checkpoint format version this library writes (it reads every earlier one).
/// Version 3 added the run counter and the extra state.
inline constexpr std::uint32_t checkpoint_format_version = 3;

/// What is saved besides the graph's parameters and buffers.
struct CheckpointSave {
  const optim::Optimizer* optimizer = nullptr;  ///< its state is saved when set
  const Rng* rng = nullptr;                     ///< its state is saved when set
  std::int64_t step = 0;
  /// Its run counter is saved when set (TrainStep::run_count; dropout masks follow it).
  const TrainStep* train_step = nullptr;
  /// The training loop's own state (epoch, batch in epoch, best metric, scheduler state,
  /// ...): tensors of any dtype and shape under unique, non-empty names, returned as they
  /// are in CheckpointInfo::extra. A bad name is a ValueError.
  std::vector<std::pair<std::string, Tensor>> extra = {};
};

/// What is restored besides the graph's parameters and buffers. A checkpoint without an
/// optimizer (or RNG, or run counter) state cannot restore one: that is a ValueError.
struct CheckpointLoad {
  optim::Optimizer* optimizer = nullptr;
  Rng* rng = nullptr;
  TrainStep* train_step = nullptr;  ///< gets the saved run counter (TrainStep::set_run_count)
};

struct CheckpointInfo {
  std::int64_t step = 0;
  bool has_optimizer = false;
  bool has_rng = false;
  std::string optimizer_kind;  ///< "adam", ... (empty without optimizer state)
  bool has_run_count = false;  ///< saved with CheckpointSave::train_step (version 3 on)
  std::uint64_t run_count = 0;
  /// CheckpointSave::extra, in the order saved (empty before version 3).
  std::vector<std::pair<std::string, Tensor>> extra;
};

/// The checkpoint's bytes: every parameter and buffer of `graph` by name, plus `what`.
KILN_API std::vector<std::uint8_t> serialize_checkpoint(const Graph& graph,
                                                        const CheckpointSave& what = {});
/// Writes serialize_checkpoint(...) to `path` atomically; throws IoError naming the file.
KILN_API void save_checkpoint(const std::string& path, const Graph& graph,
                              const CheckpointSave& what = {});

/// Restores a checkpoint's bytes into `graph` (and the optimizer / RNG when given). The
/// checkpoint and the graph must hold the same parameter and buffer names, shapes, dtypes
/// and trainable flags. Throws FormatError for a malformed file, NameError / ShapeError /
/// DTypeError / ValueError for a checkpoint that does not fit; every message starts with
/// `source`, and nothing is changed when one is thrown.
KILN_API CheckpointInfo restore_checkpoint(std::span<const std::uint8_t> bytes,
                                           const std::string& source, Graph& graph,
                                           const CheckpointLoad& into = {});
/// Reads `path` and restores it (see restore_checkpoint); IoError if it cannot be read.
KILN_API CheckpointInfo load_checkpoint(const std::string& path, Graph& graph,
                                        const CheckpointLoad& into = {});

}  // namespace kiln
