// Trains a small CNN on the UCI handwritten digits (data/digits.csv: 8x8 images with pixels
// 0..16 and a label 0..9), viewed as 1x8x8 images, with a custom training loop (TrainStep
// and Adam), then evaluates it on a held-out 20% split. The last line printed is
// test_accuracy=<value>.
//
//   conv 3x3 1->16 pad 1, ReLU; conv 3x3 16->32 pad 1, ReLU; max pool 2x2;
//   flatten (512); dense 128, ReLU; dropout 0.25; dense 10.
//
// The training step runs in training mode (dropout active); the evaluation executable over
// the same graph runs in inference mode (dropout is the identity).
//
//   train_digits_cnn [path/to/digits.csv [path/to/digits_cnn.kiln]]
//
// The trained model (inputs "image", output "probs": softmax of the logits) is saved with
// kiln::save_model, by default next to the program, for examples/infer_digits.
#include <algorithm>
#include <chrono>
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

#ifndef KILN_DIGITS_CNN_MODEL
#define KILN_DIGITS_CNN_MODEL "digits_cnn.kiln"
#endif
#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

constexpr std::int64_t side = 8;
constexpr std::int64_t pixels = side * side;
constexpr std::int64_t classes = 10;
constexpr std::uint64_t seed = 42;
constexpr std::int64_t batch_size = 32;
constexpr int epochs = 20;

}  // namespace

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
  const kiln_examples::Digits data = kiln_examples::load_digits(path);

  // Seeded 80/20 split (the same one as train_digits_mlp).
  kiln::Rng rng(seed);
  auto [train, test] = kiln_examples::split_80_20(data.size(), rng);
  auto make_batch = [&](const std::vector<std::int64_t>& rows, std::int64_t begin,
                        std::int64_t end) {
    return kiln_examples::digit_batch(data, rows, begin, end, "image", {1, side, side});
  };
  std::printf("digits: %zu training and %zu test images (1x8x8)\n", train.size(), test.size());

  // The model and its loss.
  kiln::Graph g;
  kiln::Value x = g.input("image", {kiln::batch, 1, side, side});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  const nn::Sequential cnn{
      nn::Conv2d(16, {3, 3}, {.padding = {1, 1}, .activation = kiln::relu, .name = "conv1"}),
      nn::Conv2d(32, {3, 3}, {.padding = {1, 1}, .activation = kiln::relu, .name = "conv2"}),
      nn::MaxPool2d({2, 2}),
      nn::Flatten(),
      nn::Dense(128, {.activation = kiln::relu, .name = "fc1"}),
      nn::Dropout(0.25, {.seed = seed}),
      nn::Dense(classes, {.name = "fc2"}),
  };
  kiln::Value logits = cnn(x);
  kiln::Value loss = kiln::softmax_cross_entropy(logits, y);
  kiln::Value probs = kiln::softmax(logits, -1, "probs");  // what the saved model returns
  std::printf("%s", nn::summary(g, {probs}).c_str());

  // The training step (training mode: dropout active) and the evaluation executable over
  // the same graph (inference mode: dropout off); they share the parameters.
  kiln::TrainStep step(loss);
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 2e-3});
  kiln::Executable predict(g, {logits});

  const auto start = std::chrono::steady_clock::now();
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
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("trained %d epochs in %.1f s\n", epochs, elapsed.count());

  // Evaluation with the inference executable.
  const kiln::Feeds test_batch = make_batch(test, 0, static_cast<std::int64_t>(test.size()));
  const kiln::Tensor test_logits = predict.run({test_batch[0]}).at(0);
  const double acc = (test_logits.argmax(1) == test_batch[1].second).mean();
  // The model file: probabilities, labels "0".."9", the preprocessing (raw pixels 0..16 are
  // divided by 16) and the test accuracy.
  kiln::ModelMetadata meta;
  meta.name = "digits_cnn";
  meta.version = "1.0.0";
  meta.description = "train_digits_cnn: UCI digits 8x8, 80/20 split, seed 42";
  for (int c = 0; c < 10; ++c) meta.labels.push_back(std::to_string(c));
  meta.preprocessing.push_back(
      {"image", std::vector<float>(static_cast<std::size_t>(side), 0.0f),
       std::vector<float>(static_cast<std::size_t>(side), 16.0f)});  // along the last axis
  meta.extra.emplace_back("preprocessing", "raw pixels 0..16 divided by 16, row-major 8x8");
  meta.metrics.emplace_back("test_accuracy", acc);
  const std::string model_path = argc > 2 ? argv[2] : KILN_DIGITS_CNN_MODEL;
  kiln::save_model(
      model_path, g,
      {.inputs = {x}, .outputs = {probs}, .output_names = {"probs"}, .metadata = meta});
  std::printf("saved model to %s\n", model_path.c_str());
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_digits_cnn: %s\n", e.what());
  return 1;
}
