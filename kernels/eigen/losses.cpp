// Eigen kernels of the fused losses: softmax_cross_entropy, mse, bce_with_logits.
//
// Each reads its inputs once. Partial sums are taken over vectorised f32 blocks and
// accumulated in double, so long inputs keep their precision.
#include <cmath>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

constexpr std::int64_t block = 1024;

/// Sum over [0, n) of f(lo, hi) (each an f32 block sum), accumulated in double.
template <class F>
double blocked_sum(std::int64_t n, F f) {
  const std::int64_t blocks = (n + block - 1) / block;
  double total = 0.0;
  const int threads = blocks >= 16 && !omp_in_parallel() ? num_threads() : 1;
#pragma omp parallel for if (threads > 1) num_threads(threads) reduction(+ : total) schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b)
    total += static_cast<double>(f(b * block, std::min(n, (b + 1) * block)));
  return total;
}

bool supports_pairwise(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 || q.inputs[0].shape != q.inputs[1].shape)
    return decline(why, "loss inputs must have the same shape");
  if (q.inputs[0].shape.numel() == 0) return decline(why, "empty input (left to the reference)");
  return true;
}

void run_mse(const KernelArgs& args) {
  const float* a = args.inputs[0].data<float>();
  const float* b = args.inputs[1].data<float>();
  const std::int64_t n = args.inputs[0].numel();
  const double total = blocked_sum(n, [&](std::int64_t lo, std::int64_t hi) {
    return (ConstArrayMap(a + lo, hi - lo) - ConstArrayMap(b + lo, hi - lo)).square().sum();
  });
  args.output.data<float>()[0] = static_cast<float>(total / static_cast<double>(n));
}

void run_bce_with_logits(const KernelArgs& args) {
  const float* x = args.inputs[0].data<float>();
  const float* t = args.inputs[1].data<float>();
  const std::int64_t n = args.inputs[0].numel();
  const double total = blocked_sum(n, [&](std::int64_t lo, std::int64_t hi) {
    ConstArrayMap xs(x + lo, hi - lo), ts(t + lo, hi - lo);
    return (xs.max(0.0f) - xs * ts + (-xs.abs()).exp().log1p()).sum();
  });
  args.output.data<float>()[0] = static_cast<float>(total / static_cast<double>(n));
}

bool supports_softmax_cross_entropy(const KernelQuery& q, std::string* why) {
  if (q.inputs.size() != 2) return decline(why, "needs logits and labels");
  if (q.inputs[0].dtype != DType::f32 || q.output.dtype != DType::f32)
    return decline(why, "eigen kernels handle f32 only");
  if (!is_index_type(q.inputs[1].dtype)) return decline(why, "labels must be i32 or i64");
  const Shape& s = q.inputs[0].shape;
  if (s.rank() != 2 || s[0] == 0 || s[1] == 0)
    return decline(why, "logits must be a non-empty [N, C]");
  return true;
}

void run_softmax_cross_entropy(const KernelArgs& args) {
  const Tensor& labels = args.inputs[1];
  const std::int64_t rows = args.inputs[0].dim(0), classes = args.inputs[0].dim(1);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t l = index_at(labels, r);
    if (l < 0 || l >= classes)
      throw ValueError("softmax_cross_entropy node '" + args.node.name + "': label " +
                       std::to_string(l) + " at row " + std::to_string(r) + " is outside [0, " +
                       std::to_string(classes) + ")");
  }
  const float* x = args.inputs[0].data<float>();
  double total = 0.0;
  const int threads = rows * classes >= parallel_grain && !omp_in_parallel() ? num_threads() : 1;
#pragma omp parallel for if (threads > 1) num_threads(threads) reduction(+ : total) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    ConstArrayMap row(x + r * classes, classes);
    const float mx = row.maxCoeff();
    const float lse = mx + std::log((row - mx).exp().sum());
    total += static_cast<double>(lse - row[index_at(labels, r)]);
  }
  args.output.data<float>()[0] = static_cast<float>(total / static_cast<double>(rows));
}

}  // namespace

void register_losses(KernelTable& t) {
  t.add<Op::softmax_cross_entropy>({"eigen", "eigen_softmax_cross_entropy_fused",
                                    supports_softmax_cross_entropy, run_softmax_cross_entropy});
  t.add<Op::mse>({"eigen", "eigen_mse_fused", supports_pairwise, run_mse});
  t.add<Op::bce_with_logits>(
      {"eigen", "eigen_bce_with_logits_fused", supports_pairwise, run_bce_with_logits});
}

}  // namespace kiln::internal::eigen
