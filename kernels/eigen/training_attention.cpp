// Eigen kernel of gelu_backward (a training op, built into kiln), f32:
// gx = gy * (Phi(x) + x * phi(x)), Phi(x) = 0.5 * (1 + erf(x / sqrt 2)), phi the normal
// density exp(-x^2 / 2) / sqrt(2 pi), with Eigen's vectorised erf and exp.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/normal_cdf.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_gelu_backward(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 || q.inputs[0].shape != q.output.shape ||
      q.inputs[1].shape != q.output.shape)
    return decline(why, "gelu_backward: x, gy and the output must have one shape");
  return true;
}

void run_gelu_backward(const KernelArgs& args) {
  const float* x = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  float* gx = args.output.data<float>();
  constexpr float inv_sqrt_2pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
  // As gelu's kernel (attention.cpp): blocks of x and gy copied first (gx may alias
  // either), Phi exactly 0 and 1 beyond |z| = 4, and the lower tail redone with std::erfc.
  parallel_ranges(args.output.numel(), parallel_grain / 8, [&](std::int64_t lo, std::int64_t hi) {
    constexpr std::int64_t block = 256;
    float xb[block], gb[block];
    for (std::int64_t b = lo; b < hi; b += block) {
      const std::int64_t n = std::min(block, hi - b);
      std::copy(x + b, x + b + n, xb);
      std::copy(gy + b, gy + b + n, gb);
      ConstArrayMap xs(xb, n);
      ConstArrayMap g(gb, n);
      const auto z = xs * inv_sqrt2;
      ArrayMap(gx + b, n) = g * (normal_cdf(z) + xs * (-0.5f * xs.square()).exp() * inv_sqrt_2pi);
      for (std::int64_t i = 0; i < n; ++i)
        if (xb[i] < gelu_tail)
          gx[b + i] = gb[i] * (normal_cdf_tail(xb[i]) +
                               xb[i] * std::exp(-0.5f * xb[i] * xb[i]) * inv_sqrt_2pi);
    }
  });
}

}  // namespace

void register_training_attention(KernelTable& t) {
  t.add<Op::gelu_backward>(
      {"eigen", "eigen_gelu_backward", supports_gelu_backward, run_gelu_backward});
}

}  // namespace kiln::internal::eigen
