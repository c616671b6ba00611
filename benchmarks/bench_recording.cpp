// What recording a run costs (kiln/report/run_record.hpp): training steps of the digits
// models (examples/train_digits_mlp: 64-128-10 MLP; examples/train_digits_cnn: conv 3x3
// 1->16, conv 3x3 16->32, max pool 2, dense 512->128, dense 128->10; batch 32, Adam) on a
// synthetic batch of digits' shapes, in the custom loop the record() callback runs:
//
//   mode 0  no recording: step.run, opt.step
//   mode 1  recording at the default sampling (RecordOptions{}: a metrics line every step,
//           per-layer statistics every 50 steps): one iteration is 50 steps, one of them
//           sampled, so the time per step includes the sampled steps' share
//   mode 2  a sampled step alone (sample_every 1): activations, gradients, weights, one
//           layers.jsonl line and one metrics line per step
//   mode 3  metrics lines only (sample_every 0), 50 steps per iteration
//   mode 4  per-layer statistics only (log_every 0), 50 steps per iteration
//
// Counter step_us is the time per training step. Arguments: model (0 MLP, 1 CNN), mode,
// threads (1, or 0: Kiln's default).
//
//   bench_recording --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/report/run_record.hpp"
#include "kiln/train/train_step.hpp"
#include "kiln/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
constexpr std::int64_t batch = 32, side = 8, classes = 10, period = 50;

struct Digits {
  kiln::Graph g;
  kiln::Value logits, loss;
  std::unique_ptr<kiln::TrainStep> step;
  std::unique_ptr<kiln::optim::Adam> opt;
  kiln::Feeds feeds;

  explicit Digits(bool cnn) {
    namespace nn = kiln::nn;
    kiln::Rng rng(42);
    std::vector<float> x(static_cast<std::size_t>(batch * side * side));
    std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
    for (std::int64_t i = 0; i < batch; ++i) {
      const auto label = static_cast<std::int32_t>(rng.below(classes));
      y[static_cast<std::size_t>(i)] = label;
      for (std::int64_t j = 0; j < side * side; ++j)
        x[static_cast<std::size_t>(i * side * side + j)] =
            static_cast<float>(rng.uniform() * ((j / 6) % classes == label ? 1.0 : 0.3));
    }
    auto label = g.input("label", {kiln::batch}, kiln::i32);
    if (cnn) {
      auto image = g.input("image", {kiln::batch, 1, side, side});
      const nn::Sequential net{
          nn::Conv2d(16, {3, 3}, {.padding = {1, 1}, .activation = kiln::relu, .name = "conv1"}),
          nn::Conv2d(32, {3, 3}, {.padding = {1, 1}, .activation = kiln::relu, .name = "conv2"}),
          nn::MaxPool2d({2, 2}),
          nn::Flatten(),
          nn::Dense(128, {.activation = kiln::relu, .name = "fc1"}),
          nn::Dense(classes, {.name = "fc2"}),
      };
      logits = net(image);
      feeds = {{"image", kiln::Tensor::from(x, {batch, 1, side, side})},
               {"label", kiln::Tensor::from(y, {batch})}};
    } else {
      auto pixels = g.input("pixels", {kiln::batch, side * side});
      auto h = nn::dense(pixels, 128, {.activation = kiln::relu, .name = "fc1"});
      logits = nn::dense(h, classes, {.name = "fc2"});
      feeds = {{"pixels", kiln::Tensor::from(x, {batch, side * side})},
               {"label", kiln::Tensor::from(y, {batch})}};
    }
    loss = kiln::softmax_cross_entropy(logits, label);
    step = std::make_unique<kiln::TrainStep>(loss);
    opt = std::make_unique<kiln::optim::Adam>(step->named_parameters(),
                                              kiln::optim::AdamOptions{.lr = 1e-3});
  }
};

int default_threads() {
  static const int n = kiln::num_threads();
  return n;
}

void BM_Recording(benchmark::State& state) {
  const bool cnn = state.range(0) == 1;
  const auto mode = state.range(1);
  kiln::set_num_threads(state.range(2) == 0 ? default_threads() : static_cast<int>(state.range(2)));
  Digits m(cnn);
  kiln::TrainStep& step = *m.step;
  const std::string dir =
      (fs::temp_directory_path() / ("kiln_bench_recording_" + std::to_string(::getpid()) + "_" +
                                    std::to_string(state.range(0)) + std::to_string(mode)))
          .string();
  fs::remove_all(dir);
  std::unique_ptr<kiln::report::RunRecorder> rec;
  if (mode > 0) {
    kiln::report::RecordOptions o{.dir = dir};
    if (mode == 2) o.sample_every = 1;
    if (mode == 3) o.sample_every = 0;
    if (mode == 4) o.log_every = 0;
    rec = std::make_unique<kiln::report::RunRecorder>(o);
    rec->set_model(m.g, {m.logits}, &step.executable());
  }
  std::int64_t s = 0;
  double loss = 0.0;
  // One recorded step, as kiln::report::record() takes it.
  auto recorded_step = [&] {
    kiln::report::StepSample sample = rec->sample(s, 0, step);
    loss = step.run(m.feeds, sample.observer());
    sample.before_update();
    m.opt->step(step.gradients());
    sample.after_update();
    rec->log_step(s, 0, {{"loss", loss}, {"lr", m.opt->lr()}});
    ++s;
  };
  auto plain_step = [&] {
    loss = step.run(m.feeds);
    m.opt->step(step.gradients());
    ++s;
  };
  // Warm up (plans compiled; the recorder's first sample learns the plan), then
  // continue from a sampled step.
  for (int i = 0; i < 5; ++i) mode > 0 ? recorded_step() : plain_step();
  s = period * 10;
  const std::int64_t steps = mode == 2 ? 1 : period;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < steps; ++i) mode > 0 ? recorded_step() : plain_step();
  }
  if (!std::isfinite(loss)) state.SkipWithError("non-finite loss");
  state.counters["step_us"] = benchmark::Counter(
      static_cast<double>(steps) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations() * steps);
  if (rec) rec->finish();
  rec.reset();
  fs::remove_all(dir);
}

