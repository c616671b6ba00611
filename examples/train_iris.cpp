// Iris in a dozen lines: the CSV reader, a seeded stratified split, a 4-16-3 MLP and the
// Trainer. The last line printed is test_accuracy=<value>.
//
//   train_iris [path/to/iris.csv]
#include <cstdio>
#include <exception>

#include "kiln/data/csv.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_IRIS_CSV
#define KILN_IRIS_CSV "data/iris.csv"
#endif

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  auto [data, schema] =
      kiln::data::read_csv(argc > 1 ? argv[1] : KILN_IRIS_CSV, {.target = "species"});
  auto [train, test] = kiln::data::split(data, {.test_fraction = 0.2, .seed = 1, .stratify = true});
  kiln::Graph g;
  kiln::Value x = g.input("features", {kiln::batch, 4});
  kiln::Value y = g.input("target", {kiln::batch}, kiln::i32);
  kiln::Value logits = nn::Sequential{nn::Dense(16, nn::Activation::relu), nn::Dense(3)}(x);
  kiln::optim::Adam opt(nn::named_parameters(g), {.lr = 1e-2});
  kiln::train::Trainer trainer(g, {.loss = kiln::softmax_cross_entropy(logits, y),
                                   .predictions = logits,
                                   .optimizer = &opt,
                                   .metrics = {"accuracy"}});
  trainer.fit(
      train, {.epochs = 100, .batch_size = 16, .seed = 1, .progress = kiln::train::Progress::none});
  std::printf("test_accuracy=%.4f\n", trainer.evaluate(test).at("accuracy"));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_iris: %s\n", e.what());
  return 1;
}
