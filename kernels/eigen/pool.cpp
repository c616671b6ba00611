// Eigen kernels of max_pool2d and avg_pool2d (NCHW, f32): direct loops per plane.
//
// For each output row, every window offset (ki, kj) sweeps the row once over the output
// columns whose input column is inside the image, so the inner loop is a contiguous (or
// strided) max / add that the compiler vectorises; padding cells are never read. Threads
// split the N*C planes. A plane holding NaN (one vectorised scan decides) takes NaN-keeping
// maxima, so a window with a NaN gives NaN.
#include <limits>

#include "kernels/eigen/conv_geometry.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/max_pool_2x2.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_pool(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 1 || q.inputs[0].shape.rank() != 4)
    return decline(why, "needs one 4-D input");
  if (q.output.shape.numel() == 0) return decline(why, "empty tensors are left to the reference");
  Shape pooled;
  if (auto e = pooled_shape(q.node.attrs, q.inputs[0].shape, &pooled); !e.empty())
    return decline(why, e.c_str());
  if (pooled != q.output.shape) return decline(why, "the output must have the pooled shape");
  return true;
}

ConvGeometry pool_geometry(const Attrs& a, const Shape& x, const Shape& y) {
  return conv_geometry(a, x, y, a.kernel[0], a.kernel[1]);
}

/// Calls row_op(dst_row, src_row, stride, offset, lo, hi) for every window offset that
/// lands inside the image, for output row oh.
template <class RowOp>
void sweep_row(const ConvGeometry& g, const float* src, float* d, std::int64_t oh, RowOp op) {
  for (std::int64_t ki = 0; ki < g.kh; ++ki) {
    const std::int64_t ih = oh * g.sh - g.ph + ki;
    if (ih < 0 || ih >= g.in_h) continue;
    const float* s = src + ih * g.in_w;
    for (std::int64_t kj = 0; kj < g.kw; ++kj) {
      const std::int64_t off = kj - g.pw;
      const ValidRange cols = valid_range(g.in_w, g.out_w, g.sw, off);
      op(d, s + off, cols.lo, cols.hi);
    }
  }
}

/// Window maxima of one plane. A plane holding NaN takes the general sweep with nan_max
/// (a window with a NaN gives NaN); others the vectorised std::max loops.
void max_plane(const ConvGeometry& g, const float* src, float* dst) {
  const bool nan = any_nan(src, g.in_plane());
  if (!nan && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0)
    return max_pool_2x2::forward_plane(src, dst, g.in_w, g.out_h, g.out_w);
  const float lowest = -std::numeric_limits<float>::infinity();
  std::fill(dst, dst + g.out_plane(), lowest);
  for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
    float* d = dst + oh * g.out_w;
    const std::int64_t sw = g.sw;
    sweep_row(g, src, d, oh, [sw, nan](float* o, const float* s, std::int64_t lo, std::int64_t hi) {
      if (nan) {
        for (std::int64_t ow = lo; ow < hi; ++ow) o[ow] = nan_max(o[ow], s[ow * sw]);
      } else if (sw == 1) {
        for (std::int64_t ow = lo; ow < hi; ++ow) o[ow] = std::max(o[ow], s[ow]);
      } else {
        for (std::int64_t ow = lo; ow < hi; ++ow) o[ow] = std::max(o[ow], s[ow * sw]);
      }
    });
  }
}

/// Number of window cells inside [0, in) for the window starting at `start` of size k.
std::int64_t inside(std::int64_t start, std::int64_t k, std::int64_t in) {
  return std::min(start + k, in) - std::max<std::int64_t>(start, 0);
}

void avg_plane(const ConvGeometry& g, const float* src, float* dst, bool include_pad) {
  std::fill(dst, dst + g.out_plane(), 0.0f);
  const float full = 1.0f / static_cast<float>(g.kh * g.kw);
  for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
    float* d = dst + oh * g.out_w;
    if (g.sw == 1) {
      sweep_row(g, src, d, oh, [](float* o, const float* s, std::int64_t lo, std::int64_t hi) {
        for (std::int64_t ow = lo; ow < hi; ++ow) o[ow] += s[ow];
      });
    } else {
      const std::int64_t sw = g.sw;
      sweep_row(g, src, d, oh, [sw](float* o, const float* s, std::int64_t lo, std::int64_t hi) {
        for (std::int64_t ow = lo; ow < hi; ++ow) o[ow] += s[ow * sw];
      });
    }
    if (include_pad) {
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) d[ow] *= full;
    } else {
      const std::int64_t rows = inside(oh * g.sh - g.ph, g.kh, g.in_h);
      for (std::int64_t ow = 0; ow < g.out_w; ++ow)
        d[ow] /= static_cast<float>(rows * inside(ow * g.sw - g.pw, g.kw, g.in_w));
    }
  }
}

template <bool Max>
void run_pool(const KernelArgs& args) {
  const ConvGeometry g =
      pool_geometry(args.node.attrs, args.inputs[0].shape(), args.output.shape());
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  const bool include_pad = args.node.attrs.include_pad;
  const std::int64_t planes = g.batch * g.in_c;
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, g.in_plane()));
  parallel_ranges(planes, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      if constexpr (Max)
        max_plane(g, x + p * g.in_plane(), y + p * g.out_plane());
      else
        avg_plane(g, x + p * g.in_plane(), y + p * g.out_plane(), include_pad);
    }
  });
}

}  // namespace

void register_pool(KernelTable& t) {
  t.add<Op::max_pool2d>({"eigen", "eigen_max_pool2d_direct", supports_pool, run_pool<true>});
  t.add<Op::avg_pool2d>({"eigen", "eigen_avg_pool2d_direct", supports_pool, run_pool<false>});
}

}  // namespace kiln::internal::eigen
