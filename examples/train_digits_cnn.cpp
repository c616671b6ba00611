// Trains a small CNN on the UCI handwritten digits (data/digits.csv: 8x8 images with pixels
// 0..16 and a label 0..9), viewed as 1x8x8 images, with the data module and the Trainer,
// then evaluates it on a held-out 20% split. The last line printed is
// test_accuracy=<value>.
//
//   conv 3x3 1->16 pad 1, ReLU; conv 3x3 16->32 pad 1, ReLU; max pool 2x2;
//   flatten (512); dense 128, ReLU; dropout 0.25; dense 10.
//
// fit() trains in training mode (dropout active); evaluate() runs in inference mode
// (dropout is the identity) over the same parameters.
//
//   train_digits_cnn [path/to/digits.csv [path/to/digits_cnn.kiln]]
//
// The trained model (input "image": raw pixels as [1, 8, 8]; output "probs") is saved with
// kiln::save_model, by default next to the program.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_DIGITS_CNN_MODEL
#define KILN_DIGITS_CNN_MODEL "digits_cnn.kiln"
#endif
#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

constexpr std::int64_t side = 8;
constexpr std::int64_t classes = 10;
constexpr std::uint64_t seed = 42;

// The preprocessing: raw pixels 0..16 divided by 16, along the last axis (8 values); the
// model file records it so that apps feed raw rows.
const kiln::Normalization pixel_scale{"image", std::vector<float>(side, 0.0f),
                                      std::vector<float>(side, 16.0f)};

// The part's 64 pixel columns viewed as [N, 1, 8, 8] "image" and scaled, and its target as
// "label": the names of the graph inputs they feed.
kiln::data::Dataset images(const kiln::data::Dataset& d) {
  const kiln::Tensor x = d["features"].contiguous().reshape({d.size(), 1, side, side});
  kiln::data::DatasetInfo info = d.info();
  info.features = "image";
  info.target = "label";
  return kiln::data::Dataset(
      {{"image", kiln::apply_normalization(x, pixel_scale)}, {"label", d["target"]}}, info);
}

}  // namespace

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
  const kiln::data::CsvData data = kiln::data::read_csv(path, {.target = "label"});
  // Seeded, stratified 80/20 split (the same one as train_digits_mlp).
  auto [train_rows, test_rows] =
      kiln::data::split(data.dataset, {.test_fraction = 0.2, .seed = seed, .stratify = true});
  const kiln::data::Dataset train = images(train_rows), test = images(test_rows);
  std::printf("digits: %lld training and %lld test images (1x8x8)\n",
              static_cast<long long>(train.size()), static_cast<long long>(test.size()));

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
  kiln::Value probs = kiln::softmax(logits, -1, "probs");  // what the saved model returns
  std::printf("%s", nn::summary(g, {probs}).c_str());

  kiln::optim::Adam opt(nn::named_parameters(g), {.lr = 2e-3});
  kiln::train::Trainer trainer(g, {.loss = kiln::softmax_cross_entropy(logits, y),
                                   .predictions = logits,
                                   .optimizer = &opt,
                                   .metrics = {"accuracy"}});
  trainer.fit(
      train,
      {.epochs = 20, .batch_size = 32, .seed = seed, .progress = kiln::train::Progress::lines});
  const double acc = trainer.evaluate(test).at("accuracy");

  // The model file: probabilities, labels "0".."9", the preprocessing (raw pixels 0..16 are
  // divided by 16, along the last axis) and the test accuracy.
  kiln::ModelMetadata meta;
  meta.name = "digits_cnn";
  meta.version = "1.0.0";
  meta.description = "train_digits_cnn: UCI digits 8x8, 80/20 split, seed 42";
  meta.labels = data.schema.labels;
  meta.preprocessing.push_back(pixel_scale);
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
