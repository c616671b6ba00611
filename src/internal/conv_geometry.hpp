// Internal: the one convolution and pooling geometry (NCHW) used by the shape rules
// (src/ops/conv_pool.cpp) and every kernel family (kernels/ref, kernels/eigen,
// kernels/onednn): output sizes of sliding windows, transposed convolutions and pooling,
// the attribute checks (stride, padding, dilation, groups, kernel), and the sizes of one
// convolution as the kernels loop over them. Every size is computed with overflow checks:
// attributes or shapes whose arithmetic would overflow int64 count as not fitting.
// Header-only, so kiln_infer and kiln each carry their copy.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "kiln/core/shape.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::internal {

/// "(h, w)" for messages.
inline std::string pair_str(const Pair& p) {
  // Appended piecewise: GCC 12 warns (-Wrestrict, falsely) on "(" + std::to_string(...).
  std::string s = "(";
  s += std::to_string(p[0]);
  s += ", ";
  s += std::to_string(p[1]);
  s += ")";
  return s;
}

/// a * b + c into *out; false when any step overflows int64.
inline bool checked_mul_add(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t* out) {
  std::int64_t p = 0;
  return !__builtin_mul_overflow(a, b, &p) && !__builtin_add_overflow(p, c, out);
}

/// Output length of a sliding window along one dim (conv2d, pooling):
/// floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1. -1 when the window does not fit the
/// padded input, an argument is out of range (k, stride, dil < 1; pad, in < 0) or the
/// arithmetic overflows.
inline std::int64_t window_out_size(std::int64_t in, std::int64_t k, std::int64_t stride,
                                    std::int64_t pad, std::int64_t dil) {
  if (in < 0 || k < 1 || stride < 1 || pad < 0 || dil < 1) return -1;
  std::int64_t span = 0, padded = 0;
  if (!checked_mul_add(dil, k - 1, 1, &span) || !checked_mul_add(2, pad, in, &padded)) return -1;
  if (padded < span) return -1;
  return (padded - span) / stride + 1;
}

/// Output length of a transposed convolution along one dim (the input length of the conv2d
/// it is the adjoint of): (in - 1)*stride - 2*pad + dil*(k - 1) + output_padding + 1.
/// -1 when it is below 1, an argument is out of range or the arithmetic overflows.
inline std::int64_t transposed_out_size(std::int64_t in, std::int64_t k, std::int64_t stride,
                                        std::int64_t pad, std::int64_t dil,
                                        std::int64_t output_padding) {
  if (in < 1 || k < 1 || stride < 1 || pad < 0 || dil < 1 || output_padding < 0) return -1;
  std::int64_t grown = 0, reach = 0, two_pad = 0, out = 0;
  if (!checked_mul_add(in - 1, stride, 0, &grown) ||
      !checked_mul_add(dil, k - 1, output_padding + 1, &reach) ||
      !checked_mul_add(2, pad, 0, &two_pad) || __builtin_add_overflow(grown, reach, &out))
    return -1;
  out -= two_pad;  // both operands non-negative: cannot overflow
  return out >= 1 ? out : -1;
}

/// "" when stride and dilation are positive and padding is not negative, and (conv) groups
/// or (pooling: no dilation, a positive kernel, padding at most half of it) fit; else why not.
inline std::string window_attrs_error(const Attrs& a, bool pooling) {
  for (std::size_t d = 0; d < 2; ++d) {
    if (a.stride[d] < 1) return "stride " + pair_str(a.stride) + " must be positive";
    if (a.padding[d] < 0) return "padding " + pair_str(a.padding) + " must not be negative";
    if (a.dilation[d] < 1) return "dilation " + pair_str(a.dilation) + " must be positive";
  }
  if (!pooling) {
    if (a.groups < 1) return "groups " + std::to_string(a.groups) + " must be positive";
    return {};
  }
  if (a.dilation[0] != 1 || a.dilation[1] != 1) return "pooling has no dilation";
  for (std::size_t d = 0; d < 2; ++d) {
    if (a.kernel[d] < 1) return "kernel " + pair_str(a.kernel) + " must be positive";
    if (a.padding[d] > a.kernel[d] / 2)
      return "padding " + pair_str(a.padding) + " must be at most half the kernel " +
             pair_str(a.kernel);
  }
  return {};
}