BENCHMARK(BM_Recording)
    ->ArgNames({"cnn", "mode", "threads"})
    ->ArgsProduct({{0, 1}, {0, 1, 2, 3, 4}, {1, 0}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The same through the Trainer, as users record a fit (kiln::report::record): one iteration
// is a fit of 10 epochs of 50 batches of 32 (500 steps, shuffled, no metrics), without the
// recording callback (record 0), with it at the default sampling (1), or with it writing
// only what a fit writes once (2: sample_every 0, log_every 0: graph.json and run.json at
// the first step, the epoch lines). The recorder is made and finished outside the timing,
// everything the callback does in the fit inside. Counter step_us: time per step.
void BM_TrainerFit(benchmark::State& state) {
  const bool record = state.range(0) >= 1;
  kiln::set_num_threads(1);
  constexpr std::int64_t batches = 50, epochs = 10;
  Digits m(false);
  // 50 batches: the benchmark batch repeated with a little noise.
  const kiln::Tensor& x0 = m.feeds[0].second;
  const kiln::Tensor& y0 = m.feeds[1].second;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  kiln::Rng rng(7);
  for (std::int64_t b = 0; b < batches; ++b)
    for (std::int64_t r = 0; r < batch; ++r) {
      for (std::int64_t j = 0; j < side * side; ++j)
        x.push_back(static_cast<float>(x0.at(r * side * side + j) + rng.uniform(0.0, 0.05)));
      y.push_back(static_cast<std::int32_t>(y0.at(r)));
    }
  const kiln::data::Dataset train(
      {{"pixels", kiln::Tensor::from(x, {batches * batch, side * side})},
       {"label", kiln::Tensor::from(y, {batches * batch})}});
  kiln::optim::Adam opt(kiln::nn::named_parameters(m.g), {.lr = 1e-3});
  kiln::train::Trainer trainer(m.g, {.loss = m.loss, .predictions = m.logits, .optimizer = &opt});
  const std::string base =
      (fs::temp_directory_path() / ("kiln_bench_trainer_fit_" + std::to_string(::getpid())))
          .string();
  std::int64_t run = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<kiln::report::RunRecorder> rec;
    kiln::train::FitOptions fo{
        .epochs = epochs, .batch_size = batch, .seed = 1, .progress = kiln::train::Progress::none};
    if (record) {
      const std::string dir = base + "/" + std::to_string(run++);
      kiln::report::RecordOptions ro{.dir = dir};
      if (state.range(0) == 2) ro.sample_every = 0, ro.log_every = 0;
      rec = std::make_unique<kiln::report::RunRecorder>(ro);
      fo.callbacks = {kiln::report::record(*rec)};
    }
    state.ResumeTiming();
    const kiln::train::History h = trainer.fit(train, fo);
    state.PauseTiming();
    if (!std::isfinite(h.epochs.back().at("loss"))) state.SkipWithError("non-finite loss");
    if (rec) rec->finish();
    rec.reset();
    state.ResumeTiming();
  }
  fs::remove_all(base);
  state.counters["step_us"] = benchmark::Counter(
      static_cast<double>(batches * epochs) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_TrainerFit)
    ->ArgName("record")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One metrics line (RunRecorder::log_step with a loss and a learning rate): formatting and
// one write() to the file.
void BM_MetricsLine(benchmark::State& state) {
  const std::string dir =
      (fs::temp_directory_path() / ("kiln_bench_metrics_line_" + std::to_string(::getpid())))
          .string();
  fs::remove_all(dir);
  {
    kiln::report::RunRecorder rec({.dir = dir});
    std::int64_t s = 0;
    for (auto _ : state) {
      rec.log_step(s, 0, {{"loss", 0.1234567 + static_cast<double>(s) * 1e-9}, {"lr", 1e-3}});
      ++s;
    }
    rec.finish();
  }
  fs::remove_all(dir);
}

BENCHMARK(BM_MetricsLine)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
