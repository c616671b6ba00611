// Elementwise ops (add of two tensors, relu, exp) and softmax over rows of 1000, from
// L1-sized to DRAM-sized tensors (4K, 64K, 1M, 16M elements; softmax 4, 64, 1000 and 16000
// rows), as one-node Executables over inputs. Reports elements/s and bytes/s (bytes read
// plus written, the output counted once); no FLOP rate, since these are memory-bound.
//
//   kernel_elementwise --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kernel_common.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

namespace {

enum Kind : std::int64_t { add_op = 0, relu_op = 1, exp_op = 2, softmax_op = 3 };
constexpr std::int64_t softmax_row = 1000;

void BM_Elementwise(benchmark::State& state) {
  const auto kind = static_cast<Kind>(state.range(0));
  kiln::set_num_threads(static_cast<int>(state.range(2)));
  kiln_kbench::reset_peak_rss();
  // Softmax sizes are rounded to whole rows of 1000.
  const std::int64_t rows = std::max<std::int64_t>(1, state.range(1) / softmax_row);
  const kiln::Shape shape =
      kind == softmax_op ? kiln::Shape{rows, softmax_row} : kiln::Shape{state.range(1)};
  kiln::Graph g;
  kiln::Value x = g.input("x", shape);
  kiln::Feeds feeds = {{"x", kiln_kbench::random_tensor(shape, 1)}};
  kiln::Value out;
  switch (kind) {
    case add_op:
      out = kiln::add(x, g.input("y", shape));
      feeds.emplace_back("y", kiln_kbench::random_tensor(shape, 2));
      break;
    case relu_op:
      out = kiln::relu(x);
      break;
    case exp_op:
      out = kiln::exp(x);
      break;
    case softmax_op:
      out = kiln::softmax(x);
      break;
  }
  kiln::Executable exe(g, {out});
  float first = exe.run_views(feeds)[0].data<float>()[0];
  for (auto _ : state) {
    first = exe.run_views(feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(first);
  }
  if (!std::isfinite(first)) state.SkipWithError("non-finite output");
  const std::int64_t numel = shape.numel();
  const std::int64_t tensors = kind == add_op ? 3 : 2;
  state.SetItemsProcessed(state.iterations() * numel);
  state.SetBytesProcessed(state.iterations() * numel * tensors *
                          static_cast<std::int64_t>(sizeof(float)));
  state.SetLabel(kind == add_op    ? "add"
                 : kind == relu_op ? "relu"
                 : kind == exp_op  ? "exp"
                                   : "softmax");
  kiln_kbench::report(state, 0.0);
}

void elementwise_args(benchmark::internal::Benchmark* b) {
  for (std::int64_t kind : {add_op, relu_op, exp_op, softmax_op}) {
    for (std::int64_t numel : {1 << 12, 1 << 16, 1 << 20, 1 << 24}) b->Args({kind, numel, 1});
    for (std::int64_t numel : {1 << 20, 1 << 24}) b->Args({kind, numel, 2});
  }
}

}  // namespace

BENCHMARK(BM_Elementwise)
    ->ArgNames({"op", "numel", "threads"})
    ->Apply(elementwise_args)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
