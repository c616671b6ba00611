// Model files with a reference profile for the monitor tests (C++ and C API): a small
// digits MLP (64-16-10, ReLU, softmax) with weights from a fixed-seed LCG, its profile built
// on a split of data/digits.csv and its predictions on the held-out part.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "kiln/monitor/profile.hpp"

namespace kiln_test {

struct Lcg {
  std::uint64_t state;
  float next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<double>(state >> 40) / 16777216.0 * 2.0 - 1.0);
  }
};

inline kiln::Tensor lcg_tensor(Lcg& rng, const kiln::Shape& shape, float scale) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = rng.next() * scale;
  return kiln::Tensor::from(v, shape);
}

/// data/digits.csv split (seed 7) into (train, held-out).
inline std::pair<kiln::data::Dataset, kiln::data::Dataset> digits_split(std::uint64_t seed = 7) {
  const auto csv =
      kiln::data::read_csv(std::string(KILN_DATASETS_DIR) + "/digits.csv", {.target = "label"});
  return kiln::data::split(csv.dataset, {.test_fraction = 0.25, .seed = seed});
}

/// The digits MLP's graph and save options (no sections yet).
struct DigitsMlp {
  kiln::Graph graph;
  kiln::SaveOptions save;
};

inline DigitsMlp digits_mlp() {
  Lcg rng{11};
  DigitsMlp m;
  kiln::Graph& g = m.graph;
  auto x = g.input("pixels", {kiln::batch, 64});
  auto w1 = g.parameter("w1", lcg_tensor(rng, {64, 16}, 0.1f));
  auto b1 = g.parameter("b1", lcg_tensor(rng, {16}, 0.1f));
  auto w2 = g.parameter("w2", lcg_tensor(rng, {16, 10}, 0.3f));
  auto b2 = g.parameter("b2", lcg_tensor(rng, {10}, 0.1f));
  auto p = kiln::softmax(kiln::matmul(kiln::relu(kiln::matmul(x, w1) + b1), w2) + b2);
  m.save.inputs = {x};
  m.save.outputs = {p};
  m.save.output_names = {"probabilities"};
  m.save.metadata.name = "digits-monitor";
  m.save.metadata.version = "1.0.0";
  m.save.creation_time = "2026-01-01T00:00:00Z";
  return m;
}

/// Writes the digits MLP with a profile (features of `train`, predictions on `holdout`,
/// metric "accuracy" = `accuracy`) to `path`; returns the profile.
inline kiln::monitor::Profile save_digits_model_with_profile(const std::string& path,
                                                             double accuracy = 0.9) {
  auto [train, holdout] = digits_split();
  DigitsMlp m = digits_mlp();
  const auto bytes = kiln::serialize_model(m.graph, m.save);
  const auto model = kiln::infer::Model::load(bytes, "digits-mlp");
  const kiln::Tensor probs = model.run({{"pixels", holdout["features"]}})[0];
  std::vector<std::string> labels;
  for (int c = 0; c < 10; ++c) labels.push_back(std::to_string(c));
  kiln::monitor::Profile profile =
      kiln::monitor::build_profile({.input = "pixels",
                                    .features = train["features"],
                                    .feature_names = train.info().feature_names,
                                    .predictions = probs,
                                    .predicted = kiln::monitor::PredictionKind::classes,
                                    .output = "probabilities",
                                    .labels = labels,
                                    .metrics = {{"accuracy", accuracy}}});
  m.save.sections[kiln::monitor::profile_section] = profile.to_bytes();
  kiln::save_model(path, m.graph, m.save);
  return profile;
}

}  // namespace kiln_test
