// The convolutions of W2 (batch 64, 5x5, pad 2): conv1 1->32 on 28x28 and conv2 32->64 on
// 14x14, each forward (conv2d), backward-data (conv_transpose2d of the output gradient with
// the same weights) and backward-weights (conv2d_backward_weights), as one-node Executables
// over inputs, the weights a parameter. Each direction counts 2*N*O*H*W*C*kh*kw FLOPs.
//
//   kernel_conv --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kernel_common.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

namespace {

enum Direction : std::int64_t { forward = 0, backward_data = 1, backward_weights = 2 };

constexpr std::int64_t batch = 64;
constexpr std::int64_t kernel = 5;

void BM_Conv(benchmark::State& state) {
  const auto direction = static_cast<Direction>(state.range(0));
  const std::int64_t c = state.range(1), o = state.range(2), side = state.range(3);
  kiln::set_num_threads(static_cast<int>(state.range(4)));
  kiln_kbench::reset_peak_rss();
  const kiln::Conv2dOptions opts{.padding = {2, 2}};
  const kiln::Shape x_shape{batch, c, side, side};
  const kiln::Shape y_shape{batch, o, side, side};
  kiln::Graph g;
  kiln::Value out;
  kiln::Feeds feeds;
  if (direction == forward) {
    kiln::Value w = g.parameter("w", kiln_kbench::random_tensor({o, c, kernel, kernel}, 3));
    out = kiln::conv2d(g.input("x", x_shape), w, {}, opts);
    feeds = {{"x", kiln_kbench::random_tensor(x_shape, 1)}};
  } else if (direction == backward_data) {
    kiln::Value w = g.parameter("w", kiln_kbench::random_tensor({o, c, kernel, kernel}, 3));
    out = kiln::conv_transpose2d(g.input("gy", y_shape), w, {}, {opts});
    feeds = {{"gy", kiln_kbench::random_tensor(y_shape, 2)}};
  } else {
    out = kiln::conv2d_backward_weights(g.input("x", x_shape), g.input("gy", y_shape),
                                        {kernel, kernel}, opts);
    feeds = {{"x", kiln_kbench::random_tensor(x_shape, 1)},
             {"gy", kiln_kbench::random_tensor(y_shape, 2)}};
  }
  kiln::Executable exe(g, {out}, {.training = direction != forward});
  float first = exe.run_views(feeds)[0].data<float>()[0];
  for (auto _ : state) {
    first = exe.run_views(feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(first);
  }
  if (!std::isfinite(first)) state.SkipWithError("non-finite output");
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetLabel(direction == forward         ? "forward"
                 : direction == backward_data ? "backward-data"
                                              : "backward-weights");
  kiln_kbench::report(state,
                      2.0 * static_cast<double>(batch * o * side * side * c * kernel * kernel));
}

void conv_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t threads : {1, 2})
    for (std::int64_t d : {forward, backward_data, backward_weights}) {
      b->Args({d, 1, 32, 28, threads});   // W2 conv1
      b->Args({d, 32, 64, 14, threads});  // W2 conv2
    }
}

}  // namespace

BENCHMARK(BM_Conv)
    ->ArgNames({"dir", "C", "O", "HW", "threads"})
    ->Apply(conv_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
