// Iris with a hand-written training loop (TrainStep, Adam, shuffled batches), recorded with
// kiln::report::RunRecorder and StepSample into the same run folder the Trainer's record()
// callback writes (docs/run-format.md): metrics lines, per-layer statistics every 10 steps,
// graph.json with the compiled plan, data.json, run.json. The last line printed is
// test_accuracy=<value>.
//
//   train_iris_custom_loop [path/to/iris.csv [run folder]]
//
// Each run of the example replaces the run folder's previous record.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/report/run_record.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/train_step.hpp"

#ifndef KILN_IRIS_CSV
#define KILN_IRIS_CSV "data/iris.csv"
#endif
#ifndef KILN_IRIS_LOOP_RUN
#define KILN_IRIS_LOOP_RUN "runs/iris_custom_loop"
#endif

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : KILN_IRIS_CSV;
  const std::string run_dir = argc > 2 ? argv[2] : KILN_IRIS_LOOP_RUN;
  constexpr std::uint64_t seed = 1;
  constexpr std::int64_t epochs = 60, batch_size = 16;
  auto [data, schema] = kiln::data::read_csv(path, {.target = "species"});
  auto [train, test] =
      kiln::data::split(data, {.test_fraction = 0.2, .seed = seed, .stratify = true});

  kiln::Graph g;
  kiln::Value x = g.input("features", {kiln::batch, 4});
  kiln::Value y = g.input("target", {kiln::batch}, kiln::i32);
  kiln::Value h = kiln::nn::dense(x, 16, {.activation = kiln::relu, .name = "fc1"});
  kiln::Value logits = kiln::nn::dense(h, 3, {.name = "fc2"});
  kiln::TrainStep step(kiln::softmax_cross_entropy(logits, y));
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 1e-2});

  // The run folder: what the loop does not know by itself is told once.
  std::filesystem::remove_all(run_dir);
  kiln::report::RunRecorder run({.dir = run_dir, .name = "iris_custom_loop", .sample_every = 10});
  run.set_config(R"({"model": "4-16-3 MLP, ReLU", "optimizer": "adam", "lr": 0.01,
                     "epochs": 60, "batch_size": 16})");
  run.set_seed(seed);
  run.add_data_file(path);
  run.set_data(train, test.size(), path, "species");
  run.set_model(g, {logits}, &step.executable());  // graph.json, with the plan's kernels

  kiln::Rng rng(seed);
  std::vector<std::int64_t> order(static_cast<std::size_t>(train.size()));
  std::int64_t step_index = 0;
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[static_cast<std::size_t>(rng.below(i))]);
    double loss_sum = 0.0;
    std::int64_t batches = 0;
    for (std::size_t b = 0; b < order.size(); b += batch_size) {
      const std::size_t end = std::min(order.size(), b + batch_size);
      const kiln::Feeds feeds = train.gather(std::span(order).subspan(b, end - b));
      // On sampled steps the sample observes the run and takes gradients and weights;
      // on the others every call is a no-op.
      kiln::report::StepSample sample = run.sample(step_index, epoch, step);
      const double loss = step.run(feeds, sample.observer());
      sample.before_update();
      opt.step(step.gradients());
      sample.after_update();
      run.log_step(step_index, epoch, {{"loss", loss}, {"lr", opt.lr()}});
      loss_sum += loss;
      ++batches;
      ++step_index;
    }
    run.log_epoch(epoch, step_index, {{"loss", loss_sum / static_cast<double>(batches)}});
  }

  kiln::Executable predict(g, {logits});
  const kiln::Tensor scores = predict.run({{"features", test["features"]}})[0];
  const double acc = kiln::metrics::accuracy(scores, test["target"]);
  run.finish("completed", {{"test_accuracy", acc}});
  std::printf("run recorded in %s\n", run.dir().c_str());
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_iris_custom_loop: %s\n", e.what());
  return 1;
}
