// DESIGN.md workload W5: sgemm 1024x1024x1024 through Kiln's matmul (an Executable with one
// matmul node over two inputs, run_views per iteration, as a user would run it) against
// calling oneDNN's dnnl_sgemm directly (the library Kiln links), at 1 and 2 threads.
// Reported as GFLOP/s = 2*M*N*K / time. Issue 5's floor: Kiln >= 0.9x direct sgemm.
// BM_W5KilnMatmulEigen runs the same Executable restricted to the Eigen backend (what the
// portable build gets).
//
//   w5_sgemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "kernel_common.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

#if KILN_BENCH_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

namespace {

constexpr std::int64_t n = 1024;
constexpr double flops = 2.0 * n * n * n;

void run_kiln(benchmark::State& state, const std::string& backend) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_kbench::reset_peak_rss();
  kiln::Graph g;
  kiln::Value a = g.input("a", {n, n});
  kiln::Value b = g.input("b", {n, n});
  kiln::Executable exe(g, {kiln::matmul(a, b)}, {.backend = backend});
  const kiln::Feeds feeds = {{"a", kiln_kbench::random_tensor({n, n}, 1)},
                             {"b", kiln_kbench::random_tensor({n, n}, 2)}};
  float out = exe.run_views(feeds)[0].data<float>()[0];  // compiles and prepares
  for (auto _ : state) {
    out = exe.run_views(feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(out);
  }
  if (!std::isfinite(out)) state.SkipWithError("non-finite product");
  kiln_kbench::report(state, flops);
  state.SetLabel(backend.empty() ? "kiln (best backend)" : "kiln (" + backend + ")");
}

void BM_W5KilnMatmul(benchmark::State& state) { run_kiln(state, {}); }
void BM_W5KilnMatmulEigen(benchmark::State& state) { run_kiln(state, "eigen"); }

#if KILN_BENCH_WITH_ONEDNN
void BM_W5DnnlSgemm(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));  // OpenMP, which oneDNN uses
  kiln_kbench::reset_peak_rss();
  const kiln::Tensor a = kiln_kbench::random_tensor({n, n}, 1);
  const kiln::Tensor b = kiln_kbench::random_tensor({n, n}, 2);
  std::vector<float> c(static_cast<std::size_t>(n * n));
  auto call = [&] {
    return dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n, 0.0f,
                      c.data(), n);
  };
  if (call() != dnnl_success) state.SkipWithError("dnnl_sgemm failed");  // warm-up
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  if (!std::isfinite(c[0])) state.SkipWithError("non-finite product");
  kiln_kbench::report(state, flops);
  state.SetLabel("dnnl_sgemm");
}
BENCHMARK(BM_W5DnnlSgemm)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

}  // namespace

BENCHMARK(BM_W5KilnMatmul)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_W5KilnMatmulEigen)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
