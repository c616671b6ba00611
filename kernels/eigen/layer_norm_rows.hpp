// Internal: the row statistics layer_norm (layer_norm.cpp) and layer_norm_backward
// (training_layer_norm.cpp) share: x [..., D] as rows of D, each row's mean m (summed
// shifted by the row's first value: a constant row centres to exact zeros) and
// rstd = 1 / sqrt(var + eps) with the biased variance of the centred row, rows split
// across threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/eigen/common.hpp"

namespace kiln::internal::eigen {

/// x [..., D] (input 0) and an output of x's shape; inputs [1, end) per-feature [D], and
/// with `gy_last` a last input (gy) of x's shape.
inline bool layer_norm_shapes_fit(const KernelQuery& q, std::size_t end, bool gy_last) {
  const Shape& x = q.inputs[0].shape;
  if (x.rank() == 0 || x[x.rank() - 1] <= 0 || q.output.shape != x) return false;
  for (std::size_t i = 1; i < end; ++i)
    if (q.inputs[i].shape != Shape{x[x.rank() - 1]}) return false;
  return !gy_last || q.inputs.back().shape == x;
}

struct LayerNormRows {
  explicit LayerNormRows(const KernelArgs& args)
      : x(args.inputs[0].data<float>()),
        d(args.inputs[0].shape()[args.inputs[0].shape().rank() - 1]),
        rows(args.inputs[0].numel() / d),
        eps(args.node.attrs.eps) {}

  /// Row r of x.
  ConstArrayMap row(std::int64_t r) const { return {x + r * d, d}; }

  struct Stats {
    float mean;
    float rstd;
  };
  /// Mean and 1 / sqrt(var + eps) of row r.
  Stats stats(std::int64_t r) const {
    const ConstArrayMap xr = row(r);
    // Summed as x - x[0] (vectorised; a sum in double is a serial loop): a constant row's
    // mean is exactly its value.
    const float first = xr[0];
    const float m = first + (xr - first).sum() / static_cast<float>(d);
    const float var = (xr - m).square().sum() / static_cast<float>(d);
    return {m, 1.0f / std::sqrt(var + eps)};
  }

  /// f(lo, hi) over ranges of rows, split across threads when there are many elements; f
  /// must not throw.
  template <class F>
  void for_ranges(F&& f) const {
    parallel_ranges(rows, std::max<std::int64_t>(1, parallel_grain / d), f);
  }

  const float* x;
  std::int64_t d;
  std::int64_t rows;
  float eps;
};

}  // namespace kiln::internal::eigen
