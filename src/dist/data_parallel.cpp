// DataParallel: TrainStep::run on this rank's rows, the gradients summed over the ranks in
// buckets (started while backward runs), averaged by the global rows.
//
// One run, on every rank:
//   1. TrainStep::run with an observer that copies each gradient, times this rank's rows,
//      into its bucket as soon as the step computing it ran; a bucket whose gradients are
//      all in starts its sum (buckets start in index order, so every rank issues the same
//      calls in the same order), and later steps let the pending sums progress (test).
//   2. After the run: gradients the observer did not see (a gradient the plan did not
//      compute in a step of its own: a constant, an alias) are copied in, the last bucket
//      gets the loss times the rows, the rows and the error flags, and every bucket not
//      started yet starts; then all are waited for.
//   3. The sums divided by the global rows are the gradients; buffers are averaged.
// A run that throws on one rank still does 2 (its gradients zero, its error flag set), so
// the reductions match; then every rank throws the same error.
#include "kiln/dist/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <unordered_map>

#include "dist/collective_text.hpp"
#include "kiln/core/error.hpp"

namespace kiln::dist {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The floats after the last bucket's gradients: sum over ranks of each.
enum Extra : std::size_t { loss_times_rows = 0, rows_sum, failed_ranks, nonfinite_ranks, extras };

// The batch rows of a run: the first dimension of the feeds of inputs declared with the
// dynamic batch dimension (else of the first feed with a dimension).
std::int64_t rows_of(const Feeds& feeds, Graph& graph) {
  const Tensor* first = nullptr;
  for (const auto& [name, t] : feeds) {
    if (t.rank() == 0) continue;
    if (!first) first = &t;
    if (graph.contains(name)) {
      const Value v = graph.find(name);
      if (v.node().op == Op::input && v.shape().rank() > 0 && v.shape()[0] == batch)
        return t.dim(0);
    }
  }
  if (!first)
    throw ValueError("DataParallel::run: no feed has a batch dimension to weight the gradients by");
  return first->dim(0);
}

// Sees each step of the backward pass and hands finished gradients to their buckets (a
// template so it lives in this file's anonymous namespace, outside the exported class).
template <class Impl>
class Observer : public RunObserver {
 public:
  Observer(Impl& impl, RunObserver* next) : impl_(impl), next_(next) {}
  void on_step(const ObservedStep& s) override {
    if (next_) next_->on_step(s);
    if (impl_.comm_error) return;
    try {
      impl_.progress();
      const auto it = impl_.grads_of_node.find(s.id);
      if (it == impl_.grads_of_node.end()) return;
      for (const std::size_t k : it->second) {
        if (impl_.seen[k]) continue;
        impl_.copy_in(k, s.value);
        impl_.seen_at[k] = s.value.raw();
        impl_.arrived(k);
      }
    } catch (const DistributedError&) {
      impl_.comm_error = std::current_exception();
      throw;
    }
  }

 private:
  Impl& impl_;
  RunObserver* next_;
};

}  // namespace

struct DataParallel::Impl {
  TrainStep& step;
  Communicator& comm;
  DataParallelOptions options;
  Graph& graph;

  struct Bucket {
    std::vector<std::size_t> grads;  // gradient indices, in packing order
    std::vector<float> buffer;       // the gradients (f32), then the extras in the last one
    std::size_t remaining = 0;       // gradients not copied in yet this run
    bool started = false;
    bool done = false;
    RequestId request = 0;
  };
  std::vector<Bucket> buckets;
  // Per gradient: its bucket and offset (f32), or its offset in `doubles` (f64).
  struct Place {
    std::size_t bucket = 0;
    std::size_t offset = 0;
    bool f64 = false;
  };
  std::vector<Place> places;
  std::vector<double> doubles;  // f64 gradients, summed with one blocking call after the run
  std::unordered_map<std::int32_t, std::vector<std::size_t>> grads_of_node;
  std::size_t gradient_bytes = 0;

