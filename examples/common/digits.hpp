// The UCI digits for Kiln's examples: loading, the seeded 80/20 split and batches as feeds.
// (The general data module comes later; this keeps the examples standalone. Accuracy needs
// no helper: (logits.argmax(1) == labels).mean().)
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "common/csv.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln_examples {

inline constexpr std::int64_t digit_pixels = 64;  // 8x8, row-major
inline constexpr std::int64_t digit_classes = 10;

/// Images as rows of pixels scaled to [0, 1], and their labels.
struct Digits {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t size() const { return static_cast<std::int64_t>(y.size()); }
};

/// Reads digits.csv (64 pixel columns 0..16, then the label 0..9).
inline Digits load_digits(const std::string& path) {
  const CsvTable table = read_csv(path);
  if (table.cols() != digit_pixels + 1)
    throw kiln::FormatError("'" + path + "' has " + std::to_string(table.cols()) +
                            " columns, expected 64 pixels and a label");
  Digits data;
  for (std::int64_t r = 0; r < table.rows; ++r) {
    for (std::int64_t c = 0; c < digit_pixels; ++c)
      data.x.push_back(static_cast<float>(table.at(r, c) / 16.0));
    const double label = table.at(r, digit_pixels);
    if (label < 0 || label >= digit_classes || label != static_cast<std::int32_t>(label))
      throw kiln::FormatError("'" + path + "' row " + std::to_string(r + 1) +
                              ": label must be an integer in 0..9");
    data.y.push_back(static_cast<std::int32_t>(label));
  }
  return data;
}

/// Fisher-Yates shuffle with Kiln's seeded generator.
inline void shuffle(std::vector<std::int64_t>& v, kiln::Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[static_cast<std::size_t>(rng.below(i))]);
}

/// A seeded 80/20 split of `n` example indices: {train, test}.
inline std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> split_80_20(std::int64_t n,
                                                                                   kiln::Rng& rng) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  shuffle(order, rng);
  const auto n_train = static_cast<std::ptrdiff_t>(n * 8 / 10);
  return {std::vector<std::int64_t>(order.begin(), order.begin() + n_train),
          std::vector<std::int64_t>(order.begin() + n_train, order.end())};
}

/// The examples at `indices[begin, end)` as feeds: `input` with shape [n, example_dims...]
/// (the 64 pixels reshaped) and "label" [n].
inline kiln::Feeds digit_batch(const Digits& data, const std::vector<std::int64_t>& indices,
                               std::int64_t begin, std::int64_t end, const std::string& input,
                               const std::vector<std::int64_t>& example_dims) {
  const std::int64_t n = end - begin;
  std::vector<float> x(static_cast<std::size_t>(n * digit_pixels));
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t row = indices[static_cast<std::size_t>(begin + i)];
    std::copy_n(data.x.begin() + row * digit_pixels, digit_pixels, x.begin() + i * digit_pixels);
    y[static_cast<std::size_t>(i)] = data.y[static_cast<std::size_t>(row)];
  }
  std::vector<std::int64_t> dims{n};
  dims.insert(dims.end(), example_dims.begin(), example_dims.end());
  return {{input, kiln::Tensor::from(x, kiln::Shape(dims))}, {"label", kiln::Tensor::from(y, {n})}};
}

}  // namespace kiln_examples
