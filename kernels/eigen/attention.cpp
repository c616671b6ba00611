// Eigen kernels of attention (fused, f32) and exact GELU.
//
// attention: for each (batch, head) pair S = q k^T * scale (one GEMM into a per-thread
// [Tq, Tk] buffer; the products are a parameter of attention_heads, which the oneDNN kernel
// runs with dnnl_sgemm), then per query row the key mask and the causal limit, a stable softmax
// (max over the allowed keys, a NaN wins; exp and one division per row), then y = P v (a
// second GEMM). Disallowed keys get probability 0; a row without any allowed key is zeroed
// after the product, as the reference does. (batch, head) pairs split across threads.
// gelu: x * 0.5 * (1 + erf(x / sqrt 2)) with Eigen's vectorised erf.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/normal_cdf.hpp"

namespace kiln::internal::eigen {

bool supports_attention(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 3 && q.inputs.size() != 4)
    return decline(why, "attention takes q, k, v and an optional key mask");
  const Shape& qs = q.inputs[0].shape;
  const Shape& ks = q.inputs[1].shape;
  const Shape& vs = q.inputs[2].shape;
  if (qs.rank() != 4 || ks.rank() != 4 || vs.rank() != 4)
    return decline(why, "q, k and v must be 4-D");
  for (std::size_t i = 0; i < 4; ++i)
    if (qs[i] < 0 || ks[i] < 0 || vs[i] < 0) return decline(why, "shapes must be concrete");
  if (ks[0] != qs[0] || vs[0] != qs[0] || ks[1] != qs[1] || vs[1] != qs[1] || ks[3] != qs[3] ||
      vs[2] != ks[2])
    return decline(why, "q, k and v do not fit together");
  if (q.node.attrs.causal && qs[2] != ks[2]) return decline(why, "causal needs Tq == Tk");
  if (q.inputs.size() == 4) {
    const Shape& m = q.inputs[3].shape;
    if (m.rank() != 2 || m[0] != qs[0] || m[1] != ks[2])
      return decline(why, "key mask must be [B, Tk]");
  }
  if (q.output.shape != Shape{qs[0], qs[1], qs[2], vs[3]})
    return decline(why, "output must be [B, heads, Tq, dv]");
  return true;
}

namespace {

using Mat = RowMajorMatrix;

/// Eigen's GEMMs for one (batch, head).
void eigen_scores(const float* q, const float* k, float* s, std::int64_t tq, std::int64_t tk,
                  std::int64_t d, float scale) {
  Eigen::Map<Mat> S(s, tq, tk);
  if (d == 0) {
    S.setZero();
    return;
  }
  S.noalias() = Eigen::Map<const Mat>(q, tq, d) * Eigen::Map<const Mat>(k, tk, d).transpose();
  S *= scale;
}
void eigen_values(const float* p, const float* v, float* y, std::int64_t tq, std::int64_t tk,
                  std::int64_t dv) {
  Eigen::Map<Mat>(y, tq, dv).noalias() =
      Eigen::Map<const Mat>(p, tq, tk) * Eigen::Map<const Mat>(v, tk, dv);
}

void run_attention(const KernelArgs& args) { attention_heads(args, {eigen_scores, eigen_values}); }

}  // namespace

