// Matmul through an Executable with one matmul node over two inputs [M, K] x [K, N], at
// square (128, 512, 1024) and skinny shapes (W1's first layer 256x784x1024, a batch-1
// layer 1x784x128, a tall 4096x64x64). GFLOP/s = 2*M*N*K / time.
//
//   kernel_matmul --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kernel_common.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

namespace {

void BM_Matmul(benchmark::State& state) {
  const std::int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  kiln::set_num_threads(static_cast<int>(state.range(3)));
  kiln_kbench::reset_peak_rss();
  kiln::Graph g;
  kiln::Value a = g.input("a", {m, k});
  kiln::Value b = g.input("b", {k, n});
  kiln::Executable exe(g, {kiln::matmul(a, b)});
  const kiln::Feeds feeds = {{"a", kiln_kbench::random_tensor({m, k}, 1)},
                             {"b", kiln_kbench::random_tensor({k, n}, 2)}};
  float out = exe.run_views(feeds)[0].data<float>()[0];
  for (auto _ : state) {
    out = exe.run_views(feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(out);
  }
  if (!std::isfinite(out)) state.SkipWithError("non-finite product");
  state.SetItemsProcessed(state.iterations());
  kiln_kbench::report(state, 2.0 * static_cast<double>(m * n * k));
}

}  // namespace

BENCHMARK(BM_Matmul)
    ->ArgNames({"M", "K", "N", "threads"})
    ->Args({128, 128, 128, 1})
    ->Args({512, 512, 512, 1})
    ->Args({1024, 1024, 1024, 1})
    ->Args({256, 784, 1024, 1})
    ->Args({1, 784, 128, 1})
    ->Args({4096, 64, 64, 1})
    ->Args({1024, 1024, 1024, 2})
    ->Args({256, 784, 1024, 2})
    ->Args({4096, 64, 64, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
