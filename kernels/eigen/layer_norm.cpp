// Eigen kernel of layer_norm (f32): per row of D values the mean (summed as x - x[0], so a
// constant row centres to exact zeros), the biased variance of the centred row, then one
// pass y = (x - m) * rstd [* gamma + beta]. Rows split across threads.
#include <cmath>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/layer_norm_rows.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_layer_norm(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 1 && q.inputs.size() != 3)
    return decline(why, "layer_norm takes x, or x, gamma and beta");
  if (!layer_norm_shapes_fit(q, q.inputs.size(), false)) return decline(why, "shapes do not fit");
  return true;
}

void run_layer_norm(const KernelArgs& args) {
  const LayerNormRows rows(args);
  const float* gamma = args.inputs.size() == 3 ? args.inputs[1].data<float>() : nullptr;
  const float* beta = args.inputs.size() == 3 ? args.inputs[2].data<float>() : nullptr;
  float* y = args.output.data<float>();
  const std::int64_t d = rows.d;
  rows.for_ranges([&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const auto [m, rstd] = rows.stats(r);
      const ConstArrayMap x = rows.row(r);
      ArrayMap yr(y + r * d, d);
      if (gamma == nullptr)
        yr = (x - m) * rstd;
      else
        yr = (x - m) * rstd * ConstArrayMap(gamma, d) + ConstArrayMap(beta, d);
    }
  });
}

}  // namespace

void register_layer_norm(KernelTable& t) {
  t.add<Op::layer_norm>({"eigen", "eigen_layer_norm", supports_layer_norm, run_layer_norm});
}

}  // namespace kiln::internal::eigen