  // Per run.
  float rows = 0;
  std::vector<bool> seen;
  std::vector<const void*> seen_at;  // where the observed value lived (the arena)
  std::size_t next_start = 0;        // buckets start in index order
  std::size_t oldest_pending = 0;    // buckets before it are done
  bool run_finished = false;         // after TrainStep::run: the last bucket may start
  std::exception_ptr comm_error;     // a collective failed inside the observer

  std::vector<Tensor> own;  // gradients of no step of the run, held here
  std::vector<Tensor> out;  // what gradients() shows
  std::int64_t global_rows = 0;
  bool has_run = false;  // a run succeeded: gradients() has values
  bool layout_checked = false;
  DataParallelStats stats;

  Impl(TrainStep& s, Communicator& c, DataParallelOptions o)
      : step(s), comm(c), options(o), graph(s.parameter_values().at(0).graph()) {
    if (options.bucket_bytes == 0) throw ValueError("DataParallel: bucket_bytes must be > 0");
    const std::vector<Value>& params = step.parameter_values();
    const std::vector<Value>& grads = step.gradient_values();
    places.resize(params.size());
    // Reverse parameter order: the order backward computes them in.
    std::size_t bytes = 0;
    for (std::size_t k = params.size(); k-- > 0;) {
      const Value& p = params[k];
      const auto n = static_cast<std::size_t>(p.shape().numel());
      if (p.dtype() == DType::f64) {
        places[k] = {0, doubles.size(), true};
        doubles.resize(doubles.size() + n);
      } else {
        if (p.dtype() != DType::f32)
          throw DTypeError("DataParallel: parameter '" + p.name() + "' is " +
                           std::string(to_string(p.dtype())) + ", not f32 or f64");
        const std::size_t b = n * sizeof(float);
        if (buckets.empty() || (bytes > 0 && bytes + b > options.bucket_bytes)) {
          buckets.emplace_back();
          bytes = 0;
        }
        Bucket& bucket = buckets.back();
        places[k] = {buckets.size() - 1, bucket.buffer.size(), false};
        bucket.grads.push_back(k);
        bucket.buffer.resize(bucket.buffer.size() + n);
        bytes += b;
      }
      gradient_bytes += n * size_of(p.dtype());
      grads_of_node[grads[k].id()].push_back(k);
    }
    if (buckets.empty()) buckets.emplace_back();  // the extras need one
    buckets.back().buffer.resize(buckets.back().buffer.size() + extras);
    own.resize(params.size());
    out.resize(params.size());
    seen.assign(params.size(), false);
    seen_at.assign(params.size(), nullptr);
  }

  bool is_last(std::size_t b) const { return b + 1 == buckets.size(); }

  void start_ready() {
    while (next_start < buckets.size()) {
      Bucket& b = buckets[next_start];
      if (b.remaining > 0 || (is_last(next_start) && !run_finished)) return;
      if (!options.overlap && !run_finished) return;
      b.request = comm.start_all_reduce_sum(b.buffer);
      b.started = true;
      ++next_start;
    }
  }

  // Lets the oldest pending sum progress (MPI progresses non-blocking collectives inside
  // library calls only).
  void progress() {
    while (oldest_pending < next_start && buckets[oldest_pending].done) ++oldest_pending;
    if (oldest_pending < next_start) {
      Bucket& b = buckets[oldest_pending];
      if (comm.test(b.request)) b.done = true;
    }
  }

  // Copies gradient k (this rank's mean) times the rows into its place.
  void copy_in(std::size_t k, const Tensor& value) {
    const Place& at = places[k];
    const Tensor t = value.contiguous();
    if (at.f64) {
      const double* src = t.data<double>();
      for (std::int64_t j = 0; j < t.numel(); ++j)
        doubles[at.offset + static_cast<std::size_t>(j)] = src[j] * static_cast<double>(rows);
    } else {
      const float* src = t.data<float>();
      float* dst = buckets[at.bucket].buffer.data() + at.offset;
      for (std::int64_t j = 0; j < t.numel(); ++j) dst[j] = src[j] * rows;
    }
  }

