// Loader: batches of a dataset for training and evaluation, in a seeded per-epoch order,
// with the next batch assembled on a background thread while the current one trains.
//
//   kiln::data::Loader loader(train, {.batch_size = 32, .shuffle = true, .seed = 7});
//   for (int epoch = 0; epoch < 10; ++epoch) {
//     loader.set_epoch(epoch);            // the order is a function of (seed, epoch) only
//     for (const kiln::data::Batch& b : loader) step.run(b);
//   }
//
// The order of epoch e is the same whether or not epochs before it ran, so a run resumed
// at (epoch, batch) sees exactly the batches an uninterrupted run would.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"

namespace kiln::data {

struct LoaderOptions {
  std::int64_t batch_size = 32;
  /// Shuffle the rows every epoch (seeded by seed and the epoch).
  bool shuffle = false;
  std::uint64_t seed = 0;
  /// Drop the last batch of an epoch when it is smaller than batch_size.
  bool drop_last = false;
  /// Assemble the next batch on a background thread while the caller uses this one.
  bool prefetch = true;
  /// Optional work on each batch after it is gathered (augmentation, casts), run on the
  /// background thread when prefetching; given the epoch and the batch index so seeded
  /// augmentation is reproducible and resumable. What it throws is rethrown by next().
  std::function<void(Batch& batch, std::int64_t epoch, std::int64_t index)> transform = {};
  /// Distributed sampling: this loader reads shard `shard_index` of `shard_count` (a rank
  /// and the number of ranks). The epoch's order (the same on every rank: seeded by seed
  /// and the epoch) is padded to a multiple of shard_count by repeating its first rows, and
  /// shard i takes positions i, i + count, i + 2 count, ...: shards are disjoint (but for
  /// the padding), equal in size, and the k-th batches of all shards together are the rows
  /// of the k-th batch of batch_size * shard_count of the unsharded order. ValueError for
  /// shard_count < 1 or shard_index outside [0, shard_count).
  std::int64_t shard_index = 0;
  std::int64_t shard_count = 1;
};

class KILN_API Loader {
 public:
  /// Keeps a reference to `dataset`, which must outlive the loader. Throws ValueError for
  /// batch_size < 1.
  Loader(const Dataset& dataset, LoaderOptions options = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Batches per epoch (of this loader's shard when sharded).
  std::int64_t batches() const;
  /// Selects the epoch whose order the next pass uses (0 at construction), and the batch
  /// to start from (to resume inside an epoch).
  void set_epoch(std::int64_t epoch, std::int64_t first_batch = 0);
  std::int64_t epoch() const;
  /// The rows this loader reads in an epoch, in order (for tests and distributed
  /// samplers): with shard_count > 1, this shard's rows only (positions shard_index,
  /// shard_index + shard_count, ... of the padded whole order, which a loader with the same
  /// seed and shard_count 1 returns).
  std::vector<std::int64_t> order(std::int64_t epoch) const;

  /// Starts (or restarts) a pass over the selected epoch and returns its next batch, or
  /// nullopt at the end of the epoch. The batch's tensors are fresh copies the caller may
  /// keep. Errors raised while assembling a batch in the background are rethrown here.
  std::optional<Batch> next();
  /// Back to the first batch of the selected epoch.
  void reset();

  /// Range-for over one pass: for (const Batch& b : loader) { ... }.
  class Iterator;
  Iterator begin();
  Iterator end();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class KILN_API Loader::Iterator {
 public:
  Iterator() = default;
  const Batch& operator*() const { return batch_; }
  const Batch* operator->() const { return &batch_; }
  Iterator& operator++();
  friend bool operator==(const Iterator& a, const Iterator& b) { return a.loader_ == b.loader_; }

 private:
  friend class Loader;
  explicit Iterator(Loader* loader);
  Loader* loader_ = nullptr;  // null at the end
  Batch batch_;
};

}  // namespace kiln::data
