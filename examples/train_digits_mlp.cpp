// Trains a 64-128-10 MLP on the UCI handwritten digits (data/digits.csv: 8x8 images with
// pixels 0..16 and a label 0..9) with the data module and the Trainer, then evaluates it on
// a held-out 20% split. The last line printed is test_accuracy=<value>.
//
//   train_digits_mlp [path/to/digits.csv [path/to/digits_mlp.kiln [run folder]]]
//
// The fit is recorded (kiln::report::record) into a run folder, by default
// runs/digits_mlp next to the model: metrics per step and epoch, per-layer statistics every
// 50 steps, the model graph, the environment and the model file (docs/run-format.md), and
// its report.html (kiln::report::write_report; open it in a browser).
// Each run of the example replaces the folder's previous record.
//
// The trained model (input "pixels": 64 raw pixel values; output "probs": softmax of the
// logits) is saved with kiln::save_model, by default next to the program, for
// examples/infer_digits. It records its preprocessing (pixels divided by 16) instead of
// containing it, so infer_digits feeds raw rows with LoadOptions::apply_preprocessing.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/ops.hpp"
#include "kiln/report/report.hpp"
#include "kiln/report/run_record.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_DIGITS_MLP_MODEL
#define KILN_DIGITS_MLP_MODEL "digits_mlp.kiln"
#endif
#ifndef KILN_DIGITS_MLP_RUN
#define KILN_DIGITS_MLP_RUN "runs/digits_mlp"
#endif
#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

constexpr std::int64_t pixels = 64;
constexpr std::int64_t classes = 10;
constexpr std::uint64_t seed = 42;

// The preprocessing: raw pixels 0..16 divided by 16; the model file records it so that
// apps feed raw rows.
const kiln::Normalization pixel_scale{"pixels", std::vector<float>(pixels, 0.0f),
                                      std::vector<float>(pixels, 16.0f)};

// The part's features scaled as "pixels" and its target as "label": the names of the graph
// inputs they feed.
kiln::data::Dataset scaled(const kiln::data::Dataset& d) {
  kiln::data::DatasetInfo info = d.info();
  info.features = "pixels";
  info.target = "label";
  return kiln::data::Dataset(
      {{"pixels", kiln::apply_normalization(d["features"], pixel_scale)}, {"label", d["target"]}},
      info);
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
  // The CSV reader: 64 numeric feature columns and the class column "label".
  const kiln::data::CsvData data = kiln::data::read_csv(path, {.target = "label"});
  auto [train_rows, test_rows] =
      kiln::data::split(data.dataset, {.test_fraction = 0.2, .seed = seed, .stratify = true});
  const kiln::data::Dataset train = scaled(train_rows), test = scaled(test_rows);
  std::printf("digits: %lld training and %lld test images\n", static_cast<long long>(train.size()),
              static_cast<long long>(test.size()));

  // The model: 64 -> 128 (ReLU) -> 10, and its loss.
  kiln::Graph g;
  kiln::Value x = g.input("pixels", {kiln::batch, pixels});
  kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value h = kiln::nn::dense(x, 128, {.activation = kiln::relu, .name = "fc1"});
  kiln::Value logits = kiln::nn::dense(h, classes, {.name = "fc2"});
  kiln::Value probs = kiln::softmax(logits, -1, "probs");  // what the saved model returns
  std::printf("%s", kiln::nn::summary(g, {probs}).c_str());

  // The Trainer: seeded shuffles, batches, the epoch loop and the metrics. Adam keeps its
  // state by parameter name ("fc1.weight", ...), as checkpoints store it.
  kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 3e-3});
  kiln::train::Trainer trainer(g, {.loss = kiln::softmax_cross_entropy(logits, y),
                                   .predictions = logits,
                                   .optimizer = &opt,
                                   .metrics = {"accuracy"}});
  // The run record: the callback writes the step and epoch lines, the per-layer statistics
  // and graph.json; the hyper-parameters, seed, data file and final values are ours to add.
  const std::string run_dir = argc > 3 ? argv[3] : KILN_DIGITS_MLP_RUN;
  std::filesystem::remove_all(run_dir);
  kiln::report::RunRecorder run({.dir = run_dir, .name = "digits_mlp"});
  run.set_config(R"({"model": "64-128-10 MLP, ReLU", "optimizer": "adam", "lr": 0.003,
                     "epochs": 30, "batch_size": 32, "test_split": 0.2})");
  run.set_seed(seed);
  run.add_data_file(path);
  run.set_data(train_rows, test.size(), path, "label");
  trainer.fit(train, {.epochs = 30,
                      .batch_size = 32,
                      .seed = seed,
                      .callbacks = {kiln::report::record(run)},
                      .progress = kiln::train::Progress::lines});
  const double acc = trainer.evaluate(test).at("accuracy");

  // The model file: probabilities, labels "0".."9", the preprocessing (raw pixels 0..16 are
  // divided by 16) and the test accuracy.
  kiln::ModelMetadata meta;
  meta.name = "digits_mlp";
  meta.version = "1.0.0";
  meta.description = "train_digits_mlp: UCI digits 8x8, 80/20 split, seed 42";
  meta.labels = data.schema.labels;  // "0".."9"
  meta.preprocessing.push_back(pixel_scale);
  meta.extra.emplace_back("preprocessing", "raw pixels 0..16 divided by 16, row-major 8x8");
  meta.metrics.emplace_back("test_accuracy", acc);
  const std::string model_path = argc > 2 ? argv[2] : KILN_DIGITS_MLP_MODEL;
  const kiln::SaveOptions save{
      .inputs = {x}, .outputs = {probs}, .output_names = {"probs"}, .metadata = meta};
  kiln::save_model(model_path, g, save);
  std::printf("saved model to %s\n", model_path.c_str());
  run.save_model(kiln::serialize_model(g, save));
  run.finish("completed", {{"test_accuracy", acc}});
  std::printf("run recorded in %s, report: %s\n", run.dir().c_str(),
              kiln::report::write_report(run.dir()).c_str());
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_digits_mlp: %s\n", e.what());
  return 1;
}
