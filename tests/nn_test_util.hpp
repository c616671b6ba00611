// Helpers shared by the nn layer tests: initialisers with known values, and tensors as
// doubles.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/nn/layers.hpp"

namespace kiln_test {

/// A deterministic initialiser: element k (row-major over the shape) = scale * (k - offset).
inline kiln::nn::Initializer ramp(double scale, double offset) {
  return [=](const kiln::Shape& shape, kiln::Rng&, kiln::DType dtype) {
    kiln::Tensor t = kiln::Tensor::zeros(shape, kiln::DType::f64);
    double* p = t.data<double>();
    for (std::int64_t k = 0; k < t.numel(); ++k) p[k] = scale * (static_cast<double>(k) - offset);
    return t.to(dtype);
  };
}

/// The elements of any float tensor as doubles.
inline std::vector<double> values(const kiln::Tensor& t) {
  return t.to(kiln::DType::f64).to_vector<double>();
}

}  // namespace kiln_test
