// Issue 12: what the drift monitor costs on W3 (batch-1 latency of the 784-128-10 MLP through
// kiln::infer::Model, benchmarks/w3_infer_latency.cpp), at 1 thread: the plain run, the run
// through Monitor::run observing every request (sample_every 1: 784 numeric features binned
// against 20 quantile edges each, plus the predicted class), and with the default sampling.
// The profile is built from 2000 seeded uniform images like W3's input and the model's
// predictions on them, and stored in the model file ("kiln.profile") as an app would ship it.
//
//   bench_monitor --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>

#include "kiln/core/rng.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/monitor/monitor.hpp"
#include "workloads.hpp"

namespace {

using kiln_bench::w1_features;

// The W3 model with a reference profile section.
kiln::infer::Model w3_with_profile() {
  const auto plain = kiln::infer::Model::load(kiln_bench::KilnW3::model_bytes(), "w3");
  constexpr std::int64_t rows = 2000;
  kiln::Rng rng(17);
  std::vector<float> pixels(static_cast<std::size_t>(rows * w1_features));
  for (auto& p : pixels) p = static_cast<float>(rng.uniform());
  const kiln::Tensor x = kiln::Tensor::from(pixels, {rows, w1_features});
  const kiln::Tensor probs = plain.run({{"image", x}})[0];
  const kiln::monitor::Profile profile =
      kiln::monitor::build_profile({.input = "image",
                                    .features = x,
                                    .predictions = probs,
                                    .predicted = kiln::monitor::PredictionKind::classes,
                                    .output = "probs"});
  return kiln::infer::Model::load(
      kiln_bench::KilnW3::model_bytes({{kiln::monitor::profile_section, profile.to_bytes()}}),
      "w3-profile");
}

kiln::Feeds w3_feeds() {
  return {{"image", kiln::Tensor::from(kiln_bench::KilnW3::image(), {1, w1_features})}};
}

void BM_W3Plain(benchmark::State& state) {
  kiln::set_num_threads(1);
  const auto model = w3_with_profile();
  const kiln::Feeds feeds = w3_feeds();
  float first = model.run(feeds)[0].data<float>()[0];
  for (auto _ : state) {
    first = model.run(feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(first);
  }
  if (!std::isfinite(first)) state.SkipWithError("non-finite probabilities");
}

// range(0): sample_every (0: the default, MonitorOptions{}.sample_every).
void BM_W3Monitored(benchmark::State& state) {
  kiln::set_num_threads(1);
  const auto model = w3_with_profile();
  kiln::monitor::MonitorOptions options;
  if (state.range(0) > 0) options.sample_every = static_cast<std::uint32_t>(state.range(0));
  kiln::monitor::Monitor monitor(model, options);
  const kiln::Feeds feeds = w3_feeds();
  float first = monitor.run(model, feeds)[0].data<float>()[0];
  for (auto _ : state) {
    first = monitor.run(model, feeds)[0].data<float>()[0];
    benchmark::DoNotOptimize(first);
  }
  const auto report = monitor.report();
  state.counters["sample_every"] = static_cast<double>(options.sample_every);
  if (!std::isfinite(first) || report.rows_observed == 0) state.SkipWithError("nothing observed");
}

// Monitor::observe alone on one W3 request (input row and output); range(0): sample_every.
void BM_MonitorObserveW3Row(benchmark::State& state) {
  const auto model = w3_with_profile();
  kiln::monitor::MonitorOptions options;
  options.sample_every = static_cast<std::uint32_t>(state.range(0));
  kiln::monitor::Monitor monitor(model, options);
  const kiln::Feeds feeds = w3_feeds();
  const std::vector<kiln::Tensor> out = model.run(feeds);
  for (auto _ : state) monitor.observe(feeds, out);
  if (monitor.report().rows_observed == 0) state.SkipWithError("nothing observed");
}

// Monitor::report on W3's 784 features after 100000 seeded uniform images (off the request
// path: what a periodic snapshot costs).
void BM_MonitorReportW3(benchmark::State& state) {
  const auto model = w3_with_profile();
  kiln::monitor::Monitor monitor(model);
  kiln::Rng rng(23);
  std::vector<float> pixels(static_cast<std::size_t>(1000 * w1_features));
  for (int batch = 0; batch < 100; ++batch) {
    for (auto& p : pixels) p = static_cast<float>(rng.uniform());
    monitor.observe({{"image", kiln::Tensor::from(pixels, {1000, w1_features})}});
  }
  for (auto _ : state) benchmark::DoNotOptimize(monitor.report().max_psi);
}

}  // namespace

BENCHMARK(BM_W3Plain)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_W3Monitored)
    ->ArgName("sample_every")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_MonitorObserveW3Row)
    ->ArgName("sample_every")
    ->Arg(1)
    ->Arg(32)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_MonitorReportW3)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
