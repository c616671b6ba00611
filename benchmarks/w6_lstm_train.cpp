// Issue 15's workload W6: one training step of a 2-layer LSTM (hidden 256, 64 steps of 64 features,
// batch 32), softmax cross-entropy on 10 classes, Adam: TrainStep::run for the loss and gradients,
// then opt.step (kiln_bench::KilnW6 in workloads.hpp; benchmarks/compare runs the same step in
// libtorch). Reported at 1 and 2 threads as sequences/s and peak_rss_MiB (process-wide).
//
//   w6_lstm_train --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "kiln/core/threads.hpp"
#include "train_loop.hpp"
#include "workloads.hpp"

namespace {

void BM_W6TrainStep(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_bench::KilnW6 w;  // builds, compiles and takes the warm-up steps outside the timing
  kiln_bench::time_train_steps(state, w, kiln_bench::w6_batch);
  state.counters["peak_rss_MiB"] = kiln_bench::peak_rss_mib();
}

}  // namespace

BENCHMARK(BM_W6TrainStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
