// DataParallel: a TrainStep whose gradients are averaged over the ranks of a
// Communicator, for custom training loops (the Trainer does the same with
// TrainerOptions::communicator).
//
//   kiln::dist::Communicator& world = kiln::dist::init(&argc, &argv);   // Kiln::kiln_mpi
//   kiln::TrainStep step(loss);
//   kiln::optim::SGD opt(step.named_parameters(), {.lr = 0.1});
//   kiln::dist::DataParallel dp(step, world);
//   dp.broadcast_parameters();                                // rank 0's weights everywhere
//   kiln::data::Loader loader(train, {.batch_size = 32, .shuffle = true, .seed = 1,
//                                     .shard_index = world.rank(),
//                                     .shard_count = world.size()});
//   for (const kiln::data::Batch& b : loader) {
//     double loss = dp.run(b);                                // global mean loss
//     opt.step(dp.gradients());                               // the same step on every rank
//   }
//   if (world.rank() == 0) model.save(...);
//
// Gradients are packed into buckets of about bucket_bytes in the reverse order of the
// parameters (the order backward produces them); a bucket's all-reduce starts as soon as
// its last gradient is computed, while the rest of the backward pass runs (overlap), and
// run() waits for all of them at the end. Each rank's gradient is weighted by its batch
// rows, so the result is the gradient of the mean loss over the global batch (the loss
// must be a mean over the batch rows, as kiln's losses are with their default reduction).
// With equal local batches of B/p rows, p ranks compute what one process computes with
// batch B, up to float rounding.
//
// A rank whose loss or gradients are non-finite, or whose run throws, still takes part in
// the reduction, and every rank then throws the same error (NonFiniteError, or
// DistributedError naming the ranks that failed): no rank is left waiting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kiln/dist/communicator.hpp"
#include "kiln/export.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln::dist {

struct DataParallelOptions {
  /// Target size of a gradient bucket (one all-reduce call each); a gradient larger than
  /// this gets a bucket of its own.
  std::size_t bucket_bytes = std::size_t{4} << 20;
  /// Start each bucket's all-reduce during the backward pass (false: all after it).
  bool overlap = true;
  /// Average floating-point buffers (batch norm's running statistics) over the ranks after
  /// every run, so every rank holds the same model.
  bool average_buffers = true;
};

/// Time and volume of the last run and totals since construction (or reset_stats()).
struct DataParallelStats {
  std::int64_t runs = 0;
  std::size_t buckets = 0;             ///< all-reduce calls per run
  std::size_t bytes_per_run = 0;       ///< gradient bytes reduced per run
  double compute_seconds = 0.0;        ///< forward + backward (total)
  double communication_seconds = 0.0;  ///< time run() spent waiting for reductions after the
                                       ///< backward pass, plus buffer averaging (total)
};

class KILN_API DataParallel {
 public:
  /// Keeps references to `step` and `comm` (they must outlive this). Throws ValueError for
  /// bucket_bytes 0, DTypeError for a parameter that is not f32 or f64 (f64 gradients are
  /// summed in one blocking call after the f32 buckets).
  DataParallel(TrainStep& step, Communicator& comm, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// Rank 0's parameters and buffers to every rank, verified by checksum (see
  /// kiln::dist::broadcast_parameters). Call once before training.
  void broadcast_parameters();

  /// Runs forward and backward on this rank's batch, averages the gradients over the
  /// ranks and returns the global mean loss (rows-weighted). The observer sees this rank's
  /// steps (as in TrainStep::run). The batch's rows are the first dimension of the feeds of
  /// inputs declared with the dynamic batch dimension (else of the first feed with one).
  /// When the run fails on any rank, every rank throws the same error (see the top of this
  /// file) and the gradients are not updated; a failure of the communicator itself is
  /// rethrown as it is.
  double run(const Feeds& local_batch, RunObserver* observer = nullptr);
  /// The averaged gradients, in TrainStep::parameters() order, for the optimizer; valid
  /// until the next run (empty before the first successful one). They are the TrainStep's
  /// own gradient tensors, overwritten in place, except for a gradient that no step of the
  /// plan computes (a constant, or an alias of another value), which is held here instead
  /// so the plan's constant is never written: give the optimizer this list, not
  /// TrainStep::gradients().
  std::span<const Tensor> gradients() const;
  /// The rows of the last run's global batch (sum over ranks).
  std::int64_t global_rows() const;

  /// Gradient indices (TrainStep::parameters() order) per bucket, in launch order.
  std::vector<std::vector<std::size_t>> buckets() const;
  const DataParallelStats& stats() const;
  void reset_stats();

  TrainStep& step();
  Communicator& communicator();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::dist
