// The standard normal CDF Phi for the Eigen gelu kernels (gelu in attention.cpp,
// gelu_backward in training_attention.cpp), one definition for both.
#pragma once

#include <cmath>
#include <numbers>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <unsupported/Eigen/SpecialFunctions>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace kiln::internal::eigen {

inline constexpr float inv_sqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);

/// Phi(x) = 0.5 * (1 + erf(z)) of z = x / sqrt 2, with Eigen's vectorised erf. That erf
/// is a rational approximation on [-4, 4] that need not reach +-1 exactly; beyond, Phi is
/// set to 1 and 0 exactly (as the float erf is). Its absolute error (about 1e-7) is large
/// relative to Phi in the lower tail, x < gelu_tail, where the kernels recompute Phi with
/// normal_cdf_tail.
template <class Z>
auto normal_cdf(const Z& z) {
  return (z >= 4.0f).select(1.0f, (z <= -4.0f).select(0.0f, 0.5f * (1.0f + z.erf())));
}

/// Below this x (z = -2, Phi < 0.023), Phi comes from std::erfc.
inline constexpr float gelu_tail = -2.0f * static_cast<float>(std::numbers::sqrt2);

/// Phi(x) = 0.5 * erfc(-x / sqrt 2), accurate to an ulp in the lower tail.
inline float normal_cdf_tail(float x) { return 0.5f * std::erfc(-x * inv_sqrt2); }

}  // namespace kiln::internal::eigen
