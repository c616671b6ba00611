#include "kiln/data/loader.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "data/data_util.hpp"

namespace kiln::data {
namespace {

// A batch is a function of (epoch, index) only (the order is seeded by the epoch), so a
// batch assembled ahead stays valid whatever the caller did since: set_epoch, reset or a
// new pass just ask for another key.
struct BatchKey {
  std::int64_t epoch = -1;
  std::int64_t index = -1;
  friend bool operator==(const BatchKey&, const BatchKey&) = default;
};

using Order = std::shared_ptr<const std::vector<std::int64_t>>;

}  // namespace

struct Loader::Impl {
  const Dataset& dataset;
  LoaderOptions options;
  std::int64_t epoch = 0;
  std::int64_t cursor = 0;  // the next batch of the pass
  bool ended = false;       // the last next() returned nullopt: the next one restarts
  Order order;              // of `epoch`, made on demand

  // The background thread and what it shares with the caller (under `mutex`): one job at a
  // time, its result kept until the caller asks for it (or for another batch).
  std::thread worker;
  std::mutex mutex;
  std::condition_variable wake_worker;
  std::condition_variable batch_ready;
  bool stop = false;
  bool busy = false;             // the worker is assembling a batch
  std::optional<BatchKey> job;   // posted, not yet taken by the worker
  Order job_order;               // null: the worker makes it
  BatchKey requested;            // the last batch posted
  std::optional<BatchKey> done;  // the worker's last result
  Batch done_batch;
  Order done_order;
  std::exception_ptr done_error;

  Impl(const Dataset& d, LoaderOptions o) : dataset(d), options(std::move(o)) {}

  ~Impl() {
    if (worker.joinable()) {
      {
        std::lock_guard lock(mutex);
        stop = true;
      }
      wake_worker.notify_one();
      worker.join();
    }
  }

  // Rows this loader reads per epoch: the dataset's, or one shard's (the order padded to
  // a multiple of shard_count, divided by it).
  std::int64_t shard_rows() const {
    const std::int64_t n = dataset.size();
    const std::int64_t count = options.shard_count;
    return (n + count - 1) / count;
  }

  std::int64_t batches() const {
    const std::int64_t n = shard_rows();
    const std::int64_t b = options.batch_size;
    return options.drop_last ? n / b : (n + b - 1) / b;
  }

  // The epoch's order of the whole dataset: the same on every shard.
  std::vector<std::int64_t> full_order(std::int64_t e) const {
    if (!options.shuffle) {
      std::vector<std::int64_t> identity(static_cast<std::size_t>(dataset.size()));
      std::iota(identity.begin(), identity.end(), std::int64_t{0});
      return identity;
    }
    Rng rng(hash_bits(options.seed, static_cast<std::uint64_t>(e)));
    return seeded_permutation(dataset.size(), rng);
  }

  // This loader's order: the full order, or positions shard_index, shard_index + count, ...
  // of it padded by repeating its first rows.
  std::vector<std::int64_t> make_order(std::int64_t e) const {
    std::vector<std::int64_t> all = full_order(e);
    const std::int64_t count = options.shard_count;
    if (count == 1 || all.empty()) return all;
    const auto n = static_cast<std::int64_t>(all.size());
    std::vector<std::int64_t> shard(static_cast<std::size_t>(shard_rows()));
    for (std::int64_t k = 0; k < shard_rows(); ++k)
      shard[static_cast<std::size_t>(k)] =
          all[static_cast<std::size_t>((options.shard_index + k * count) % n)];
    return shard;
  }

  Batch assemble(const std::vector<std::int64_t>& rows, BatchKey key) const {
    const std::int64_t begin = key.index * options.batch_size;
    const std::int64_t end = std::min(begin + options.batch_size, shard_rows());
    Batch batch = dataset.gather(std::span<const std::int64_t>(rows).subspan(
        static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin)));
    if (options.transform) options.transform(batch, key.epoch, key.index);
    return batch;
  }

