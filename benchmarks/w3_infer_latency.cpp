// DESIGN.md workload W3: batch-1 inference latency of a 784-128-10 MLP with ReLU and softmax
// through the slim runtime, kiln::infer::Model. The model (kiln::nn layers, seeded weights)
// is saved to memory with kiln::serialize_model and loaded with Model::load; one iteration
// is one Model::run on one 784-pixel image (feeds checked, an executable taken from the
// pool, the plan run, the output copied out). Reported at 1 thread.
//
//   w3_infer_latency --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"

namespace {

constexpr std::int64_t pixels = 784;

kiln::infer::Model w3_model() {
  kiln::Graph g;
  kiln::Value x = g.input("image", {kiln::batch, pixels});
  kiln::Value h = kiln::nn::dense(g, x, 128, {.activation = kiln::relu, .name = "fc1"});
  kiln::Value probs = kiln::softmax(kiln::nn::dense(g, h, 10, {.name = "fc2"}), -1, "probs");
  const std::vector<std::uint8_t> bytes =
      kiln::serialize_model(g, {.inputs = {x}, .outputs = {probs}});
  return kiln::infer::Model::load(bytes, "w3");
}

void BM_W3InferLatency(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  const kiln::infer::Model model = w3_model();
  kiln::Rng rng(3);
  std::vector<float> image(pixels);
  for (auto& p : image) p = static_cast<float>(rng.uniform());
  const kiln::Feeds feeds{{"image", kiln::Tensor::from(image, {1, pixels})}};
  float sum = 0.0f;
  (void)model.run(feeds);  // compiles the batch-1 plan outside the timing
  for (auto _ : state) {
    std::vector<kiln::Tensor> out = model.run(feeds);
    sum = out[0].data<float>()[0];
    benchmark::DoNotOptimize(sum);
  }
  if (!std::isfinite(sum)) state.SkipWithError("non-finite probabilities");
}

}  // namespace

BENCHMARK(BM_W3InferLatency)
    ->ArgName("threads")
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
