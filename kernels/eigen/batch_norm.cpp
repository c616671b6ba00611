// Eigen kernel of batch_norm ([N, C] or [N, C, H, W], f32).
//
// Training: per-channel mean and biased variance in two passes (float sums of each
// contiguous H*W block, accumulated in double), then y = x * a + b with the per-channel
// a = gamma / sqrt(v + eps), b = beta - m * a, and the running averages updated in place.
// Inference: the same affine map from the running statistics. Threads split channels
// (4-D) or rows ([N, C]).
#include <cmath>
#include <vector>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_batch_norm(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 5) return decline(why, "needs x, gamma, beta, running mean and var");
  const std::size_t r = q.inputs[0].shape.rank();
  if (r != 2 && r != 4) return decline(why, "x must be [N, C] or [N, C, H, W]");
  if (q.inputs[0].shape.numel() == 0)
    return decline(why, "empty tensors are left to the reference");
  return true;
}

/// x viewed as [n, c, hw].
struct Layout {
  std::int64_t n, c, hw;
};

Layout layout_of(const Shape& s) { return {s[0], s[1], s.rank() == 4 ? s[2] * s[3] : 1}; }

/// Per-channel mean and biased variance (two passes, double accumulation).
void channel_stats(const float* x, const Layout& l, std::vector<double>& mean,
                   std::vector<double>& var) {
  const double count = static_cast<double>(l.n * l.hw);
  mean.assign(static_cast<std::size_t>(l.c), 0.0);
  var.assign(static_cast<std::size_t>(l.c), 0.0);
  if (l.hw == 1) {  // [N, C]: rows are contiguous, channels run along them
    for (std::int64_t i = 0; i < l.n; ++i)
      for (std::int64_t c = 0; c < l.c; ++c) mean[c] += x[i * l.c + c];
    for (auto& m : mean) m /= count;
    for (std::int64_t i = 0; i < l.n; ++i)
      for (std::int64_t c = 0; c < l.c; ++c) {
        const double d = x[i * l.c + c] - mean[c];
        var[c] += d * d;
      }
    for (auto& v : var) v /= count;
    return;
  }
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, l.n * l.hw));
  parallel_ranges(l.c, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t c = lo; c < hi; ++c) {
      double s = 0.0;
      for (std::int64_t i = 0; i < l.n; ++i)
        s += ConstArrayMap(x + (i * l.c + c) * l.hw, l.hw).sum();
      const double m = s / count;
      const auto mf = static_cast<float>(m);
      double v = 0.0;
      for (std::int64_t i = 0; i < l.n; ++i)
        v += (ConstArrayMap(x + (i * l.c + c) * l.hw, l.hw) - mf).square().sum();
      // Correct for the rounding of m to float: sum (x - mf)^2 = S + count * (m - mf)^2.
      const double shift = m - static_cast<double>(mf);
      mean[c] = m;
      var[c] = clamp_below_keep_nan(v / count - shift * shift);
    }
  });
}

/// y = x * a[c] + b[c].
void affine(const float* x, float* y, const Layout& l, const std::vector<float>& a,
            const std::vector<float>& b) {
  if (l.hw == 1) {
    const ConstArrayMap am(a.data(), l.c), bm(b.data(), l.c);
    const std::int64_t grain =
        std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, l.c));
    parallel_ranges(l.n, grain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)
        ArrayMap(y + i * l.c, l.c) = ConstArrayMap(x + i * l.c, l.c) * am + bm;
    });
    return;
  }
  const std::int64_t blocks = l.n * l.c;
  const std::int64_t grain = std::max<std::int64_t>(1, parallel_grain / l.hw);
  parallel_ranges(blocks, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      const std::size_t c = static_cast<std::size_t>(p % l.c);
      ArrayMap(y + p * l.hw, l.hw) = ConstArrayMap(x + p * l.hw, l.hw) * a[c] + b[c];
    }
  });
}

void run_batch_norm(const KernelArgs& args) {
  const Attrs& at = args.node.attrs;
  const Layout l = layout_of(args.inputs[0].shape());
  const float* x = args.inputs[0].data<float>();
  const float* gamma = args.inputs[1].data<float>();
  const float* beta = args.inputs[2].data<float>();
  // The running statistics are state the op owns: training updates them in place, as
  // PyTorch does, though they come in as (const) inputs.
  auto* running_mean = const_cast<float*>(args.inputs[3].data<float>());
  auto* running_var = const_cast<float*>(args.inputs[4].data<float>());
  const auto channels = static_cast<std::size_t>(l.c);
  std::vector<float> a(channels), b(channels);
  if (args.run.training) {
    if (l.n * l.hw < 2)
      throw ValueError("batch_norm node '" + args.node.name +
                       "': training needs more than one value per channel, got input " +
                       args.inputs[0].shape().str());
    std::vector<double> mean, var;
    channel_stats(x, l, mean, var);
    const double count = static_cast<double>(l.n * l.hw);
    const double unbias = count / (count - 1.0);
    const double mom = at.momentum;
    for (std::size_t c = 0; c < channels; ++c) {
      const double inv_std = 1.0 / std::sqrt(var[c] + static_cast<double>(at.eps));
      a[c] = static_cast<float>(gamma[c] * inv_std);
      b[c] = static_cast<float>(beta[c] - mean[c] * gamma[c] * inv_std);
      running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * mean[c]);
      running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * var[c] * unbias);
    }
  } else {
    for (std::size_t c = 0; c < channels; ++c) {
      const double inv_std =
          1.0 / std::sqrt(static_cast<double>(running_var[c]) + static_cast<double>(at.eps));
      a[c] = static_cast<float>(gamma[c] * inv_std);
      b[c] = static_cast<float>(beta[c] - running_mean[c] * gamma[c] * inv_std);
    }
  }
  affine(x, args.output.data<float>(), l, a, b);
}

}  // namespace

void register_batch_norm(KernelTable& t) {
  t.add<Op::batch_norm>({"eigen", "eigen_batch_norm", supports_batch_norm, run_batch_norm});
}

}  // namespace kiln::internal::eigen
