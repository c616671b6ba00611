// DESIGN.md workload W2: one training step of a small CNN (conv 5x5 1->32 pad 2, ReLU, max
// pool 2; conv 5x5 32->64 pad 2, ReLU, max pool 2; dense 3136->512, ReLU; dense 512->10) on a
// batch of 64 1x28x28 images, softmax cross-entropy, Adam: TrainStep::run for the loss and
// gradients, then opt.step.
// Reported at 1 and 2 threads as samples/s, GFLOP/s (the layers' counted FLOPs, see
// workloads.hpp) and peak_rss_MiB, the process's peak resident set (process-wide: it
// includes the benchmarks run before in the same process).
//
//   w2_cnn_train --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

#include "kiln/core/threads.hpp"
#include "workloads.hpp"

namespace {

void BM_W2CnnTrainStep(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_bench::KilnW2 w2;  // builds, compiles and takes a first step outside the timing
  for (auto _ : state) {
    benchmark::DoNotOptimize(w2.step());
    benchmark::ClobberMemory();
  }
  const double last_loss = w2.step();
  state.SetItemsProcessed(state.iterations() * kiln_bench::w2_batch);
  state.counters["GFLOP/s"] =
      benchmark::Counter(kiln_bench::w2_train_flops * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["peak_rss_MiB"] = kiln_bench::peak_rss_mib();
  state.counters["loss"] = last_loss;
  if (!std::isfinite(last_loss) || !(last_loss < w2.first_loss())) {
    state.SkipWithError(("loss did not decrease: " + std::to_string(w2.first_loss()) + " -> " +
                         std::to_string(last_loss))
                            .c_str());
  }
}

}  // namespace

BENCHMARK(BM_W2CnnTrainStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
