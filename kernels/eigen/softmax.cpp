// Eigen kernels of softmax and log_softmax: one pass for the max, one for exp and sum.
//
// The tensor is viewed as [outer, n, inner] with the softmax over n. When inner is 1
// each row is contiguous; otherwise a block of n rows of length inner is processed
// with vectors of length inner, so every access stays sequential.
#include <cmath>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_softmax(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 1 || q.inputs[0].shape != q.output.shape)
    return decline(why, "softmax output must have the input's shape");
  const auto axis = q.node.attrs.axis;
  if (axis < 0 || axis >= static_cast<std::int64_t>(q.output.shape.rank()))
    return decline(why, "softmax axis out of range");
  return true;
}

/// Softmax of contiguous rows of length n (in place allowed).
template <bool Log>
void softmax_rows(const float* x, float* y, std::int64_t rows, std::int64_t n) {
  parallel_ranges(rows, std::max<std::int64_t>(1, parallel_grain / 8 / n),
                  [&](std::int64_t begin, std::int64_t end) {
                    for (std::int64_t r = begin; r < end; ++r) {
                      ConstArrayMap xr(x + r * n, n);
                      ArrayMap yr(y + r * n, n);
                      const float mx = xr.maxCoeff();
                      if constexpr (Log) {
                        const float lse = mx + std::log((xr - mx).exp().sum());
                        yr = xr - lse;
                      } else {
                        yr = (xr - mx).exp();
                        yr *= 1.0f / yr.sum();
                      }
                    }
                  });
}

/// Softmax over the middle axis of [outer, n, inner] with inner > 1 (in place allowed).
template <bool Log>
void softmax_strided(const float* x, float* y, std::int64_t outer, std::int64_t n,
                     std::int64_t inner) {
  parallel_ranges(outer, std::max<std::int64_t>(1, parallel_grain / 8 / (n * inner)),
                  [&](std::int64_t begin, std::int64_t end) {
                    Eigen::ArrayXf mx(inner), total(inner);
                    for (std::int64_t o = begin; o < end; ++o) {
                      const float* xb = x + o * n * inner;
                      float* yb = y + o * n * inner;
                      mx = ConstArrayMap(xb, inner);
                      for (std::int64_t i = 1; i < n; ++i)
                        mx = mx.max(ConstArrayMap(xb + i * inner, inner));
                      total.setZero();
                      if constexpr (Log) {
                        for (std::int64_t i = 0; i < n; ++i)
                          total += (ConstArrayMap(xb + i * inner, inner) - mx).exp();
                        mx += total.log();  // log-sum-exp
                        for (std::int64_t i = 0; i < n; ++i)
                          ArrayMap(yb + i * inner, inner) =
                              ConstArrayMap(xb + i * inner, inner) - mx;
                      } else {
                        for (std::int64_t i = 0; i < n; ++i) {
                          ArrayMap yi(yb + i * inner, inner);
                          yi = (ConstArrayMap(xb + i * inner, inner) - mx).exp();
                          total += yi;
                        }
                        total = total.inverse();
                        for (std::int64_t i = 0; i < n; ++i)
                          ArrayMap(yb + i * inner, inner) *= total;
                      }
                    }
                  });
}

template <bool Log>
void run_softmax(const KernelArgs& args) {
  const Shape& s = args.output.shape();
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const std::int64_t outer = dims_product(s, 0, axis), n = s[axis];
  const std::int64_t inner = dims_product(s, axis + 1, s.rank());
  if (outer * n * inner == 0) return;
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  if (inner == 1)
    softmax_rows<Log>(x, y, outer, n);
  else
    softmax_strided<Log>(x, y, outer, n, inner);
}

}  // namespace

void register_softmax(KernelTable& t) {
  t.add<Op::softmax>({"eigen", "eigen_softmax", supports_softmax, run_softmax<false>});
  t.add<Op::log_softmax>({"eigen", "eigen_log_softmax", supports_softmax, run_softmax<true>});
}

}  // namespace kiln::internal::eigen
