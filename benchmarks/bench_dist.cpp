// Issue 13: data-parallel scaling of W1 and W2 (kiln::dist::DataParallel over MPI), one
// thread per rank. Run it under mpirun with 1 and 2 ranks (benchmarks/run_dist.sh does,
// and prints the efficiency table):
//
//   mpirun -np 2 --bind-to none build/default/benchmarks/bench_dist
//       --benchmark_filter=DataParallel --benchmark_out=np2.json   (one line)
//
// BM_W1DataParallel / BM_W2DataParallel: one training step per iteration (DataParallel::run
// on this rank's batch, then the optimizer step), args scaling:0 = strong (the global batch
// is W1's 256 / W2's 64, each rank takes B/p rows), scaling:1 = weak (each rank takes B
// rows), and the gradient bucket size in KiB (0: overlap off, the default 4 MiB buckets
// all reduced after the backward pass). Counters per step: compute_ms (forward + backward),
// comm_ms (waiting for the reductions after the backward pass, and buffer averaging),
// buckets, grad_MB, ranks, local_batch.
// BM_W1Compute / BM_W2Compute (one process, no communicator): TrainStep::run and the
// optimizer step at a local batch of `rows`, timed separately (fwd_bwd_ms, opt_ms): the
// compute term of the scaling model (benchmarks/scaling_model.py).
// BM_AllReduce: all_reduce_sum of `bytes` bytes of floats: this machine's latency and
// bandwidth between ranks (shared memory), to check the model at p = 2.
//
// MPI needs every rank to make the same collective calls: every benchmark here runs a fixed
// number of iterations and repetitions (never Google Benchmark's own choice, which differs
// per process), every rank runs the same benchmarks, and only rank 0 reports (the others'
// --benchmark_out is dropped so they do not write the file too).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/threads.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/dist/data_parallel.hpp"
#include "kiln/dist/mpi.hpp"
#include "workloads.hpp"

