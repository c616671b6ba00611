// Reference backward kernels of the CNN ops (training only; built into kiln and registered by
// register_reference_training_kernels). Sums accumulate in double.
//
// conv2d_backward_weights: x [N, C, H, W], gy [N, O, Ho, Wo] -> gw [O, C/g, kh, kw],
//   gw[o, c, a, b] = sum over n, i, j of gy[n, o, i, j] * x[n, c + group start, i*sh - ph + a*dh,
//   j*sw - pw + b*dw] (reads outside x are zero).
// max_pool2d_backward: x, gy -> x's shape; gy[n, c, i, j] goes to the first maximum of window
//   (i, j) in row-major scan order (padding never wins; see window_argmax). With post_op
//   relu (the fusion pass folds relu_backward(x, gx) in), gx is then multiplied by x > 0.
// avg_pool2d_backward: x (shape only), gy -> x's shape; gy[n, c, i, j] / divisor goes to every
//   real cell of window (i, j) (divisor kh*kw if include_pad, else the real cells' count).
// batch_norm_backward: x, gamma, gy -> gx = gamma/sqrt(v+eps) * (gy - mean(gy) -
//   xhat*mean(gy*xhat)), xhat = (x-m)/sqrt(v+eps), m and v the batch mean and biased
//   variance per channel; the means run over N (and H, W).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

// ---- conv2d_backward_weights ----------------------------------------------------------

std::string check_conv2d_backward_weights(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (auto e = need_nchw(in[0].shape, "x"); !e.empty()) return e;
  if (auto e = need_nchw(in[1].shape, "gy"); !e.empty()) return e;
  const Attrs& a = node.attrs;
  if (auto e = window_attrs_error(a, /*pooling=*/false); !e.empty()) return e;
  if (a.kernel[0] < 1 || a.kernel[1] < 1)
    return "kernel " + pair_str(a.kernel) + " must be positive";
  const Shape& x = in[0].shape;
  const Shape& gy = in[1].shape;
  if (x[0] != gy[0]) return "x " + x.str() + " and gy " + gy.str() + " differ in batch";
  if (x[1] % a.groups != 0 || gy[1] % a.groups != 0)
    return "channels of x " + x.str() + " and gy " + gy.str() + " do not divide into " +
           std::to_string(a.groups) + " groups";
  for (std::size_t d = 0; d < 2; ++d)
    if (window_out_size(x[2 + d], a.kernel[d], a.stride[d], a.padding[d], a.dilation[d]) !=
        gy[2 + d])
      return "gy " + gy.str() + " is not the size of the convolution of x " + x.str() +
             " with kernel " + pair_str(a.kernel);
  return need_out_shape(out, Shape{gy[1], x[1] / a.groups, a.kernel[0], a.kernel[1]});
}

template <class T>
void conv2d_backward_weights_typed(const KernelArgs& args) {
  const Attrs& a = args.node.attrs;
  const Shape& xs = args.inputs[0].shape();
  const Shape& gs = args.inputs[1].shape();
  const std::int64_t n_batch = xs[0], c_in = xs[1], h = xs[2], w = xs[3];
  const std::int64_t c_out = gs[1], ho = gs[2], wo = gs[3];
  const std::int64_t cg = c_in / a.groups, og = c_out / a.groups;
  const std::int64_t kh = a.kernel[0], kw = a.kernel[1];
  const T* x = args.inputs[0].data<T>();
  const T* gy = args.inputs[1].data<T>();
  T* gw = args.output.data<T>();
  for (std::int64_t o = 0; o < c_out; ++o) {
    const std::int64_t c0 = (o / og) * cg;  // first input channel of o's group
    for (std::int64_t c = 0; c < cg; ++c)
      for (std::int64_t p = 0; p < kh; ++p)
        for (std::int64_t q = 0; q < kw; ++q) {
          double sum = 0.0;
          for (std::int64_t n = 0; n < n_batch; ++n)
            for (std::int64_t i = 0; i < ho; ++i) {
              const std::int64_t r = i * a.stride[0] - a.padding[0] + p * a.dilation[0];
              if (r < 0 || r >= h) continue;
              for (std::int64_t j = 0; j < wo; ++j) {
                const std::int64_t s = j * a.stride[1] - a.padding[1] + q * a.dilation[1];
                if (s < 0 || s >= w) continue;
                sum += static_cast<double>(gy[((n * c_out + o) * ho + i) * wo + j]) *
                       static_cast<double>(x[((n * c_in + c0 + c) * h + r) * w + s]);
              }
            }
          gw[((o * cg + c) * kh + p) * kw + q] = static_cast<T>(sum);
        }
  }
}

void run_conv2d_backward_weights(const KernelArgs& args) {
  require(check_conv2d_backward_weights, args);
  with_float(args.output.dtype(),
             [&](auto tag) { conv2d_backward_weights_typed<decltype(tag)>(args); });
}

// ---- pooling backward -----------------------------------------------------------------

std::string check_pool2d_backward(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  const PostOp post = node.attrs.post_op;
  if (post != PostOp::none && (post != PostOp::relu || node.op != Op::max_pool2d_backward))
    return "max_pool2d_backward's only epilogue is the ReLU's gradient";
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  Shape pooled;
  if (auto e = pooled_shape(node.attrs, in[0].shape, &pooled); !e.empty()) return e;
  if (in[1].shape != pooled)
    return "gy " + in[1].shape.str() + " must have the pooled shape " + pooled.str();
  return need_out_shape(out, in[0].shape);
}