/// "" and the pooled shape of x [N, C, H, W] under a's kernel, stride and padding in
/// *pooled, or why there is none. Dynamic dims (-1) of x stay dynamic.
inline std::string pooled_shape(const Attrs& a, const Shape& x, Shape* pooled) {
  if (x.rank() != 4) return "x must be 4-D (NCHW), got " + x.str();
  if (auto e = window_attrs_error(a, /*pooling=*/true); !e.empty()) return e;
  std::int64_t out[2];
  for (std::size_t d = 0; d < 2; ++d) {
    if (x[2 + d] < 0) {
      out[d] = -1;
      continue;
    }
    out[d] = window_out_size(x[2 + d], a.kernel[d], a.stride[d], a.padding[d], 1);
    if (out[d] < 1)
      return "the window " + pair_str(a.kernel) + " does not fit the padded input " + x.str();
  }
  *pooled = Shape{x[0], x[1], out[0], out[1]};
  return {};
}

/// conv2d's output shape [N, O, Ho, Wo] for x [N, C, H, W] and w [O, C/groups, kh, kw];
/// -1 for a spatial size the kernel does not fit.
inline Shape conv2d_shape(const Attrs& a, const Shape& x, const Shape& w) {
  return Shape{x[0], w[0], window_out_size(x[2], w[2], a.stride[0], a.padding[0], a.dilation[0]),
               window_out_size(x[3], w[3], a.stride[1], a.padding[1], a.dilation[1])};
}

/// The pooling of a conv2d node's fused relu_max_pool epilogue: windows of a.kernel at a
/// stride of the window, no padding.
inline Attrs fused_pool_attrs(const Attrs& a) {
  Attrs p;
  p.kernel = a.kernel;
  p.stride = a.kernel;
  return p;
}

/// One pooling window: the rows [h0, h1) and columns [w0, w1) it covers inside the input,
/// and the avg_pool2d divisor (kh*kw with include_pad, else the count of real cells).
struct PoolWindow {
  std::int64_t h0, h1, w0, w1;
  std::int64_t divisor;
};

/// The window of output cell (i, j) over an input of height h and width w.
inline PoolWindow pool_window(const Attrs& a, std::int64_t h, std::int64_t w, std::int64_t i,
                              std::int64_t j) {
  const std::int64_t hs = i * a.stride[0] - a.padding[0];
  const std::int64_t ws = j * a.stride[1] - a.padding[1];
  PoolWindow win{};
  win.h0 = std::max<std::int64_t>(hs, 0);
  win.h1 = std::min(hs + a.kernel[0], h);
  win.w0 = std::max<std::int64_t>(ws, 0);
  win.w1 = std::min(ws + a.kernel[1], w);
  win.divisor = a.include_pad ? a.kernel[0] * a.kernel[1] : (win.h1 - win.h0) * (win.w1 - win.w0);
  return win;
}

/// Sizes of one convolution (or pooling, with kernel = the window and groups 1): an
/// "image" [N, in_c, in_h, in_w] and its "column" side [N, out_c, out_h, out_w], where
/// out = window_out_size(in, k, stride, pad, dilation). conv2d runs image -> column,
/// conv_transpose2d column -> image, conv2d_backward_weights and the pooling backward
/// kernels read both.
struct ConvGeometry {
  std::int64_t batch = 0, in_c = 0, in_h = 0, in_w = 0;
  std::int64_t out_c = 0, out_h = 0, out_w = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  std::int64_t groups = 1;

