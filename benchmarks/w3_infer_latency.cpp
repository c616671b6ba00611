// DESIGN.md workload W3: batch-1 inference latency of a 784-128-10 MLP with ReLU and softmax
// through the slim runtime, kiln::infer::Model. The model (kiln::nn layers, seeded weights)
// is saved to memory with kiln::serialize_model and loaded with Model::load; one iteration
// is one Model::run on one 784-pixel image (feeds checked, an executable taken from the
// pool, the plan run, the output copied out). Reported at 1 thread. The same workload
// (kiln_bench::KilnW3) runs against libtorch in benchmarks/compare. BM_W3InferLatencyBound
// runs it through Model::run_into instead: the probabilities are written into a tensor made
// once (I/O binding), so nothing is allocated per run.
//
//   w3_infer_latency --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kiln/core/threads.hpp"
#include "workloads.hpp"

namespace {

// Times `run` (KilnW3::run or KilnW3::run_bound) on one image per iteration.
template <auto Run>
void time_w3(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_bench::KilnW3 w3;  // compiles the batch-1 plan outside the timing
  float first = 0.0f;
  for (auto _ : state) {
    first = (w3.*Run)();
    benchmark::DoNotOptimize(first);
  }
  state.SetItemsProcessed(state.iterations());
  if (!std::isfinite(first)) state.SkipWithError("non-finite probabilities");
}

void BM_W3InferLatency(benchmark::State& state) { time_w3<&kiln_bench::KilnW3::run>(state); }

void BM_W3InferLatencyBound(benchmark::State& state) {
  time_w3<&kiln_bench::KilnW3::run_bound>(state);
}

}  // namespace

BENCHMARK(BM_W3InferLatencyBound)
    ->ArgName("threads")
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(BM_W3InferLatency)
    ->ArgName("threads")
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
