// Parameter initialisers.
#include <algorithm>
#include <cmath>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/nn/layers.hpp"

namespace kiln::nn {
namespace {

void check_init_args(const Shape& shape, DType dtype, const char* what) {
  if (!is_floating(dtype)) {
    throw DTypeError(std::string("nn::") + what + ": parameters must be f32 or f64, got " +
                     std::string(to_string(dtype)));
  }
  for (std::int64_t d : shape) {
    if (d < 0) {
      throw ShapeError(std::string("nn::") + what + ": shape " + shape.str() +
                       " must be static (no batch dimension)");
    }
  }
}

// Fills a new tensor with draw() for every element, in row-major order.
template <class Draw>
Tensor fill(const Shape& shape, DType dtype, const char* what, Draw draw) {
  check_init_args(shape, dtype, what);
  Tensor t = Tensor::empty(shape, dtype);
  const std::int64_t n = t.numel();
  if (dtype == DType::f32) {
    float* p = t.data<float>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(draw());
  } else {
    double* p = t.data<double>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = draw();
  }
  return t;
}

}  // namespace

Fans fans(const Shape& shape) {
  const std::size_t r = shape.rank();
  if (r == 0) return {1.0, 1.0};
  if (r == 1) return {static_cast<double>(shape[0]), static_cast<double>(shape[0])};
  double receptive = 1.0;
  for (std::size_t i = 0; i + 2 < r; ++i) receptive *= static_cast<double>(shape[i]);
  return {static_cast<double>(shape[r - 2]) * receptive,
          static_cast<double>(shape[r - 1]) * receptive};
}

Tensor glorot_uniform(const Shape& shape, Rng& rng, DType dtype) {
  const Fans f = fans(shape);
  const double a = std::sqrt(6.0 / std::max(f.in + f.out, 1.0));
  return fill(shape, dtype, "glorot_uniform", [&] { return rng.uniform(-a, a); });
}

Tensor glorot_normal(const Shape& shape, Rng& rng, DType dtype) {
  const Fans f = fans(shape);
  const double s = std::sqrt(2.0 / std::max(f.in + f.out, 1.0));
  return fill(shape, dtype, "glorot_normal", [&] { return rng.normal(0.0, s); });
}

Tensor he_normal(const Shape& shape, Rng& rng, DType dtype) {
  const double s = std::sqrt(2.0 / std::max(fans(shape).in, 1.0));
  return fill(shape, dtype, "he_normal", [&] { return rng.normal(0.0, s); });
}

Tensor he_uniform(const Shape& shape, Rng& rng, DType dtype) {
  const double a = std::sqrt(6.0 / std::max(fans(shape).in, 1.0));
  return fill(shape, dtype, "he_uniform", [&] { return rng.uniform(-a, a); });
}

Tensor zeros(const Shape& shape, Rng& /*rng*/, DType dtype) {
  return fill(shape, dtype, "zeros", [] { return 0.0; });
}

Tensor ones(const Shape& shape, Rng& /*rng*/, DType dtype) {
  return fill(shape, dtype, "ones", [] { return 1.0; });
}

Initializer normal(double stddev, double mean) {
  if (!(stddev >= 0.0) || !std::isfinite(stddev) || !std::isfinite(mean)) {
    throw ValueError("nn::normal: stddev must be finite and >= 0, got " + std::to_string(stddev));
  }
  return [stddev, mean](const Shape& shape, Rng& rng, DType dtype) {
    return fill(shape, dtype, "normal", [&] { return rng.normal(mean, stddev); });
  };
}

Initializer uniform(double lo, double hi) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) {
    throw ValueError("nn::uniform: bounds must be finite with lo <= hi, got [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + ")");
  }
  return [lo, hi](const Shape& shape, Rng& rng, DType dtype) {
    return fill(shape, dtype, "uniform", [&] { return rng.uniform(lo, hi); });
  };
}

Initializer constant(double value) {
  return [value](const Shape& shape, Rng& /*rng*/, DType dtype) {
    return fill(shape, dtype, "constant", [&] { return value; });
  };
}

}  // namespace kiln::nn
