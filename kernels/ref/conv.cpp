// Reference conv2d and conv_transpose2d (NCHW): direct loops with double accumulation.
//
// conv2d: x [N, C, H, W], w [O, C/g, kh, kw], optional bias [O] -> [N, O, Ho, Wo],
//   out[n, o, i, j] = bias[o] + sum over c in o's group, a, b of
//                     x[n, c, i*sh - ph + a*dh, j*sw - pw + b*dw] * w[o, c - group start, a, b]
//   (reads outside x are zero), then post_op.
// conv_transpose2d: x [N, Ci, H, W], w [Ci, Co/g, kh, kw], optional bias [Co] -> [N, Co, Ho, Wo],
//   the adjoint of conv2d with the same w: every x[n, ci, h, v] * w[ci, co, a, b] is added to
//   out[n, co + group start, h*sh - ph + a*dh, v*sw - pw + b*dw] when that is inside the output;
//   then bias and post_op.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

/// An optional bias [channels].
std::string need_bias(Descs in, std::int64_t channels) {
  if (in.size() < 3) return {};
  const Shape& b = in[2].shape;
  if (b.rank() == 1 && b[0] == channels) return {};
  return "bias must be [" + std::to_string(channels) + "], got " + b.str();
}

std::string check_conv2d(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 3); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (auto e = need_nchw(in[0].shape, "x"); !e.empty()) return e;
  if (auto e = need_nchw(in[1].shape, "w"); !e.empty()) return e;
  const Attrs& a = node.attrs;
  if (auto e = window_attrs_error(a, /*pooling=*/false); !e.empty()) return e;
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (x[1] % a.groups != 0 || w[0] % a.groups != 0 || w[1] * a.groups != x[1])
    return "x " + x.str() + " and w " + w.str() + " do not fit " + std::to_string(a.groups) +
           " groups (w must be [O, C/groups, kh, kw] with O and C divisible by groups)";
  if (auto e = need_bias(in, w[0]); !e.empty()) return e;
  const std::int64_t ho = window_out_size(x[2], w[2], a.stride[0], a.padding[0], a.dilation[0]);
  const std::int64_t wo = window_out_size(x[3], w[3], a.stride[1], a.padding[1], a.dilation[1]);
  if (ho < 1 || wo < 1) return "kernel " + w.str() + " does not fit the padded input " + x.str();
  if (a.post_op != PostOp::relu_max_pool) return need_out_shape(out, Shape{x[0], w[0], ho, wo});
  Shape pooled;
  if (auto e = pooled_shape(fused_pool_attrs(a), Shape{x[0], w[0], ho, wo}, &pooled); !e.empty())
    return e;
  return need_out_shape(out, pooled);
}

std::string check_conv_transpose2d(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 3); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (auto e = need_nchw(in[0].shape, "x"); !e.empty()) return e;
  if (auto e = need_nchw(in[1].shape, "w"); !e.empty()) return e;
  const Attrs& a = node.attrs;
  if (auto e = window_attrs_error(a, /*pooling=*/false); !e.empty()) return e;
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (w[0] != x[1] || x[1] % a.groups != 0)
    return "w " + w.str() + " must be [Ci, Co/groups, kh, kw] for x " + x.str() + " and " +
           std::to_string(a.groups) + " groups";
  const std::int64_t co = w[1] * a.groups;
  if (auto e = need_bias(in, co); !e.empty()) return e;
  std::int64_t size[2];
  for (std::size_t d = 0; d < 2; ++d) {
    const std::int64_t op = a.output_padding[d];
    if (op < 0 || (op >= a.stride[d] && op >= a.dilation[d]))
      return "output_padding " + pair_str(a.output_padding) +
             " must be smaller than the stride or the dilation";
    size[d] = transposed_out_size(x[2 + d], w[2 + d], a.stride[d], a.padding[d], a.dilation[d], op);
    if (size[d] < 1)
      return "the output of x " + x.str() + " and w " + w.str() + " is empty (or overflows)";
  }
  return need_out_shape(out, Shape{x[0], co, size[0], size[1]});
}

/// Adds the bias (if any), applies the post-op and rounds to T.
template <class T>
void finish(const KernelArgs& args, const std::vector<double>& acc, std::int64_t channels,
            std::int64_t plane) {
  const T* bias = args.inputs.size() > 2 ? args.inputs[2].data<T>() : nullptr;
  const bool relu = args.node.attrs.post_op == PostOp::relu;
  T* out = args.output.data<T>();
  for (std::int64_t i = 0; i < args.output.numel(); ++i) {
    double v = acc[static_cast<std::size_t>(i)];
    if (bias != nullptr) v += static_cast<double>(bias[(i / plane) % channels]);
    if (relu && v < 0.0) v = 0.0;
    out[i] = static_cast<T>(v);
  }
}

