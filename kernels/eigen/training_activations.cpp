// Eigen kernels of relu_backward and softmax_backward (training ops, built into kiln), f32:
// one pass where the composed forms took two (relu: step, then mul) or four (softmax: mul,
// sum, sub over an expanded sum, mul). Arithmetic as the reference
// (kernels/ref/training_activations.cpp); the softmax's sum is accumulated in float.
#include <cstdint>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

bool same_shapes(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 || q.inputs[0].shape != q.output.shape ||
      q.inputs[1].shape != q.output.shape)
    return decline(why, "y, gy and the output must have one shape");
  return true;
}

bool supports_softmax_backward(const KernelQuery& q, std::string* why) {
  if (!same_shapes(q, why)) return false;
  const auto axis = q.node.attrs.axis;
  if (axis < 0 || axis >= static_cast<std::int64_t>(q.output.shape.rank()))
    return decline(why, "softmax_backward axis out of range");
  return true;
}

void run_relu_backward(const KernelArgs& args) {
  const float* y = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  float* gx = args.output.data<float>();
  // A plain loop: Eigen's (y > 0).cast<float>() does not vectorise (bool to float), and
  // ran 1.6 M elements in 1 ms where this loop, a compare, a blend and a multiply per
  // vector, takes about a tenth (W2's ReLU gradients).
  parallel_ranges(args.output.numel(), parallel_grain, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) gx[i] = gy[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
  });
}

void run_softmax_backward(const KernelArgs& args) {
  const Shape& s = args.output.shape();
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const std::int64_t outer = dims_product(s, 0, axis), n = s[axis];
  const std::int64_t inner = dims_product(s, axis + 1, s.rank());
  const float* y = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  float* gx = args.output.data<float>();
  if (inner == 1) {  // contiguous rows
    parallel_ranges(outer,
                    std::max<std::int64_t>(1, parallel_grain / 4 / std::max<std::int64_t>(1, n)),
                    [&](std::int64_t lo, std::int64_t hi) {
                      for (std::int64_t r = lo; r < hi; ++r) {
                        const ConstArrayMap yr(y + r * n, n), gr(gy + r * n, n);
                        const float sum = (gr * yr).sum();
                        ArrayMap(gx + r * n, n) = yr * (gr - sum);
                      }
                    });
    return;
  }
  // [outer, n, inner]: vectors of length inner, sequential access.
  parallel_ranges(
      outer, std::max<std::int64_t>(1, parallel_grain / 4 / std::max<std::int64_t>(1, n * inner)),
      [&](std::int64_t lo, std::int64_t hi) {
        Eigen::ArrayXf sum(inner);
        for (std::int64_t o = lo; o < hi; ++o) {
          const std::int64_t base = o * n * inner;
          sum.setZero();
          for (std::int64_t j = 0; j < n; ++j)
            sum += ConstArrayMap(gy + base + j * inner, inner) *
                   ConstArrayMap(y + base + j * inner, inner);
          for (std::int64_t j = 0; j < n; ++j) {
            const std::int64_t at = base + j * inner;
            ArrayMap(gx + at, inner) =
                ConstArrayMap(y + at, inner) * (ConstArrayMap(gy + at, inner) - sum);
          }
        }
      });
}

}  // namespace

void register_training_activations(KernelTable& t) {
  t.add<Op::relu_backward>({"eigen", "eigen_relu_backward", same_shapes, run_relu_backward});
  t.add<Op::softmax_backward>(
      {"eigen", "eigen_softmax_backward", supports_softmax_backward, run_softmax_backward});
}

}  // namespace kiln::internal::eigen
