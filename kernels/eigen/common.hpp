// Internal: helpers shared by the Eigen kernels (array maps, threading, checks).
#pragma once

#include <omp.h>

// GCC 12 with AVX-512 reports _mm512_undefined_ps() inside Eigen's packet math as
// "may be used uninitialized" (a false positive in the compiler's own intrinsics).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <algorithm>
#include <cstdint>
#include <string>

#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/threads.hpp"

namespace kiln::internal::eigen {

using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;
using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Elements below which a memory-bound loop stays on one thread.
inline constexpr std::int64_t parallel_grain = std::int64_t{1} << 15;

/// Sets *why (when given) and returns false: the tail of every declining supports().
inline bool decline(std::string* why, const char* reason) {
  if (why != nullptr) *why = reason;
  return false;
}

/// Accepts only queries whose inputs and output are all f32.
inline bool require_f32(const KernelQuery& q, std::string* why) {
  return all_f32(q) || decline(why, "eigen kernels handle f32 only");
}

inline bool is_index_type(DType t) { return t == DType::i32 || t == DType::i64; }

/// Calls f(begin, end) over [0, n), split into contiguous chunks across threads when
/// there are at least 2 * grain items. f must not throw (validate before calling).
template <class F>
void parallel_ranges(std::int64_t n, std::int64_t grain, F&& f) {
  const int threads = num_threads();
  if (threads <= 1 || n < 2 * grain || omp_in_parallel()) {
    if (n > 0) f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t chunks = std::min<std::int64_t>(threads, n / grain);
  const int team = static_cast<int>(chunks);
#pragma omp parallel for num_threads(team) schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) f(n * c / chunks, n * (c + 1) / chunks);
}

// NaN semantics (as the reference kernels and PyTorch): a NaN reaching a max, a ReLU or a
// max pooling window comes out as NaN. Eigen's plain max() and std::max drop a NaN in one
// operand, so the kernels use these instead.

/// The larger of a and b, NaN when either is NaN.
/// (Written so that loops of it vectorise: a compare and a blend, no branches.)
inline float nan_max(float a, float b) {
  return __builtin_isunordered(a, b) ? a + b : std::max(a, b);
}

/// Whether v beats the current maximum m in a first-maximum scan where a NaN beats
/// everything but an earlier NaN.
inline bool beats(float v, float m) { return v > m || (v != v && m == m); }

/// max(v, 0) for a variance that rounding made slightly negative; NaN stays NaN.
inline double clamp_below_keep_nan(double v) { return v < 0.0 ? 0.0 : v; }

/// Eigen's elementwise max that returns NaN when either operand is NaN (vectorised).
using MaxKeepNan = Eigen::internal::scalar_max_op<float, float, Eigen::PropagateNaN>;

/// max(x, y) elementwise, keeping NaN (Eigen array expressions of one size).
template <class X, class Y>
auto max_keep_nan(const X& x, const Y& y) {
  return x.binaryExpr(y, MaxKeepNan());
}

/// max(x, 0) elementwise, keeping NaN (an Eigen array expression).
template <class Expr>
auto relu_keep_nan(const Expr& x) {
  return max_keep_nan(x, Expr::Constant(x.rows(), x.cols(), 0.0f));
}

/// Product of dims [begin, end) of a shape.
inline std::int64_t dims_product(const Shape& s, std::size_t begin, std::size_t end) {
  std::int64_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

/// Reads element i of an i32 or i64 index tensor.
inline std::int64_t index_at(const Tensor& t, std::int64_t i) {
  if (t.dtype() == DType::i32) return static_cast<const std::int32_t*>(t.raw())[i];
  return static_cast<const std::int64_t*>(t.raw())[i];
}

// ---- rnn ----
/// While it lives, OpenMP regions started by this thread (Eigen's GEMM threads) get one
/// thread: for loops of many small products (a recurrence: one per step), where a parallel
/// region per product costs more in start-up and barriers than it saves. Other threads and
/// the setting afterwards are untouched (OpenMP's thread count is per thread).
class SingleThreadedRegion {
 public:
  SingleThreadedRegion() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedRegion() { omp_set_num_threads(saved_); }
  SingleThreadedRegion(const SingleThreadedRegion&) = delete;
  SingleThreadedRegion& operator=(const SingleThreadedRegion&) = delete;

 private:
  int saved_;
};

}  // namespace kiln::internal::eigen
