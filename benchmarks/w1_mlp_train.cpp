// DESIGN.md workload W1: one training step of a 784-1024-1024-10 MLP with ReLU on a batch
// of 256, softmax cross-entropy, SGD with momentum 0.9 (run the step executable for the
// loss and gradients, then opt.step).
// Reported at 1 and 2 threads as samples/s, GFLOP/s (the layers' counted FLOPs, see
// workloads.hpp) and peak_rss_MiB, the process's peak resident set (process-wide: it
// includes the benchmarks run before in the same process).
//
//   w1_mlp_train --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/autodiff.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "workloads.hpp"

namespace {

constexpr std::int64_t batch = 256;
constexpr std::int64_t features = 784;
constexpr std::int64_t hidden = 1024;
constexpr std::int64_t classes = 10;

/// Synthetic but learnable data: the label is determined by the pixels, so the loss of
/// repeated steps on the same batch must go down.
kiln::Feeds make_batch(std::uint64_t seed) {
  kiln::Rng rng(seed);
  std::vector<float> x(static_cast<std::size_t>(batch * features));
  std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) {
    const auto label = static_cast<std::int32_t>(rng.below(classes));
    y[static_cast<std::size_t>(i)] = label;
    for (std::int64_t j = 0; j < features; ++j) {
      const bool on = j % classes == label;
      x[static_cast<std::size_t>(i * features + j)] =
          static_cast<float>(rng.uniform() * (on ? 1.0 : 0.5));
    }
  }
  return {{"pixels", kiln::Tensor::from(x, {batch, features})},
          {"label", kiln::Tensor::from(y, {batch})}};
}

void BM_W1MlpTrainStep(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));

  kiln::Graph g;
  kiln::Value x = g.input("pixels", {kiln::batch, features});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value h1 = kiln::nn::dense(g, x, hidden, {.activation = kiln::relu, .name = "fc1"});
  kiln::Value h2 = kiln::nn::dense(g, h1, hidden, {.activation = kiln::relu, .name = "fc2"});
  kiln::Value logits = kiln::nn::dense(g, h2, classes, {.name = "fc3"});
  kiln::Value loss = kiln::softmax_cross_entropy(logits, y);
  std::vector<kiln::Value> outputs{loss};
  for (kiln::Value grad : kiln::grad(loss, g.parameters())) outputs.push_back(grad);
  kiln::CompileOptions train_mode;
  train_mode.training = true;  // training mode: dropout (if any) is active
  kiln::Executable step(g, outputs, train_mode);
  kiln::optim::SGD opt(kiln::nn::parameter_tensors(g), {.lr = 0.01, .momentum = 0.9});

  const kiln::Feeds feeds = make_batch(1234);
  // Compile the plan for this batch size and take a first step outside the timing.
  std::span<const kiln::Tensor> out = step.run_views(feeds);
  const double first_loss = out[0].item();
  opt.step(out.subspan(1));

  for (auto _ : state) {
    out = step.run_views(feeds);
    opt.step(out.subspan(1));
    benchmark::ClobberMemory();
  }
  const double last_loss = step.run_views(feeds)[0].item();

  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["GFLOP/s"] =
      benchmark::Counter(kiln_bench::w1_train_flops * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["peak_rss_MiB"] = kiln_bench::peak_rss_mib();
  state.counters["loss"] = last_loss;
  if (!std::isfinite(last_loss) || !(last_loss < first_loss)) {
    state.SkipWithError(("loss did not decrease: " + std::to_string(first_loss) + " -> " +
                         std::to_string(last_loss))
                            .c_str());
  }
}

}  // namespace

BENCHMARK(BM_W1MlpTrainStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
