// The first NaN or infinity of a tensor: what TrainStep's finite check, its anomaly mode and
// save_model's check of parameters and buffers look for. Header-only, so that kiln_infer
// (save_model) and kiln (TrainStep) compile the same code without a symbol between them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kiln/core/tensor.hpp"

namespace kiln::internal {

/// The index of the first NaN or infinity among p[0..n) (-1 if none); `value` gets it.
template <class T>
std::int64_t first_nonfinite_of(const T* p, std::int64_t n, double& value) {
  // A branch-free pass over the exponent bits (vectorised) first; the index only when one
  // is found.
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits exponent =
      sizeof(T) == 4 ? static_cast<Bits>(0x7f800000u) : static_cast<Bits>(0x7ff0000000000000ull);
  unsigned bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i, sizeof bits);
    bad |= static_cast<unsigned>((bits & exponent) == exponent);
  }
  if (bad == 0) return -1;
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) {
      value = static_cast<double>(p[i]);
      return i;
    }
  return -1;
}

/// The flat index of the first NaN or infinity of a floating tensor (-1 if none, or for an
/// integer or empty tensor); `value` gets it.
inline std::int64_t first_nonfinite(const Tensor& t, double& value) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return -1;
  const Tensor c = t.contiguous();
  return c.dtype() == DType::f32 ? first_nonfinite_of(c.data<float>(), c.numel(), value)
                                 : first_nonfinite_of(c.data<double>(), c.numel(), value);
}

}  // namespace kiln::internal
