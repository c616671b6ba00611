// Trains a 64-128-10 MLP on the UCI handwritten digits (data/digits.csv: 8x8 images with
// pixels 0..16 and a label 0..9) with a custom training loop, then evaluates it on a
// held-out 20% split. The last line printed is test_accuracy=<value>.
//
//   train_digits_mlp [path/to/digits.csv [path/to/digits_mlp.kiln]]
//
// The trained model (inputs "pixels", output "probs": softmax of the logits) is saved with
// kiln::save_model, by default next to the program, for examples/infer_digits.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common/digits.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"

#ifndef KILN_DIGITS_MLP_MODEL
#define KILN_DIGITS_MLP_MODEL "digits_mlp.kiln"
#endif
#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

constexpr std::int64_t pixels = 64;
constexpr std::int64_t classes = 10;
constexpr std::uint64_t seed = 42;
constexpr std::int64_t batch_size = 32;
constexpr int epochs = 30;

}  // namespace

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
  const kiln_examples::Digits data = kiln_examples::load_digits(path);

  // Seeded 80/20 split.
  kiln::Rng rng(seed);
  auto [train, test] = kiln_examples::split_80_20(data.size(), rng);
  auto make_batch = [&](const std::vector<std::int64_t>& rows, std::int64_t begin,
                        std::int64_t end) {
    return kiln_examples::digit_batch(data, rows, begin, end, "pixels", {pixels});
  };
  std::printf("digits: %zu training and %zu test images\n", train.size(), test.size());

  // The model: 64 -> 128 (ReLU) -> 10, and its loss. Layers take the graph from their input.
  kiln::Graph g;
  kiln::Value x = g.input("pixels", {kiln::batch, pixels});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value h = kiln::nn::dense(x, 128, {.activation = kiln::relu, .name = "fc1"});
  kiln::Value logits = kiln::nn::dense(h, classes, {.name = "fc2"});
  kiln::Value loss = kiln::softmax_cross_entropy(logits, y);
  kiln::Value probs = kiln::softmax(logits, -1, "probs");  // what the saved model returns
  std::printf("%s", kiln::nn::summary(g, {probs}).c_str());

  // One training step computes the loss and its gradients (kiln::grad, compiled once);
  // the optimizer then updates the parameters in place, which the next run sees. Its state
  // is kept by parameter name ("fc1.weight", ...), as checkpoints store it.
  kiln::TrainStep step(loss);
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 3e-3});
  kiln::Executable predict(g, {logits});  // inference: no gradients, dropout off

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    kiln_examples::shuffle(train, rng);
    double loss_sum = 0.0;
    std::int64_t seen = 0;
    for (std::int64_t begin = 0; begin < static_cast<std::int64_t>(train.size());
         begin += batch_size) {
      const std::int64_t end = std::min<std::int64_t>(begin + batch_size, train.size());
      loss_sum += step.run(make_batch(train, begin, end)) * static_cast<double>(end - begin);
      opt.step(step.gradients());
      seen += end - begin;
    }
    if (epoch == 1 || epoch % 5 == 0) {
      std::printf("epoch %2d  train_loss=%.4f\n", epoch, loss_sum / static_cast<double>(seen));
    }
  }

  // Evaluation with the inference executable (no gradients, training off).
  const kiln::Feeds test_batch = make_batch(test, 0, static_cast<std::int64_t>(test.size()));
  const kiln::Tensor test_logits = predict.run({test_batch[0]}).at(0);
  const double acc = (test_logits.argmax(1) == test_batch[1].second).mean();
  // The model file: probabilities, labels "0".."9", the preprocessing (raw pixels 0..16 are
  // divided by 16) and the test accuracy.
  kiln::ModelMetadata meta;
  meta.name = "digits_mlp";
  meta.version = "1.0.0";
  meta.description = "train_digits_mlp: UCI digits 8x8, 80/20 split, seed 42";
  for (int c = 0; c < 10; ++c) meta.labels.push_back(std::to_string(c));
  meta.preprocessing.push_back(
      {"pixels", std::vector<float>(64, 0.0f), std::vector<float>(64, 16.0f)});
  meta.extra.emplace_back("preprocessing", "raw pixels 0..16 divided by 16, row-major 8x8");
  meta.metrics.emplace_back("test_accuracy", acc);
  const std::string model_path = argc > 2 ? argv[2] : KILN_DIGITS_MLP_MODEL;
  kiln::save_model(
      model_path, g,
      {.inputs = {x}, .outputs = {probs}, .output_names = {"probs"}, .metadata = meta});
  std::printf("saved model to %s\n", model_path.c_str());
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_digits_mlp: %s\n", e.what());
  return 1;
}
