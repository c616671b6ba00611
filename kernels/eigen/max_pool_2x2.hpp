// Internal: 2x2 stride-2 unpadded max pooling of one NCHW plane, forward and backward, in
// the widest vectors the build targets (GCC/Clang vector extensions; AVX-512, AVX or
// SSE/NEON). Header-only: pool.cpp (kiln_infer) and training_cnn.cpp (kiln) each carry a
// copy. Callers route planes holding NaN elsewhere (the comparisons here would drop it).
//
// Both directions work on two input rows at once and on whole vectors of input columns,
// so no lane is wasted on short rows (28 columns: vectors of 16, 8 and 4): the vertical
// max of the two rows, then each lane's partner in its column pair (an in-register
// shuffle) gives every lane its window's maximum. The forward keeps the even lanes; the
// backward compares each input with its window's maximum and gives gy to the first
// cell in row-major order that equals it (the reference's tie rule), 0 to the others.
// The forward at the W2 shapes was 3x faster than the scalar loop it replaces, whose
// 14-column output rows never filled an AVX-512 vector.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>

namespace kiln::internal::eigen {

/// Whether n floats hold a NaN (a vectorised scan).
inline bool any_nan(const float* x, std::int64_t n) {
  int found = 0;
  for (std::int64_t i = 0; i < n; ++i) found |= x[i] != x[i];
  return found != 0;
}

namespace max_pool_2x2 {

#if defined(__AVX512F__)
inline constexpr int kWidest = 16;
#elif defined(__AVX__)
inline constexpr int kWidest = 8;
#else
inline constexpr int kWidest = 4;
#endif

// N floats and N lane masks (GCC drops vector_size on a dependent alias template, so one
// specialisation per width).
template <int N>
struct Lanes;
#define KILN_POOL_LANES(n)                                                            \
  template <>                                                                         \
  struct Lanes<n> {                                                                   \
    typedef float vec __attribute__((vector_size(n * sizeof(float))));                \
    typedef std::int32_t mask __attribute__((vector_size(n * sizeof(std::int32_t)))); \
  };
KILN_POOL_LANES(2)
KILN_POOL_LANES(4)
KILN_POOL_LANES(8)
KILN_POOL_LANES(16)
#undef KILN_POOL_LANES
template <int N>
using Vec = typename Lanes<N>::vec;
template <int N>
using Mask = typename Lanes<N>::mask;

template <int N>
[[gnu::always_inline]] inline Vec<N> load(const float* p) {
  Vec<N> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int N>
[[gnu::always_inline]] inline void store(float* p, Vec<N> v) {
  std::memcpy(p, &v, sizeof v);
}

/// Lanes 2i and 2i+1 exchanged.
template <class V, std::size_t... I>
[[gnu::always_inline]] inline V swap_pairs(V v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, static_cast<int>(I ^ 1)...);
}
template <int N>
[[gnu::always_inline]] inline Vec<N> swap_pairs(Vec<N> v) {
  return swap_pairs(v, std::make_index_sequence<N>());
}
template <int N>
[[gnu::always_inline]] inline Mask<N> swap_pairs(Mask<N> v) {
  return swap_pairs(v, std::make_index_sequence<N>());
}

/// Lanes 0, 2, 4, ... of v.
template <int N, std::size_t... I>
[[gnu::always_inline]] inline Vec<N / 2> even_lanes(Vec<N> v, std::index_sequence<I...>) {
  return __builtin_shufflevector(v, v, static_cast<int>(2 * I)...);
}

/// Each lane of h twice: h0 h0 h1 h1 ...
template <int N, std::size_t... I>
[[gnu::always_inline]] inline Vec<N> doubled(Vec<N / 2> h, std::index_sequence<I...>) {
  return __builtin_shufflevector(h, h, static_cast<int>(I / 2)...);
}

/// Of a and b, the first that holds the maximum: b only when b > a (so of +0 and -0,
/// whichever comes first, as the reference's scan keeps).
template <int N>
[[gnu::always_inline]] inline Vec<N> first_max(Vec<N> a, Vec<N> b) {
  return b > a ? b : a;
}

/// Every lane: the maximum of its 2x2 window (rows a and b, the lane and its partner); at
/// the even lanes the window's first maximum in row-major order (each row's pair, then the
/// two rows), the value the reference gives, zero's sign included.
template <int N>
[[gnu::always_inline]] inline Vec<N> window_max(Vec<N> a, Vec<N> b) {
  return first_max<N>(first_max<N>(a, swap_pairs<N>(a)), first_max<N>(b, swap_pairs<N>(b)));
}

/// Outputs d[0, N/2) from input columns [0, N) of rows r0 and r1 (window_max's even lanes).
template <int N>
[[gnu::always_inline]] inline void forward_block(const float* r0, const float* r1, float* d) {
  const Vec<N> m = window_max<N>(load<N>(r0), load<N>(r1));
  store<N / 2>(d, even_lanes<N>(m, std::make_index_sequence<N / 2>()));
}

/// gx rows g0, g1 over input columns [0, N) from rows r0, r1 and gy[0, N/2); with Relu,
/// times (x > 0), as relu_backward(x, gx) computes it (the fused ReLU gradient).
template <int N, bool Relu>
[[gnu::always_inline]] inline void backward_block(const float* r0, const float* r1, const float* gy,
                                                  float* g0, float* g1) {
  const Vec<N> a = load<N>(r0), b = load<N>(r1);
  const Vec<N> m = window_max<N>(a, b);
  const Vec<N> g = doubled<N>(load<N / 2>(gy), std::make_index_sequence<N>());
  Mask<N> odd;
  for (int i = 0; i < N; ++i) odd[i] = -(i & 1);
  const Mask<N> ea = a == m, eb = b == m;
  const Mask<N> ea_pair = swap_pairs<N>(ea), eb_pair = swap_pairs<N>(eb);
  // Cells in scan order: (r0, even), (r0, odd), (r1, even), (r1, odd); a cell takes gy
  // when it equals the maximum and no earlier cell of its window does.
  const Mask<N> take0 = ea & (~odd | ~ea_pair);
  const Mask<N> take1 = eb & ~ea & ~ea_pair & (~odd | ~eb_pair);
  // + 0: a gy of -0 lands as +0, as the reference's accumulation into zeros gives.
  Vec<N> o0 = (take0 ? g : Vec<N>{}) + 0.0f, o1 = (take1 ? g : Vec<N>{}) + 0.0f;
  if constexpr (Relu) {
    const Vec<N> one = Vec<N>{} + 1.0f;
    o0 = o0 * (a > Vec<N>{} ? one : Vec<N>{});
    o1 = o1 * (b > Vec<N>{} ? one : Vec<N>{});
  }
  store<N>(g0, o0);
  store<N>(g1, o1);
}

/// Columns [0, cols) (even) of a row pair: blocks of N, then at most one of each
/// narrower width down to 4 lanes, then a last pair.
template <int N, class Block>
[[gnu::always_inline]] inline void sweep(std::int64_t cols, Block&& block) {
  std::int64_t j = 0;
  for (; j + N <= cols; j += N) block.template operator()<N>(j);
  if constexpr (N > 4) {
    if (j < cols) {
      const std::int64_t rest = cols - j;
      sweep<N / 2>(
          rest, [&]<int M>(std::int64_t i)
                    __attribute__((always_inline)) { block.template operator()<M>(j + i); });
    }
  } else {
    if (j < cols) block.template operator()<2>(j);
  }
}

/// The last column pair of a row: the 4-lane block over copies (branch-free, and the
/// same comparisons as every other pair; compare-and-branch code mispredicted here on
/// random data and took most of the time of 14-column rows).
[[gnu::always_inline]] inline void forward_pair(const float* r0, const float* r1, float* d) {
  const float a[4] = {r0[0], r0[1], r0[0], r0[1]}, b[4] = {r1[0], r1[1], r1[0], r1[1]};
  float out[2];
  forward_block<4>(a, b, out);
  *d = out[0];
}

template <bool Relu>
[[gnu::always_inline]] inline void backward_pair(const float* r0, const float* r1, float v,
                                                 float* g0, float* g1) {
  const float a[4] = {r0[0], r0[1], r0[0], r0[1]}, b[4] = {r1[0], r1[1], r1[0], r1[1]};
  const float gy[2] = {v, v};
  float o0[4], o1[4];
  backward_block<4, Relu>(a, b, gy, o0, o1);
  g0[0] = o0[0];
  g0[1] = o0[1];
  g1[0] = o1[0];
  g1[1] = o1[1];
}

/// y [out_h, out_w] from the plane x [in_h, in_w] (out_h = in_h / 2, out_w = in_w / 2).
inline void forward_plane(const float* x, float* y, std::int64_t in_w, std::int64_t out_h,
                          std::int64_t out_w) {
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const float* r0 = x + 2 * oh * in_w;
    const float* r1 = r0 + in_w;
    float* d = y + oh * out_w;
    sweep<kWidest>(
        2 * out_w, [&]<int N>(std::int64_t j) __attribute__((always_inline)) {
          if constexpr (N == 2)
            forward_pair(r0 + j, r1 + j, d + j / 2);
          else
            forward_block<N>(r0 + j, r1 + j, d + j / 2);
        });
  }
}

/// gx [in_h, in_w] from x and gy [out_h, out_w]; cells outside every window (an odd last
/// row or column) get 0. Relu: times (x > 0) (see backward_block).
template <bool Relu>
void backward_plane(const float* x, const float* gy, float* gx, std::int64_t in_h,
                    std::int64_t in_w, std::int64_t out_h, std::int64_t out_w) {
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const float* r0 = x + 2 * oh * in_w;
    const float* r1 = r0 + in_w;
    const float* gr = gy + oh * out_w;
    float* g0 = gx + 2 * oh * in_w;
    float* g1 = g0 + in_w;
    sweep<kWidest>(
        2 * out_w, [&]<int N>(std::int64_t j) __attribute__((always_inline)) {
          if constexpr (N == 2)
            backward_pair<Relu>(r0 + j, r1 + j, gr[j / 2], g0 + j, g1 + j);
          else
            backward_block<N, Relu>(r0 + j, r1 + j, gr + j / 2, g0 + j, g1 + j);
        });
    for (std::int64_t j = 2 * out_w; j < in_w; ++j) g0[j] = g1[j] = 0.0f;
  }
  for (std::int64_t i = 2 * out_h * in_w; i < in_h * in_w; ++i) gx[i] = 0.0f;
}

}  // namespace max_pool_2x2
}  // namespace kiln::internal::eigen