namespace {

using kiln_bench::classes;
using Clock = std::chrono::steady_clock;

kiln::dist::Communicator* world = nullptr;

/// W1 or W2 at a local batch of `rows`, its data seeded by `seed` (each rank its own rows).
struct Workload {
  kiln::Graph graph;
  std::optional<kiln::TrainStep> step;
  std::unique_ptr<kiln::optim::Optimizer> opt;
  kiln::Feeds feeds;
};

std::unique_ptr<Workload> make_w1(std::int64_t rows, std::uint64_t seed) {
  namespace nn = kiln::nn;
  using namespace kiln_bench;
  auto w = std::make_unique<Workload>();
  kiln::Graph& g = w->graph;
  kiln::Value x = g.input("pixels", {kiln::batch, w1_features});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value h = nn::dense(g, x, w1_hidden, {.activation = kiln::relu, .name = "fc1"});
  h = nn::dense(g, h, w1_hidden, {.activation = kiln::relu, .name = "fc2"});
  kiln::Value logits = nn::dense(g, h, classes, {.name = "fc3"});
  w->step.emplace(kiln::softmax_cross_entropy(logits, y));
  w->opt = std::make_unique<kiln::optim::SGD>(w->step->parameters(),
                                              kiln::optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
  const Batch b = make_data(rows, w1_features, seed);
  w->feeds = {{"pixels", kiln::Tensor::from(b.x, {rows, w1_features})},
              {"label", kiln::Tensor::from(b.y, {rows})}};
  return w;
}

std::unique_ptr<Workload> make_w2(std::int64_t rows, std::uint64_t seed) {
  using namespace kiln_bench;
  auto w = std::make_unique<Workload>();
  kiln::Graph& g = w->graph;
  kiln::Value x = g.input("image", {kiln::batch, 1, w2_side, w2_side});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  w->step.emplace(kiln::softmax_cross_entropy(w2_network(g, x), y));
  w->opt = std::make_unique<kiln::optim::Adam>(w->step->parameters(),
                                               kiln::optim::AdamOptions{.lr = 1e-3});
  const Batch b = make_data(rows, w2_side * w2_side, seed);
  w->feeds = {{"image", kiln::Tensor::from(b.x, {rows, 1, w2_side, w2_side})},
              {"label", kiln::Tensor::from(b.y, {rows})}};
  return w;
}

using Maker = std::unique_ptr<Workload> (*)(std::int64_t, std::uint64_t);

// One data-parallel training step per iteration. range(0): 0 strong, 1 weak scaling;
// range(1): bucket KiB (0: overlap off, default 4 MiB buckets).
void data_parallel(benchmark::State& state, Maker make, std::int64_t global_batch) {
  kiln::dist::Communicator& comm = *world;
  const int p = comm.size();
  const bool weak = state.range(0) == 1;
  if (!weak && global_batch % p != 0) {
    state.SkipWithError("the global batch does not divide by the ranks");
    return;
  }
  const std::int64_t rows = weak ? global_batch : global_batch / p;
  std::unique_ptr<Workload> w = make(rows, 1234 + static_cast<std::uint64_t>(comm.rank()));
  kiln::dist::DataParallelOptions options;
  if (state.range(1) > 0)
    options.bucket_bytes = static_cast<std::size_t>(state.range(1)) << 10;
  else
    options.overlap = false;
  kiln::dist::DataParallel dp(*w->step, comm, options);
  dp.broadcast_parameters();
  double first_loss = 0.0;
  for (int i = 0; i < kiln_bench::warm_up_steps; ++i) {  // plans compiled, Adam past its start
    const double loss = dp.run(w->feeds);
    if (i == 0) first_loss = loss;
    w->opt->step(dp.gradients());
  }
  dp.reset_stats();
  double loss = 0.0;
  for (auto _ : state) {
    loss = dp.run(w->feeds);
    w->opt->step(dp.gradients());
  }
  const kiln::dist::DataParallelStats& s = dp.stats();
  const double runs = static_cast<double>(s.runs);
  state.counters["compute_ms"] = 1e3 * s.compute_seconds / runs;
  state.counters["comm_ms"] = 1e3 * s.communication_seconds / runs;
  state.counters["buckets"] = static_cast<double>(s.buckets);
  state.counters["grad_MB"] = static_cast<double>(s.bytes_per_run) / 1e6;
  state.counters["ranks"] = p;
  state.counters["local_batch"] = static_cast<double>(rows);
  state.counters["loss"] = loss;
  state.SetItemsProcessed(state.iterations() * rows * p);
  // The loss is the global one (the same on every rank), so every rank decides alike.
  if (!std::isfinite(loss) || !(loss < first_loss))
    state.SkipWithError(
        ("loss did not decrease: " + std::to_string(first_loss) + " -> " + std::to_string(loss))
            .c_str());
}

void BM_W1DataParallel(benchmark::State& state) {
  data_parallel(state, make_w1, kiln_bench::w1_batch);
}
void BM_W2DataParallel(benchmark::State& state) {
  data_parallel(state, make_w2, kiln_bench::w2_batch);
}

// One process's training step at a local batch of range(0) rows, the step executable and
// the optimizer timed apart (manual time: their sum).
void compute(benchmark::State& state, Maker make) {
  const std::int64_t rows = state.range(0);
  std::unique_ptr<Workload> w = make(rows, 1234);
  for (int i = 0; i < kiln_bench::warm_up_steps; ++i) {
    w->step->run(w->feeds);
    w->opt->step(w->step->gradients());
  }
  double fwd_bwd = 0.0, opt = 0.0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    w->step->run(w->feeds);
    const auto t1 = Clock::now();
    w->opt->step(w->step->gradients());
    const auto t2 = Clock::now();
    fwd_bwd += std::chrono::duration<double>(t1 - t0).count();
    opt += std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(std::chrono::duration<double>(t2 - t0).count());
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["fwd_bwd_ms"] = 1e3 * fwd_bwd / n;
  state.counters["opt_ms"] = 1e3 * opt / n;
  state.SetItemsProcessed(state.iterations() * rows);
}

void BM_W1Compute(benchmark::State& state) { compute(state, make_w1); }
void BM_W2Compute(benchmark::State& state) { compute(state, make_w2); }

// all_reduce_sum of range(0) bytes of floats over all ranks.
void BM_AllReduce(benchmark::State& state) {
  std::vector<float> data(static_cast<std::size_t>(state.range(0)) / sizeof(float), 1.0f);
  world->all_reduce_sum(data);  // connections set up
  world->barrier();
  for (auto _ : state) world->all_reduce_sum(data);
  state.counters["ranks"] = world->size();
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

}  // namespace

// Fixed iterations and repetitions (see the top): every rank runs exactly these.
BENCHMARK(BM_W1DataParallel)
    ->ArgNames({"scaling", "bucket_KiB"})
    ->Args({0, 4096})
    ->Args({1, 4096})
    ->Args({0, 0})
    ->Args({0, 1024})
    ->Args({0, 16384})
    ->Iterations(40)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_W2DataParallel)
    ->ArgNames({"scaling", "bucket_KiB"})
    ->Args({0, 4096})
    ->Args({1, 4096})
    ->Args({0, 0})
    ->Args({0, 1024})
    ->Args({0, 16384})
    ->Iterations(20)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_W1Compute)
    ->ArgName("rows")
    ->RangeMultiplier(2)
    ->Range(1, 256)
    ->Iterations(30)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_W2Compute)
    ->ArgName("rows")
    ->RangeMultiplier(2)
    ->Range(1, 64)
    ->Iterations(20)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_AllReduce)
    ->ArgName("bytes")
    ->Arg(4)
    ->Arg(4 << 10)
    ->Arg(1 << 20)
    ->Arg(8 << 20)
    ->Iterations(50)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

namespace {

// Google Benchmark's reporter for ranks other than 0: reports nothing.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  kiln::dist::Communicator& comm = kiln::dist::init(&argc, &argv);
  world = &comm;
  kiln::set_num_threads(1);
  // Only rank 0 writes --benchmark_out (Google Benchmark would open the file on every rank).
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i)
    if (comm.rank() == 0 || std::strncmp(argv[i], "--benchmark_out", 15) != 0)
      args.push_back(argv[i]);
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  return kiln::dist::run_or_abort(comm, [&] {
    if (comm.rank() == 0) {
      benchmark::RunSpecifiedBenchmarks();
    } else {
      Silent silent;
      benchmark::RunSpecifiedBenchmarks(&silent);
    }
    benchmark::Shutdown();
    return 0;
  });
}