  void run_worker() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake_worker.wait(lock, [&] { return stop || job.has_value(); });
      if (stop) return;
      const BatchKey key = *job;
      job.reset();
      busy = true;
      Order rows = std::move(job_order);
      lock.unlock();
      Batch batch;
      std::exception_ptr error;
      try {
        if (!rows) rows = std::make_shared<const std::vector<std::int64_t>>(make_order(key.epoch));
        batch = assemble(*rows, key);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      busy = false;
      done = key;
      done_batch = std::move(batch);
      done_order = std::move(rows);
      done_error = error;
      batch_ready.notify_all();
    }
  }

  void post(BatchKey key, Order rows) {
    {
      std::lock_guard lock(mutex);
      job = key;
      job_order = std::move(rows);
      requested = key;
    }
    if (!worker.joinable()) worker = std::thread([this] { run_worker(); });
    wake_worker.notify_one();
  }

  // The batch `key`: the prefetched one when it was posted, else assembled here.
  Batch obtain(BatchKey key) {
    if (options.prefetch) {
      std::unique_lock lock(mutex);
      // A posted batch the worker has not started (it got no core yet, e.g. on a loaded
      // machine) is assembled here instead: prefetching never waits longer than that.
      const bool started = !(job && *job == key);
      if (requested == key && started) {
        batch_ready.wait(lock, [&] { return done == key; });
        done.reset();
        requested = {};
        if (done_order && key.epoch == epoch && !order) order = std::move(done_order);
        done_order.reset();
        if (done_error) std::rethrow_exception(std::exchange(done_error, nullptr));
        return std::move(done_batch);
      }
      // Another batch may be in the works: let it finish, so the transform never runs on
      // two threads at once.
      job.reset();
      requested = {};
      batch_ready.wait(lock, [&] { return !busy; });
    }
    if (!order) order = std::make_shared<const std::vector<std::int64_t>>(make_order(epoch));
    return assemble(*order, key);
  }
};

Loader::Loader(const Dataset& dataset, LoaderOptions options) {
  if (options.batch_size < 1)
    throw ValueError("Loader: batch_size " + std::to_string(options.batch_size) + " must be >= 1");
  if (options.shard_count < 1)
    throw ValueError("Loader: shard_count " + std::to_string(options.shard_count) +
                     " must be >= 1");
  if (options.shard_index < 0 || options.shard_index >= options.shard_count)
    throw ValueError("Loader: shard_index " + std::to_string(options.shard_index) +
                     " outside [0, " + std::to_string(options.shard_count) + ")");
  impl_ = std::make_unique<Impl>(dataset, std::move(options));
}

Loader::~Loader() = default;

std::int64_t Loader::batches() const { return impl_->batches(); }

void Loader::set_epoch(std::int64_t epoch, std::int64_t first_batch) {
  if (epoch < 0) throw ValueError("Loader::set_epoch: epoch " + std::to_string(epoch) + " < 0");
  if (first_batch < 0 || first_batch > batches())
    throw ValueError("Loader::set_epoch: first_batch " + std::to_string(first_batch) +
                     " outside [0, " + std::to_string(batches()) + "]");
  if (epoch != impl_->epoch) impl_->order.reset();
  impl_->epoch = epoch;
  impl_->cursor = first_batch;
  impl_->ended = false;
}

std::int64_t Loader::epoch() const { return impl_->epoch; }

std::vector<std::int64_t> Loader::order(std::int64_t epoch) const {
  if (epoch < 0) throw ValueError("Loader::order: epoch " + std::to_string(epoch) + " < 0");
  return impl_->make_order(epoch);
}

std::optional<Batch> Loader::next() {
  Impl& s = *impl_;
  if (s.ended) {
    s.cursor = 0;
    s.ended = false;
  }
  const std::int64_t count = s.batches();
  if (s.cursor >= count) {
    s.ended = true;
    return std::nullopt;
  }
  Batch batch = s.obtain({s.epoch, s.cursor});
  ++s.cursor;
  if (s.options.prefetch) {
    // The next batch of this epoch, or after the last one the first of the next epoch
    // (what a loop calling set_epoch(epoch + 1) asks for next).
    if (s.cursor < count)
      s.post({s.epoch, s.cursor}, s.order);
    else
      s.post({s.epoch + 1, 0}, nullptr);
  }
  return batch;
}

void Loader::reset() {
  impl_->cursor = 0;
  impl_->ended = false;
}

Loader::Iterator::Iterator(Loader* loader) : loader_(loader) { ++*this; }

Loader::Iterator& Loader::Iterator::operator++() {
  std::optional<Batch> b = loader_->next();
  if (b) {
    batch_ = std::move(*b);
  } else {
    loader_ = nullptr;
    batch_.clear();
  }
  return *this;
}

Loader::Iterator Loader::begin() { return Iterator(this); }
Loader::Iterator Loader::end() { return Iterator(); }

}  // namespace kiln::data
