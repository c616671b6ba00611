// What TrainStep's non-finite checks cost on W1 (784-1024-1024-10 MLP, batch 256, one
// thread): mode 0 no check (TrainStepOptions::check_finite = false), 1 the default check
// of the loss and every gradient, 2 anomaly mode (every step's value is checked).
//
//   train_step_checks --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

namespace {

constexpr std::int64_t batch = 256, features = 784, hidden = 1024, classes = 10;

kiln::Feeds make_batch() {
  kiln::Rng rng(1234);
  std::vector<float> x(static_cast<std::size_t>(batch * features));
  std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) {
    const auto label = static_cast<std::int32_t>(rng.below(classes));
    y[static_cast<std::size_t>(i)] = label;
    for (std::int64_t j = 0; j < features; ++j)
      x[static_cast<std::size_t>(i * features + j)] =
          static_cast<float>(rng.uniform() * (j % classes == label ? 1.0 : 0.5));
  }
  return {{"pixels", kiln::Tensor::from(x, {batch, features})},
          {"label", kiln::Tensor::from(y, {batch})}};
}

void BM_TrainStepChecks(benchmark::State& state) {
  kiln::set_num_threads(1);
  const auto mode = state.range(0);
  kiln::Graph g;
  auto x = g.input("pixels", {kiln::batch, features});
  auto y = g.input("label", {kiln::batch}, kiln::i32);
  auto h = kiln::nn::dense(x, hidden, {.activation = kiln::relu, .name = "fc1"});
  h = kiln::nn::dense(h, hidden, {.activation = kiln::relu, .name = "fc2"});
  auto loss = kiln::softmax_cross_entropy(kiln::nn::dense(h, classes, {.name = "fc3"}), y);
  kiln::TrainStep step(loss, {.check_finite = mode >= 1, .detect_anomaly = mode == 2});
  kiln::optim::SGD opt(step.named_parameters(), {.lr = 0.01, .momentum = 0.9});
  const kiln::Feeds feeds = make_batch();
  double l = step.run(feeds);
  opt.step(step.gradients());
  for (auto _ : state) {
    l = step.run(feeds);
    opt.step(step.gradients());
  }
  if (!std::isfinite(l)) state.SkipWithError("non-finite loss");
  state.SetItemsProcessed(state.iterations() * batch);
}

BENCHMARK(BM_TrainStepChecks)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
