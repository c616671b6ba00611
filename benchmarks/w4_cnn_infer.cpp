// DESIGN.md workload W4: inference throughput of the W2 network (see w2_cnn_train.cpp), the
// forward pass to the logits on a batch of 64 1x28x28 images with an inference executable
// (kiln::Executable, evaluation mode, CompileOptions::constant_parameters as in infer::Model:
// the oneDNN kernels pack the weights once).
// Reported at 1 and 2 threads as samples/s, GFLOP/s (the layers' counted FLOPs, see
// workloads.hpp) and peak_rss_MiB, the process's peak resident set (process-wide: it
// includes the benchmarks run before in the same process).
//
//   w4_cnn_infer --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kiln/core/threads.hpp"
#include "workloads.hpp"

namespace {

void BM_W4CnnInfer(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_bench::KilnW4 w4;  // builds, compiles and runs once outside the timing
  float first = 0.0f;
  for (auto _ : state) {
    first = w4.run();
    benchmark::DoNotOptimize(first);
  }
  state.SetItemsProcessed(state.iterations() * kiln_bench::w2_batch);
  state.counters["GFLOP/s"] = benchmark::Counter(
      kiln_bench::w4_forward_flops * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
  state.counters["peak_rss_MiB"] = kiln_bench::peak_rss_mib();
  if (!std::isfinite(first)) state.SkipWithError("non-finite logits");
}

}  // namespace

BENCHMARK(BM_W4CnnInfer)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
