// The optimizer step over one parameter tensor of 1M and 16M f32 elements: SGD with momentum
// 0.9 and Adam, each step a fused pass over the parameter, its gradient and the optimizer's
// state. Reports parameters/s and bytes/s (SGD reads p, g, buf and writes p, buf: 5 floats
// per parameter; Adam reads p, g, m, v and writes p, m, v: 7).
//
//   kernel_optim --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <vector>

#include "kernel_common.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/optim/optimizer.hpp"

namespace {

enum Kind : std::int64_t { sgd = 0, adam = 1 };

void BM_OptimizerStep(benchmark::State& state) {
  const auto kind = static_cast<Kind>(state.range(0));
  const std::int64_t numel = state.range(1);
  kiln::set_num_threads(static_cast<int>(state.range(2)));
  kiln_kbench::reset_peak_rss();
  std::vector<kiln::Tensor> params = {kiln_kbench::random_tensor({numel}, 1)};
  // Small gradients keep the parameters finite over many steps.
  const std::vector<kiln::Tensor> grads = {kiln::Tensor::full({numel}, 1e-6)};
  std::unique_ptr<kiln::optim::Optimizer> opt;
  if (kind == sgd)
    opt = std::make_unique<kiln::optim::SGD>(params,
                                             kiln::optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
  else
    opt = std::make_unique<kiln::optim::Adam>(params, kiln::optim::AdamOptions{.lr = 1e-3});
  opt->step(grads);  // the first step allocates and initialises the state
  for (auto _ : state) {
    opt->step(grads);
    benchmark::ClobberMemory();
  }
  if (!std::isfinite(params[0].data<float>()[0])) state.SkipWithError("non-finite parameter");
  state.SetItemsProcessed(state.iterations() * numel);
  state.SetBytesProcessed(state.iterations() * numel * (kind == sgd ? 5 : 7) *
                          static_cast<std::int64_t>(sizeof(float)));
  state.SetLabel(kind == sgd ? "sgd momentum" : "adam");
  kiln_kbench::report(state, 0.0);
}

void optim_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t threads : {1, 2})
    for (std::int64_t kind : {sgd, adam})
      for (std::int64_t numel : {1 << 20, 1 << 24}) b->Args({kind, numel, threads});
}

}  // namespace

BENCHMARK(BM_OptimizerStep)
    ->ArgNames({"opt", "numel", "threads"})
    ->Apply(optim_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