  void arrived(std::size_t k) {
    seen[k] = true;
    if (places[k].f64) return;
    Bucket& b = buckets[places[k].bucket];
    if (--b.remaining == 0) start_ready();
  }

  // Forgets the previous run (before anything of this one can throw).
  void begin_run() {
    rows = 0;
    std::fill(seen.begin(), seen.end(), false);
    std::fill(seen_at.begin(), seen_at.end(), nullptr);
    for (Bucket& b : buckets) {
      b.remaining = b.grads.size();
      b.started = b.done = false;
    }
    next_start = oldest_pending = 0;
    run_finished = false;
    comm_error = nullptr;
  }

  // Zeroes every gradient place (a failed rank contributes nothing).
  void zero_gradients() {
    for (Bucket& b : buckets)
      if (!b.started) std::fill(b.buffer.begin(), b.buffer.end(), 0.0f);
    std::fill(doubles.begin(), doubles.end(), 0.0);
  }

  // Once, before the first reduction: every rank must have the same buckets, or the sums
  // would mismatch (an MPI library may hang on that rather than fail).
  void check_layout() {
    std::string mine;
    for (const Bucket& b : buckets) mine += std::to_string(b.buffer.size()) + " ";
    mine += "+ " + std::to_string(doubles.size()) + " f64";
    const std::vector<std::string> all = all_gather_text(comm, mine);
    std::string differing;
    for (std::size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0]) differing += "; rank " + std::to_string(r) + ": " + all[r];
    if (!differing.empty())
      throw DistributedError(
          "DataParallel: the gradient buckets (floats per bucket) differ between "
          "ranks (every rank must build the same model): rank 0: " +
          all[0] + differing);
    layout_checked = true;
  }

  double run(const Feeds& feeds, RunObserver* user) {
    if (!layout_checked) check_layout();
    const auto t0 = Clock::now();
    bool failed = false;     // this rank's run threw
    std::string error;       // ... its message
    bool nonfinite = false;  // ... and whether it was a NonFiniteError
    double loss = 0;
    begin_run();
    try {
      rows = static_cast<float>(rows_of(feeds, graph));
      Observer<Impl> observer(*this, user);
      loss = step.run(feeds, &observer);
    } catch (const NonFiniteError& e) {
      failed = nonfinite = true;
      error = e.what();
    } catch (const std::exception& e) {
      if (comm_error) std::rethrow_exception(comm_error);  // the transport itself failed
      failed = true;
      error = e.what();
    } catch (...) {
      if (comm_error) std::rethrow_exception(comm_error);
      failed = true;
      error = "an exception that is not a std::exception";
    }
    if (failed && error.empty()) error = "an error without a message";
    const auto t1 = Clock::now();
    run_finished = true;
    const std::span<const Tensor> local = step.gradients();
    if (failed) {
      zero_gradients();
    } else {
      for (std::size_t k = 0; k < seen.size(); ++k)
        if (!seen[k]) {
          copy_in(k, local[k]);
          arrived(k);
        }
    }
    std::vector<float>& last = buckets.back().buffer;
    float* x = last.data() + last.size() - extras;
    x[loss_times_rows] = failed ? 0.0f : static_cast<float>(loss) * rows;
    x[rows_sum] = failed ? 0.0f : rows;
    x[failed_ranks] = failed ? 1.0f : 0.0f;
    x[nonfinite_ranks] = nonfinite ? 1.0f : 0.0f;
    for (std::size_t b = next_start; b < buckets.size(); ++b) buckets[b].remaining = 0;
    start_ready();
    const auto t2 = Clock::now();
    for (std::size_t b = oldest_pending; b < buckets.size(); ++b)
      if (!buckets[b].done) comm.wait(buckets[b].request);
    if (!doubles.empty()) comm.all_reduce_sum(std::span<double>(doubles));

    if (const float failures = x[failed_ranks]; failures > 0)
      throw_for_failures(error, x[nonfinite_ranks] == failures);
    global_rows = static_cast<std::int64_t>(x[rows_sum]);
    if (global_rows <= 0) throw ValueError("DataParallel::run: the global batch has no rows");
    unpack(local);
    if (options.average_buffers) dist::average_buffers(comm, graph);

    has_run = true;
    ++stats.runs;
    stats.buckets = buckets.size();
    stats.bytes_per_run = gradient_bytes;
    stats.compute_seconds += std::chrono::duration<double>(t1 - t0).count();
    stats.communication_seconds += seconds_since(t2);
    return static_cast<double>(x[loss_times_rows]) / static_cast<double>(global_rows);
  }

  [[noreturn]] void throw_for_failures(const std::string& error, bool all_nonfinite) {
    const std::vector<std::string> all = all_gather_text(comm, error);
    std::string ranks, details;
    for (std::size_t r = 0; r < all.size(); ++r) {
      if (all[r].empty()) continue;
      ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
      details += "; rank " + std::to_string(r) + ": " + all[r];
    }
    const std::string msg = "DataParallel: the run failed on rank " + ranks + " of " +
                            std::to_string(comm.size()) + details;
    if (all_nonfinite) throw NonFiniteError(msg);
    throw DistributedError(msg);
  }

  // The sums divided by the global rows into the gradients: in place in the TrainStep's
  // tensors where the observer saw them computed (its arena), else into tensors held here.
  void unpack(std::span<const Tensor> local) {
    const float global = static_cast<float>(global_rows);
    const std::vector<Value>& params = step.parameter_values();
    for (std::size_t k = 0; k < params.size(); ++k) {
      Tensor dst;
      if (seen_at[k] && k < local.size() && local[k].raw() == seen_at[k] &&
          local[k].is_contiguous()) {
        dst = local[k];
      } else {
        if (!own[k].defined()) own[k] = Tensor::zeros(params[k].shape(), params[k].dtype());
        dst = own[k];
      }
      const Place& at = places[k];
      const auto n = static_cast<std::size_t>(dst.numel());
      if (at.f64) {
        double* d = dst.data<double>();
        for (std::size_t j = 0; j < n; ++j)
          d[j] = doubles[at.offset + j] / static_cast<double>(global_rows);
      } else {
        float* d = dst.data<float>();
        const float* src = buckets[at.bucket].buffer.data() + at.offset;
        for (std::size_t j = 0; j < n; ++j) d[j] = src[j] / global;
      }
      out[k] = dst;
    }
  }
};

DataParallel::DataParallel(TrainStep& step, Communicator& comm, DataParallelOptions options)
    : impl_(std::make_unique<Impl>(step, comm, options)) {}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast_parameters() { dist::broadcast_parameters(impl_->comm, impl_->graph); }

double DataParallel::run(const Feeds& local_batch, RunObserver* observer) {
  return impl_->run(local_batch, observer);
}

std::span<const Tensor> DataParallel::gradients() const {
  return !impl_->has_run ? std::span<const Tensor>() : std::span<const Tensor>(impl_->out);
}

std::int64_t DataParallel::global_rows() const { return impl_->global_rows; }

std::vector<std::vector<std::size_t>> DataParallel::buckets() const {
  std::vector<std::vector<std::size_t>> out;
  for (const auto& b : impl_->buckets)
    if (!b.grads.empty()) out.push_back(b.grads);
  return out;
}

const DataParallelStats& DataParallel::stats() const { return impl_->stats; }

void DataParallel::reset_stats() { impl_->stats = {}; }

TrainStep& DataParallel::step() { return impl_->step; }
Communicator& DataParallel::communicator() { return impl_->comm; }

}  // namespace kiln::dist
