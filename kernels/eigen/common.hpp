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

}  // namespace kiln::internal::eigen
