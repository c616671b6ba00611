// Eigen kernel of gelu_backward (a training op, built into kiln), f32:
// gx = gy * (Phi(x) + x * phi(x)), Phi(x) = 0.5 * (1 + erf(x / sqrt 2)), phi the normal
// density exp(-x^2 / 2) / sqrt(2 pi), with Eigen's vectorised erf and exp.
#include <numbers>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <unsupported/Eigen/SpecialFunctions>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

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
  constexpr float inv_sqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
  constexpr float inv_sqrt_2pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
  parallel_ranges(args.output.numel(), parallel_grain / 8, [&](std::int64_t lo, std::int64_t hi) {
    ConstArrayMap xs(x + lo, hi - lo);
    ConstArrayMap g(gy + lo, hi - lo);
    ArrayMap out(gx + lo, hi - lo);
    const auto z = xs * inv_sqrt2;
    // Phi exactly 0 and 1 beyond |z| = 4 (see normal_cdf in attention.cpp).
    const auto cdf = (z >= 4.0f).select(1.0f, (z <= -4.0f).select(0.0f, 0.5f * (1.0f + z.erf())));
    out = g * (cdf + xs * (-0.5f * xs.square()).exp() * inv_sqrt_2pi);
  });
}

}  // namespace

void register_training_attention(KernelTable& t) {
  t.add(Op::gelu_backward,
        {"eigen", "eigen_gelu_backward", supports_gelu_backward, run_gelu_backward});
}

}  // namespace kiln::internal::eigen