template <class T>
void conv2d_typed(const KernelArgs& args) {
  const Attrs& a = args.node.attrs;
  const Shape& xs = args.inputs[0].shape();
  const Shape& ws = args.inputs[1].shape();
  const Shape& ys = args.output.shape();
  const std::int64_t n_batch = xs[0], c_in = xs[1], h = xs[2], w = xs[3];
  const std::int64_t c_out = ws[0], cg = ws[1], kh = ws[2], kw = ws[3];
  const std::int64_t ho = ys[2], wo = ys[3];
  const std::int64_t og = c_out / a.groups;
  const T* x = args.inputs[0].data<T>();
  const T* wt = args.inputs[1].data<T>();
  std::vector<double> acc(static_cast<std::size_t>(args.output.numel()), 0.0);
  for (std::int64_t n = 0; n < n_batch; ++n)
    for (std::int64_t o = 0; o < c_out; ++o) {
      const std::int64_t c0 = (o / og) * cg;  // first input channel of o's group
      for (std::int64_t i = 0; i < ho; ++i)
        for (std::int64_t j = 0; j < wo; ++j) {
          double sum = 0.0;
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t p = 0; p < kh; ++p) {
              const std::int64_t r = i * a.stride[0] - a.padding[0] + p * a.dilation[0];
              if (r < 0 || r >= h) continue;
              for (std::int64_t q = 0; q < kw; ++q) {
                const std::int64_t s = j * a.stride[1] - a.padding[1] + q * a.dilation[1];
                if (s < 0 || s >= w) continue;
                sum += static_cast<double>(x[((n * c_in + c0 + c) * h + r) * w + s]) *
                       static_cast<double>(wt[((o * cg + c) * kh + p) * kw + q]);
              }
            }
          acc[static_cast<std::size_t>(((n * c_out + o) * ho + i) * wo + j)] = sum;
        }
    }
  finish<T>(args, acc, c_out, ho * wo);
}

template <class T>
void conv_transpose2d_typed(const KernelArgs& args) {
  const Attrs& a = args.node.attrs;
  const Shape& xs = args.inputs[0].shape();
  const Shape& ws = args.inputs[1].shape();
  const Shape& ys = args.output.shape();
  const std::int64_t n_batch = xs[0], c_in = xs[1], h = xs[2], w = xs[3];
  const std::int64_t cog = ws[1], kh = ws[2], kw = ws[3];
  const std::int64_t c_out = ys[1], ho = ys[2], wo = ys[3];
  const std::int64_t cig = c_in / a.groups;
  const T* x = args.inputs[0].data<T>();
  const T* wt = args.inputs[1].data<T>();
  std::vector<double> acc(static_cast<std::size_t>(args.output.numel()), 0.0);
  for (std::int64_t n = 0; n < n_batch; ++n)
    for (std::int64_t ci = 0; ci < c_in; ++ci) {
      const std::int64_t co0 = (ci / cig) * cog;  // first output channel of ci's group
      for (std::int64_t r = 0; r < h; ++r)
        for (std::int64_t s = 0; s < w; ++s) {
          const double xv = static_cast<double>(x[((n * c_in + ci) * h + r) * w + s]);
          for (std::int64_t co = 0; co < cog; ++co)
            for (std::int64_t p = 0; p < kh; ++p) {
              const std::int64_t i = r * a.stride[0] - a.padding[0] + p * a.dilation[0];
              if (i < 0 || i >= ho) continue;
              for (std::int64_t q = 0; q < kw; ++q) {
                const std::int64_t j = s * a.stride[1] - a.padding[1] + q * a.dilation[1];
                if (j < 0 || j >= wo) continue;
                acc[static_cast<std::size_t>(((n * c_out + co0 + co) * ho + i) * wo + j)] +=
                    xv * static_cast<double>(wt[((ci * cog + co) * kh + p) * kw + q]);
              }
            }
        }
    }
  finish<T>(args, acc, c_out, ho * wo);
}

void run_conv2d(const KernelArgs& args) {
  require(check_conv2d, args);
  // The fused pooling of a plan's conv2d (PostOp::relu_max_pool) runs as its own kernel.
  if (args.node.attrs.post_op == PostOp::relu_max_pool)
    return run_conv_relu_max_pool_unfused(args, run_conv2d);
  with_float(args.output.dtype(), [&](auto tag) { conv2d_typed<decltype(tag)>(args); });
}

void run_conv_transpose2d(const KernelArgs& args) {
  require(check_conv_transpose2d, args);
  with_float(args.output.dtype(), [&](auto tag) { conv_transpose2d_typed<decltype(tag)>(args); });
}

}  // namespace

void add_conv_kernels(KernelTable& t) {
  t.add<Op::conv2d>({"reference", "ref_conv2d", supports_check<check_conv2d>, run_conv2d});
  t.add<Op::conv_transpose2d>({"reference", "ref_conv_transpose2d",
                               supports_check<check_conv_transpose2d>, run_conv_transpose2d});
}

}  // namespace kiln::internal::ref