template <class T, bool Max>
void pool2d_backward_typed(const KernelArgs& args) {
  const Attrs& a = args.node.attrs;
  const Shape& xs = args.inputs[0].shape();
  const std::int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3];
  const std::int64_t ho = args.inputs[1].dim(2), wo = args.inputs[1].dim(3);
  const T* x = args.inputs[0].data<T>();
  const T* gy = args.inputs[1].data<T>();
  std::vector<double> acc(static_cast<std::size_t>(args.output.numel()), 0.0);
  for (std::int64_t pl = 0; pl < planes; ++pl) {
    double* gx_plane = acc.data() + pl * h * w;
    for (std::int64_t i = 0; i < ho; ++i)
      for (std::int64_t j = 0; j < wo; ++j) {
        const PoolWindow win = pool_window(a, h, w, i, j);
        const double g = static_cast<double>(gy[(pl * ho + i) * wo + j]);
        if constexpr (Max) {
          gx_plane[window_argmax(x + pl * h * w, w, win)] += g;
        } else {
          const double share = g / static_cast<double>(win.divisor);
          for (std::int64_t r = win.h0; r < win.h1; ++r)
            for (std::int64_t c = win.w0; c < win.w1; ++c) gx_plane[r * w + c] += share;
        }
      }
  }
  T* gx = args.output.data<T>();
  for (std::int64_t k = 0; k < args.output.numel(); ++k)
    gx[k] = static_cast<T>(acc[static_cast<std::size_t>(k)]);
  if (a.post_op == PostOp::relu)  // as relu_backward(x, gx) computes it
    for (std::int64_t k = 0; k < args.output.numel(); ++k)
      gx[k] = gx[k] * (x[k] > T(0) ? T(1) : T(0));
}

void run_max_pool2d_backward(const KernelArgs& args) {
  require(check_pool2d_backward, args);
  with_float(args.output.dtype(),
             [&](auto tag) { pool2d_backward_typed<decltype(tag), true>(args); });
}

void run_avg_pool2d_backward(const KernelArgs& args) {
  require(check_pool2d_backward, args);
  with_float(args.output.dtype(),
             [&](auto tag) { pool2d_backward_typed<decltype(tag), false>(args); });
}

// ---- batch_norm_backward --------------------------------------------------------------

std::string check_batch_norm_backward(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 3, 3); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (x.rank() != 2 && x.rank() != 4) return "x must be [N, C] or [N, C, H, W], got " + x.str();
  if (in[1].shape != Shape{x[1]})
    return "gamma must be [" + std::to_string(x[1]) + "], got " + in[1].shape.str();
  if (in[2].shape != x) return "gy " + in[2].shape.str() + " must have x's shape " + x.str();
  if (!(node.attrs.eps > 0.0f)) return "eps " + std::to_string(node.attrs.eps) + " is not positive";
  return need_out_shape(out, x);
}

template <class T>
void batch_norm_backward_typed(const KernelArgs& args) {
  const ChannelSplit d = channel_split(args.inputs[0].shape());
  const T* x = args.inputs[0].data<T>();
  const T* gamma = args.inputs[1].data<T>();
  const T* gy = args.inputs[2].data<T>();
  T* gx = args.output.data<T>();
  const double eps = static_cast<double>(args.node.attrs.eps);
  const double count = static_cast<double>(d.count());
  std::vector<double> mean, var;
  channel_stats(x, d, mean, var);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    const double m = mean[static_cast<std::size_t>(ch)];
    const double inv_std = 1.0 / std::sqrt(var[static_cast<std::size_t>(ch)] + eps);
    auto at = [&](std::int64_t n, std::int64_t k) { return (n * d.c + ch) * d.s + k; };
    double sum_gy = 0.0, sum_gy_xhat = 0.0;
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t k = 0; k < d.s; ++k) {
        const double g = static_cast<double>(gy[at(n, k)]);
        sum_gy += g;
        sum_gy_xhat += g * (static_cast<double>(x[at(n, k)]) - m) * inv_std;
      }
    const double mean_gy = sum_gy / count;
    const double mean_gy_xhat = sum_gy_xhat / count;
    const double scale = static_cast<double>(gamma[ch]) * inv_std;
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t k = 0; k < d.s; ++k) {
        const double xhat = (static_cast<double>(x[at(n, k)]) - m) * inv_std;
        gx[at(n, k)] = static_cast<T>(
            scale * (static_cast<double>(gy[at(n, k)]) - mean_gy - xhat * mean_gy_xhat));
      }
  }
}

void run_batch_norm_backward(const KernelArgs& args) {
  require(check_batch_norm_backward, args);
  with_float(args.output.dtype(),
             [&](auto tag) { batch_norm_backward_typed<decltype(tag)>(args); });
}

}  // namespace

void add_cnn_training_kernels(KernelTable& t) {
  t.add<Op::conv2d_backward_weights>({"reference", "ref_conv2d_backward_weights",
                                      supports_check<check_conv2d_backward_weights>,
                                      run_conv2d_backward_weights});
  t.add<Op::max_pool2d_backward>({"reference", "ref_max_pool2d_backward",
                                  supports_check<check_pool2d_backward>, run_max_pool2d_backward});
  t.add<Op::avg_pool2d_backward>({"reference", "ref_avg_pool2d_backward",
                                  supports_check<check_pool2d_backward>, run_avg_pool2d_backward});
  t.add<Op::batch_norm_backward>({"reference", "ref_batch_norm_backward",
                                  supports_check<check_batch_norm_backward>,
                                  run_batch_norm_backward});
}

}  // namespace kiln::internal::ref
