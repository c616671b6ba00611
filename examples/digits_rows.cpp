// A sequence classifier: a GRU reads each 8x8 digit of data/digits.csv (UCI, 1797 images)
// one pixel row at a time, 8 steps of 8 values, and a dense layer classifies its last
// state. Seeded 80/20 stratified split; the last line printed is test_accuracy=<value>.
//
// The saved model (digits_rows.kiln; input "pixels" [B, 64], raw values 0..16, as the MLP
// example's; output "probs") does the scaling and the reshape to [B, 8, 8] in its graph, so
// kiln_infer and the C API feed it plain rows.
//
//   digits_rows [path/to/digits.csv] [model.kiln]
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "kiln/data/csv.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

constexpr std::int64_t kRows = 8;  // steps: one pixel row each
constexpr std::int64_t kCols = 8;  // features per step
constexpr std::int64_t kHidden = 64;
constexpr std::int64_t kClasses = 10;
constexpr std::uint64_t kSeed = 42;

// The reader's "features" and "target" as the graph's "pixels" and "label".
kiln::data::Dataset named(const kiln::data::Dataset& d) {
  kiln::data::DatasetInfo info = d.info();
  info.features = "pixels";
  info.target = "label";
  return kiln::data::Dataset({{"pixels", d["features"]}, {"label", d["target"]}}, info);
}

}  // namespace

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
  const kiln::data::CsvData data = kiln::data::read_csv(path, {.target = "label"});
  auto [train_rows, test_rows] =
      kiln::data::split(data.dataset, {.test_fraction = 0.2, .seed = kSeed, .stratify = true});
  const kiln::data::Dataset train = named(train_rows), test = named(test_rows);
  std::printf("digits: %lld training and %lld test images, read as %lld rows of %lld pixels\n",
              static_cast<long long>(train.size()), static_cast<long long>(test.size()),
              static_cast<long long>(kRows), static_cast<long long>(kCols));

  kiln::Graph g;
  kiln::Value x = g.input("pixels", {kiln::batch, kRows * kCols});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value steps = kiln::reshape(x / 16.0, {-1, kRows, kCols});  // [B, 8 steps, 8]
  const nn::RecurrentOutput r = nn::gru(steps, {.hidden = kHidden, .name = "gru", .seed = kSeed});
  kiln::Value last = kiln::reshape(kiln::slice(r.sequence, 1, kRows - 1, kRows), {-1, kHidden});
  kiln::Value logits = nn::dense(last, kClasses, {.name = "head", .seed = kSeed});
  kiln::Value probs = kiln::softmax(logits, -1, "probs");

  kiln::optim::Adam opt(nn::named_parameters(g), {.lr = 1e-2});
  kiln::train::Trainer trainer(g, {.loss = kiln::softmax_cross_entropy(logits, y),
                                   .predictions = logits,
                                   .optimizer = &opt,
                                   .metrics = {"accuracy"}});
  const auto history = trainer.fit(
      train,
      {.epochs = 12, .batch_size = 32, .seed = kSeed, .progress = kiln::train::Progress::none});
  std::printf("train: loss=%.4f accuracy=%.4f\n", history.epochs.back().at("loss"),
              history.epochs.back().at("accuracy"));
  const double acc = trainer.evaluate(test).at("accuracy");

  kiln::ModelMetadata meta;
  meta.name = "digits_rows";
  meta.version = "1.0.0";
  meta.description = "digits_rows: UCI digits 8x8 read row by row by a GRU(64), seed 42";
  meta.labels = data.schema.labels;
  meta.metrics.emplace_back("test_accuracy", acc);
  const std::string out = argc > 2 ? argv[2] : "digits_rows.kiln";
  kiln::save_model(
      out, g, {.inputs = {x}, .outputs = {probs}, .output_names = {"probs"}, .metadata = meta});
  std::printf("saved %s\n", out.c_str());
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "digits_rows: %s\n", e.what());
  return 1;
}
