// kiln::apply_normalization: the one implementation of a model's preprocessing, used by
// infer::Model (LoadOptions::apply_preprocessing) and kiln::data's scaling.
#include <cstdint>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/io/model_file.hpp"

namespace kiln {
namespace {

/// (x - mean) / stddev along the last axis, into out (same shape, contiguous).
template <class T>
void normalize_into(const Tensor& x, Tensor& out, const Normalization& n) {
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  const auto features = static_cast<std::int64_t>(n.mean.size());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const auto k = static_cast<std::size_t>(i % features);
    dst[i] = static_cast<T>((static_cast<double>(src[i]) - n.mean[k]) / n.stddev[k]);
  }
}

}  // namespace

Tensor apply_normalization(const Tensor& x, const Normalization& n) {
  if (n.mean.size() != n.stddev.size() || n.mean.empty())
    throw ValueError("apply_normalization: the normalization of '" + n.input + "' has " +
                     std::to_string(n.mean.size()) + " means and " +
                     std::to_string(n.stddev.size()) + " standard deviations");
  if (!is_floating(x.dtype()))
    throw DTypeError("apply_normalization: '" + n.input + "' is " +
                     std::string(to_string(x.dtype())) + ", not floating point");
  if (x.rank() == 0 || x.dim(x.rank() - 1) != static_cast<std::int64_t>(n.mean.size()))
    throw ShapeError("apply_normalization: '" + n.input + "' has shape " + x.shape().str() +
                     " but " + std::to_string(n.mean.size()) + " features are normalised");
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(c.shape(), c.dtype());
  if (c.dtype() == DType::f64)
    normalize_into<double>(c, out, n);
  else
    normalize_into<float>(c, out, n);
  return out;
}

}  // namespace kiln
