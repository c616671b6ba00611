// Internal: im2col / col2im and per-plan scratch shared by the Eigen convolution
// kernels (conv.cpp in kiln_infer, training_cnn.cpp in kiln), header-only so both
// libraries carry their own copy.
//
// A convolution maps an "image" [C, H, W] to a "column" grid [Ho, Wo]. im2col lays the
// image out as the matrix [C/groups * kh * kw, Ho * Wo] (one group at a time), so conv2d is
// W_g · col and its adjoint (conv_transpose2d) is col2im(W_g^T · x).
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "internal/conv_geometry.hpp"
#include "kernels/eigen/common.hpp"

namespace kiln::internal::eigen {

// ConvGeometry, conv_geometry() and conv_geometry_error(): internal/conv_geometry.hpp, the
// one geometry of the shape rules and every kernel family.

/// ceil(a / b) for b > 0 and any sign of a.
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/// The outputs o in [lo, hi) of [0, out) whose input index o*stride + offset is in [0, in).
struct ValidRange {
  std::int64_t lo, hi;
};
inline ValidRange valid_range(std::int64_t in, std::int64_t out, std::int64_t stride,
                              std::int64_t offset) {
  const std::int64_t lo = std::clamp<std::int64_t>(ceil_div(-offset, stride), 0, out);
  const std::int64_t hi = std::clamp<std::int64_t>(ceil_div(in - offset, stride), lo, out);
  return {lo, hi};
}

/// col [in_cg*kh*kw, Ho*Wo] from in_cg image planes (zero where the window is in padding).
inline void im2col(const float* img, float* col, const ConvGeometry& g) {
  const std::int64_t ow_n = g.out_w;
  for (std::int64_t c = 0; c < g.in_cg(); ++c) {
    const float* plane = img + c * g.in_plane();
    for (std::int64_t ki = 0; ki < g.kh; ++ki) {
      const ValidRange rows = valid_range(g.in_h, g.out_h, g.sh, ki * g.dh - g.ph);
      for (std::int64_t kj = 0; kj < g.kw; ++kj) {
        float* dst = col + ((c * g.kh + ki) * g.kw + kj) * g.out_plane();
        const std::int64_t off_w = kj * g.dw - g.pw;
        const ValidRange cols = valid_range(g.in_w, ow_n, g.sw, off_w);
        std::memset(dst, 0, static_cast<std::size_t>(rows.lo * ow_n) * sizeof(float));
        for (std::int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          float* d = dst + oh * ow_n;
          const float* src = plane + (oh * g.sh + ki * g.dh - g.ph) * g.in_w + off_w;
          std::fill(d, d + cols.lo, 0.0f);
          if (g.sw == 1) {
            std::memcpy(d + cols.lo, src + cols.lo,
                        static_cast<std::size_t>(cols.hi - cols.lo) * sizeof(float));
          } else {
            for (std::int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow] = src[ow * g.sw];
          }
          std::fill(d + cols.hi, d + ow_n, 0.0f);
        }
        std::memset(dst + rows.hi * ow_n, 0,
                    static_cast<std::size_t>((g.out_h - rows.hi) * ow_n) * sizeof(float));
      }
    }
  }
}

/// Adds col [in_cg*kh*kw, Ho*Wo] back into in_cg image planes (the adjoint of im2col).
inline void col2im_add(const float* col, float* img, const ConvGeometry& g) {
  const std::int64_t ow_n = g.out_w;
  for (std::int64_t c = 0; c < g.in_cg(); ++c) {
    float* plane = img + c * g.in_plane();
    for (std::int64_t ki = 0; ki < g.kh; ++ki) {
      const ValidRange rows = valid_range(g.in_h, g.out_h, g.sh, ki * g.dh - g.ph);
      for (std::int64_t kj = 0; kj < g.kw; ++kj) {
        const float* srcs = col + ((c * g.kh + ki) * g.kw + kj) * g.out_plane();
        const std::int64_t off_w = kj * g.dw - g.pw;
        const ValidRange cols = valid_range(g.in_w, ow_n, g.sw, off_w);
        for (std::int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          const float* s = srcs + oh * ow_n;
          float* d = plane + (oh * g.sh + ki * g.dh - g.ph) * g.in_w + off_w;
          if (g.sw == 1) {
            for (std::int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow] += s[ow];
          } else {
            for (std::int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow * g.sw] += s[ow];
          }
        }
      }
    }
  }
}

/// Per-plan scratch: `slots` equal buffers of `size` floats, one per worker thread.
struct Scratch {
  std::int64_t size = 0;
  int slots = 0;
  std::unique_ptr<float[]> data;

  Scratch(std::int64_t size_per_slot, int slot_count)
      : size(size_per_slot),
        slots(slot_count),
        data(size_per_slot > 0 ? new float[static_cast<std::size_t>(size_per_slot * slot_count)]
                               : nullptr) {}
  float* slot(int i) { return data.get() + static_cast<std::int64_t>(i) * size; }
};

/// The prepared scratch when it fits, else a fresh one (a kernel run without prepare()).
inline Scratch* scratch_for(void* state, std::int64_t size, int slots,
                            std::unique_ptr<Scratch>& fallback) {
  auto* s = static_cast<Scratch*>(state);
  if (s != nullptr && s->size >= size && s->slots >= slots) return s;
  fallback = std::make_unique<Scratch>(size, slots);
  return fallback.get();
}

/// Worker threads for `items` independent pieces of `work_per_item` flops each.
inline int worker_count(std::int64_t items, std::int64_t work_per_item) {
  const int threads = num_threads();
  if (threads <= 1 || items < 2 || omp_in_parallel() ||
      items * work_per_item < (std::int64_t{1} << 17))
    return 1;
  return static_cast<int>(std::min<std::int64_t>(threads, items));
}

/// Calls f(item, thread) for item in [0, items) on `workers` threads (static split).
template <class F>
void for_items(std::int64_t items, int workers, F&& f) {
  if (workers <= 1) {
    for (std::int64_t i = 0; i < items; ++i) f(i, 0);
    return;
  }
#pragma omp parallel num_threads(workers)
  {
    const int t = omp_get_thread_num();
    const std::int64_t n = omp_get_num_threads();
    for (std::int64_t i = items * t / n; i < items * (t + 1) / n; ++i) f(i, t);
  }
}

/// Output rows [rows, cols] = relu?(rows + bias[r]) in place: the conv epilogue.
inline void add_bias_relu(float* out, std::int64_t rows, std::int64_t cols, const float* bias,
                          bool relu) {
  Eigen::Map<RowMajorMatrix> m(out, rows, cols);
  if (bias != nullptr) {
    for (std::int64_t r = 0; r < rows; ++r) {
      if (relu)
        m.row(r).array() = relu_keep_nan(m.row(r).array() + bias[r]);
      else
        m.row(r).array() += bias[r];
    }
  } else if (relu) {
    m.array() = relu_keep_nan(m.array());
  }
}

}  // namespace kiln::internal::eigen