  std::int64_t in_cg() const { return in_c / groups; }
  std::int64_t out_cg() const { return out_c / groups; }
  std::int64_t in_plane() const { return in_h * in_w; }
  std::int64_t out_plane() const { return out_h * out_w; }
  std::int64_t col_rows() const { return in_cg() * kh * kw; }
  std::int64_t col_size() const { return col_rows() * out_plane(); }
  /// 1x1, stride 1, no padding: the image already is the column matrix.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

/// The geometry of image [N, C, H, W] and column [N, O, Ho, Wo] under a's stride, padding,
/// dilation and groups with a kh x kw kernel (unchecked: see conv_geometry_error).
inline ConvGeometry conv_geometry(const Attrs& a, const Shape& image, const Shape& column,
                                  std::int64_t kh, std::int64_t kw) {
  ConvGeometry g;
  if (image.rank() == 4) {
    g.batch = image[0];
    g.in_c = image[1];
    g.in_h = image[2];
    g.in_w = image[3];
  }
  if (column.rank() == 4) {
    g.out_c = column[1];
    g.out_h = column[2];
    g.out_w = column[3];
  }
  g.kh = kh;
  g.kw = kw;
  g.sh = a.stride[0];
  g.sw = a.stride[1];
  g.ph = a.padding[0];
  g.pw = a.padding[1];
  g.dh = a.dilation[0];
  g.dw = a.dilation[1];
  g.groups = a.groups;
  return g;
}

/// "" when image and column are 4-D with the same batch, channels divide into the groups
/// and the column's size is the image's under the window (with overflow checks); else why
/// not.
inline std::string conv_geometry_error(const Attrs& a, const Shape& image, const Shape& column,
                                       std::int64_t kh, std::int64_t kw) {
  if (image.rank() != 4 || column.rank() != 4)
    return "convolution tensors must be 4-D (NCHW), got " + image.str() + " and " + column.str();
  if (auto e = window_attrs_error(a, /*pooling=*/false); !e.empty()) return e;
  if (kh < 1 || kw < 1) return "the kernel must be positive";
  if (image[0] != column[0])
    return "batch sizes of " + image.str() + " and " + column.str() + " differ";
  if (image[1] % a.groups != 0 || column[1] % a.groups != 0)
    return "channels of " + image.str() + " and " + column.str() + " do not divide into " +
           std::to_string(a.groups) + " groups";
  const std::int64_t k[2] = {kh, kw};
  for (std::size_t d = 0; d < 2; ++d) {
    const std::int64_t out =
        window_out_size(image[2 + d], k[d], a.stride[d], a.padding[d], a.dilation[d]);
    if (out < 1 || out != column[2 + d])
      return "output size " + column.str() + " does not match the window over " + image.str();
  }
  return {};
}

/// The same for conv_transpose2d from x [N, Ci, H, W] to out [N, Co, Ho, Wo], where
/// out = transposed_out_size(in, k, stride, pad, dilation, output_padding).
inline std::string conv_transpose_geometry_error(const Attrs& a, const Shape& x, const Shape& out,
                                                 std::int64_t kh, std::int64_t kw) {
  if (x.rank() != 4 || out.rank() != 4)
    return "convolution tensors must be 4-D (NCHW), got " + x.str() + " and " + out.str();
  if (auto e = window_attrs_error(a, /*pooling=*/false); !e.empty()) return e;
  if (x[0] != out[0]) return "batch sizes of " + x.str() + " and " + out.str() + " differ";
  if (x[1] % a.groups != 0 || out[1] % a.groups != 0)
    return "channels of " + x.str() + " and " + out.str() + " do not divide into " +
           std::to_string(a.groups) + " groups";
  const std::int64_t k[2] = {kh, kw};
  for (std::size_t d = 0; d < 2; ++d) {
    const std::int64_t size = transposed_out_size(x[2 + d], k[d], a.stride[d], a.padding[d],
                                                  a.dilation[d], a.output_padding[d]);
    if (size < 1 || size != out[2 + d])
      return "output size " + out.str() + " does not match the transposed window over " + x.str();
  }
  return {};
}

}  // namespace kiln::internal
