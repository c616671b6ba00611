// Shared by the trainer tests: a small classifier (optionally with dropout) over a
// synthetic, seeded 3-class dataset, built the same way every time.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/callbacks.hpp"
#include "kiln/train/trainer.hpp"

namespace kiln_test {

/// Rows of 4 features in 3 Gaussian blobs (class = blob), seeded.
inline kiln::data::Dataset blobs(std::int64_t rows, std::uint64_t seed,
                                 const std::string& source = "blobs") {
  kiln::Rng rng(seed);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto c = static_cast<std::int32_t>(r % 3);
    for (int f = 0; f < 4; ++f)
      x.push_back(static_cast<float>(rng.normal((f == c ? 2.0 : 0.0) - (f == 3 ? c : 0), 1.0)));
    y.push_back(c);
  }
  kiln::data::DatasetInfo info;
  info.source = source;
  return kiln::data::Dataset({{"features", kiln::Tensor::from(x, kiln::Shape({rows, 4}))},
                              {"target", kiln::Tensor::from(y, kiln::Shape({rows}))}},
                             info);
}

/// A 4-16-3 MLP with optional dropout, a softmax cross-entropy loss and an optimizer.
struct Model {
  kiln::Graph g;
  kiln::Value x, y, logits, loss;
  std::unique_ptr<kiln::optim::Optimizer> opt;

  explicit Model(bool dropout = false, bool adam = false, double lr = 0.05) {
    x = g.input("features", kiln::Shape({kiln::batch, 4}));
    y = g.input("target", kiln::Shape({kiln::batch}), kiln::DType::i32);
    auto h = kiln::nn::dense(x, 16, {.activation = kiln::nn::Activation::relu, .name = "fc1"});
    if (dropout) h = kiln::nn::dropout(h, 0.3);
    logits = kiln::nn::dense(h, 3, {.name = "fc2"});
    loss = kiln::softmax_cross_entropy(logits, y);
    if (adam)
      opt = std::make_unique<kiln::optim::Adam>(kiln::nn::named_parameters(g),
                                                kiln::optim::AdamOptions{.lr = lr});
    else
      opt = std::make_unique<kiln::optim::SGD>(kiln::nn::named_parameters(g),
                                               kiln::optim::SGDOptions{.lr = lr, .momentum = 0.9});
  }

  kiln::train::TrainerOptions options(std::vector<std::string> metrics = {}) {
    kiln::train::TrainerOptions o{
        .loss = loss, .predictions = logits, .optimizer = opt.get(), .metrics = metrics};
    o.model.creation_time = "2026-01-01T00:00:00Z";
    return o;
  }

  /// Copies of every parameter and buffer, by name.
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> weights() {
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> out;
    for (auto v : g.parameters()) {
      const kiln::Tensor t = g.tensor(v).contiguous();
      const auto* p = static_cast<const std::uint8_t*>(t.raw());
      out.emplace_back(v.name(), std::vector<std::uint8_t>(p, p + t.nbytes()));
    }
    return out;
  }
};

inline std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A fresh, empty folder under the test temp dir.
inline std::string fresh_dir(const std::string& name) {
  const auto p =
      std::filesystem::temp_directory_path() / ("kiln_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

/// Bitwise equality of two doubles (NaN == NaN of the same bits).
inline bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace kiln_test
