// Eigen kernel of layer_norm_backward (a training op, built into kiln), f32: per row the
// statistics of x as layer_norm's kernel computes them (layer_norm_rows.hpp), one pass for
// mean(g) and mean(g * xhat) with g = gy * gamma (gy without gamma), one pass for
// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Rows split across threads.
#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/layer_norm_rows.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_layer_norm_backward(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 && q.inputs.size() != 3)
    return decline(why, "layer_norm_backward takes x, an optional gamma and gy");
  if (!layer_norm_shapes_fit(q, q.inputs.size() - 1, true))
    return decline(why, "shapes do not fit");
  return true;
}

// gx of one row; g the row's gy [* gamma]. Every sum is taken before gx is written, and
// gx[i] reads only x[i] and g[i]: gx may alias x or gy.
template <class G>
void backward_row(ConstArrayMap x, const G& g, float m, float rstd, ArrayMap gx) {
  const auto n = static_cast<float>(x.size());
  const float mg = g.sum() / n;
  const float mgx = (g * (x - m)).sum() * rstd / n;
  gx = rstd * (g - mg - (x - m) * (rstd * mgx));
}

void run_layer_norm_backward(const KernelArgs& args) {
  const LayerNormRows rows(args);
  const float* gamma = args.inputs.size() == 3 ? args.inputs[1].data<float>() : nullptr;
  const float* gy = args.inputs.back().data<float>();
  float* gx = args.output.data<float>();
  const std::int64_t d = rows.d;
  rows.for_ranges([&](std::int64_t lo, std::int64_t hi) {
    // g = gy * gamma is stored, not recomputed: a fused multiply-add in g - mean(g) would
    // leave the product's rounding error (times rstd) where the answer is 0 (rows of 1).
    Eigen::ArrayXf g(gamma != nullptr ? d : 0);
    for (std::int64_t r = lo; r < hi; ++r) {
      const auto [m, rstd] = rows.stats(r);
      const ConstArrayMap x = rows.row(r);
      const ConstArrayMap gyr(gy + r * d, d);
      ArrayMap out(gx + r * d, d);
      if (gamma == nullptr) {
        backward_row(x, gyr, m, rstd, out);
      } else {
        g = gyr * ConstArrayMap(gamma, d);
        backward_row(x, g, m, rstd, out);
      }
    }
  });
}

}  // namespace

void register_training_layer_norm(KernelTable& t) {
  t.add<Op::layer_norm_backward>({"eigen", "eigen_layer_norm_backward",
                                  supports_layer_norm_backward, run_layer_norm_backward});
}

}  // namespace kiln::internal::eigen
