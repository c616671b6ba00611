#include "kiln/data/scale.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::data {
namespace {

// The features tensor as f64 rows of `width` values.
struct Features {
  std::string name;
  std::vector<double> values;
  std::int64_t width = 0;
};

Features features_of(const Dataset& train, const char* what) {
  const std::string& name = train.info().features;
  const Tensor& x = train[name];
  const std::string where = std::string(what) + ": tensor '" + name + "'";
  if (!is_floating(x.dtype()))
    throw ValueError(where + " is " + std::string(to_string(x.dtype())) +
                     "; scaling needs f32 or f64");
  if (x.rank() < 2)
    throw ValueError(where + " has shape " + x.shape().str() + "; scaling needs rank >= 2");
  if (x.numel() == 0) throw ValueError(where + " has no values");
  Features f;
  f.name = name;
  f.width = x.dim(x.rank() - 1);
  f.values = x.to(DType::f64).to_vector<double>();
  const auto& names = train.info().feature_names;
  for (std::size_t i = 0; i < f.values.size(); ++i)
    if (!std::isfinite(f.values[i])) {
      const std::size_t k = i % static_cast<std::size_t>(f.width);
      throw ValueError(where + ": feature " +
                       (names.size() == static_cast<std::size_t>(f.width) ? "'" + names[k] + "'"
                                                                          : std::to_string(k)) +
                       " has a non-finite value (" + std::to_string(f.values[i]) + ")");
    }
  return f;
}

// A scale that rounds to 0 (or overflows) in f32 would make the scaled values infinite.
float usable_scale(double s) {
  const auto f = static_cast<float>(s);
  return f > 0 && std::isfinite(f) ? f : 1.0f;
}

}  // namespace

Normalization fit_standardization(const Dataset& train) {
  const Features f = features_of(train, "fit_standardization");
  const auto width = static_cast<std::size_t>(f.width);
  const std::size_t rows = f.values.size() / width;
  std::vector<double> mean(width, 0.0);
  for (std::size_t i = 0; i < f.values.size(); ++i) mean[i % width] += f.values[i];
  for (double& m : mean) m /= static_cast<double>(rows);
  // Two passes: the squared deviations from the mean (no cancellation).
  std::vector<double> var(width, 0.0);
  for (std::size_t i = 0; i < f.values.size(); ++i) {
    const double d = f.values[i] - mean[i % width];
    var[i % width] += d * d;
  }
  Normalization n;
  n.input = f.name;
  for (std::size_t k = 0; k < width; ++k) {
    n.mean.push_back(static_cast<float>(mean[k]));
    n.stddev.push_back(usable_scale(std::sqrt(var[k] / static_cast<double>(rows))));
  }
  return n;
}

Normalization fit_min_max(const Dataset& train) {
  const Features f = features_of(train, "fit_min_max");
  const auto width = static_cast<std::size_t>(f.width);
  std::vector<double> lo(width, std::numeric_limits<double>::infinity());
  std::vector<double> hi(width, -std::numeric_limits<double>::infinity());
  for (std::size_t i = 0; i < f.values.size(); ++i) {
    lo[i % width] = std::min(lo[i % width], f.values[i]);
    hi[i % width] = std::max(hi[i % width], f.values[i]);
  }
  Normalization n;
  n.input = f.name;
  for (std::size_t k = 0; k < width; ++k) {
    n.mean.push_back(static_cast<float>(lo[k]));
    n.stddev.push_back(usable_scale(hi[k] - lo[k]));
  }
  return n;
}

Normalization fit_scaling(const Dataset& train, Scaling method) {
  switch (method) {
    case Scaling::standardize:
      return fit_standardization(train);
    case Scaling::min_max:
      return fit_min_max(train);
    case Scaling::none:
      break;
  }
  throw ValueError("fit_scaling: Scaling::none fits nothing");
}

Dataset apply_normalization(const Dataset& data, const Normalization& n) {
  Batch tensors = data.tensors();
  bool found = false;
  for (auto& [name, t] : tensors)
    if (name == n.input) {
      t = apply_normalization(t, n);
      found = true;
    }
  if (!found) (void)data[n.input];  // NameError listing the tensors there are
  return Dataset(std::move(tensors), data.info());
}

}  // namespace kiln::data