void attention_heads(const KernelArgs& args, const AttentionProducts& products) {
  const Shape& qs = args.inputs[0].shape();
  const std::int64_t batch = qs[0], heads = qs[1], tq = qs[2], d = qs[3];
  const std::int64_t tk = args.inputs[1].dim(2), dv = args.inputs[2].dim(3);
  const float* q = args.inputs[0].data<float>();
  const float* k = args.inputs[1].data<float>();
  const float* v = args.inputs[2].data<float>();
  const float* mask = args.inputs.size() == 4 ? args.inputs[3].data<float>() : nullptr;
  float* y = args.output.data<float>();
  if (batch * heads * tq * dv == 0) return;
  const bool causal = args.node.attrs.causal;
  const float scale = args.node.attrs.alpha != 0.0f
                          ? args.node.attrs.alpha
                          : static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const std::int64_t work = tq * tk * (d + dv);
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, work));
  parallel_ranges(batch * heads, grain, [&](std::int64_t lo, std::int64_t hi) {
    Mat s(tq, tk);
    std::vector<char> dead(static_cast<std::size_t>(tq));
    Eigen::ArrayXf keep(tk);  // the key mask of the current batch row as 1 and 0
    std::int64_t keep_of = -1, first_allowed = 0;
    constexpr float minus_inf = -std::numeric_limits<float>::infinity();
    for (std::int64_t bh = lo; bh < hi; ++bh) {
      const std::int64_t b = bh / heads;
      Eigen::Map<Mat> Y(y + bh * tq * dv, tq, dv);
      products.scores(q + bh * tq * d, k + bh * tk * d, s.data(), tq, tk, d, scale);
      if (mask != nullptr && keep_of != b) {
        first_allowed = tk;
        for (std::int64_t j = tk; j-- > 0;) {
          keep[j] = mask[b * tk + j] != 0.0f ? 1.0f : 0.0f;
          if (keep[j] != 0.0f) first_allowed = j;
        }
        keep_of = b;
      }
      bool any_dead = false;
      for (std::int64_t i = 0; i < tq; ++i) {
        float* row = s.data() + i * tk;
        const std::int64_t limit = causal ? i + 1 : tk;
        const bool empty = mask != nullptr && first_allowed >= limit;
        dead[static_cast<std::size_t>(i)] = empty;
        if (empty) {
          any_dead = true;
          std::fill(row, row + tk, 0.0f);
          continue;
        }
        ArrayMap r(row, limit);
        // Masked scores (even NaN ones) drop out of the max; after exp, masked keys are
        // multiplied by 0 (Eigen's exp of -inf is a tiny denormal, not 0).
        if (mask != nullptr) r = (keep.head(limit) != 0.0f).select(r, minus_inf);
        const float mx = r.maxCoeff<Eigen::PropagateNaN>();
        r = (r - mx).exp();
        if (mask != nullptr) r *= keep.head(limit);
        std::fill(row + limit, row + tk, 0.0f);
        r *= 1.0f / r.sum();
      }
      if (tk == 0)
        Y.setZero();
      else
        products.values(s.data(), v + bh * tk * dv, Y.data(), tq, tk, dv);
      if (any_dead)
        for (std::int64_t i = 0; i < tq; ++i)
          if (dead[static_cast<std::size_t>(i)]) Y.row(i).setZero();
    }
  });
}

namespace {

bool supports_gelu(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 1 || q.inputs[0].shape != q.output.shape)
    return decline(why, "gelu output must have the input's shape");
  return true;
}

void run_gelu(const KernelArgs& args) {
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  // Blocks of x are copied first: y may alias x (an elementwise op may run in place), and
  // the lower tail (x < -2 sqrt 2, Phi < 0.023) is redone with std::erfc, accurate to an
  // ulp there, so gelu keeps its relative accuracy; gelu(-inf) stays NaN as in the
  // reference (-inf * 0).
  parallel_ranges(args.output.numel(), parallel_grain / 8, [&](std::int64_t lo, std::int64_t hi) {
    constexpr std::int64_t block = 256;
    float buf[block];
    for (std::int64_t b = lo; b < hi; b += block) {
      const std::int64_t n = std::min(block, hi - b);
      std::copy(x + b, x + b + n, buf);
      ConstArrayMap xs(buf, n);
      ArrayMap(y + b, n) = xs * normal_cdf(xs * inv_sqrt2);
      for (std::int64_t i = 0; i < n; ++i)
        if (buf[i] < gelu_tail) y[b + i] = buf[i] * normal_cdf_tail(buf[i]);
    }
  });
}

}  // namespace

void register_attention(KernelTable& t) {
  t.add<Op::attention>({"eigen", "eigen_attention", supports_attention, run_attention});
  t.add<Op::gelu>({"eigen", "eigen_gelu", supports_gelu, run_gelu});
}

}  // namespace kiln::internal::eigen
