// Backward rules of every differentiable op, composed of forward ops. Broadcasting is
// done by the builders, so only expand's rule sums back to an input's shape.
#include <array>
#include <numeric>

#include "autodiff/grad_rules.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"

namespace kiln::internal {
namespace {

using Grads = std::vector<Value>;

// gy of a reduction, reshaped so the reduced axes are kept as size 1.
Value keep_reduced_dims(const GradContext& c, Value g) {
  if (c.node.attrs.keepdims) return g;
  const Shape& xs = c.inputs[0].shape();
  std::vector<std::int64_t> dims = xs.dims();
  for (auto a : c.node.attrs.axes) dims[static_cast<std::size_t>(a)] = 1;
  return reshape(g, Shape(dims));
}

// A scalar gradient spread over `like`'s shape, divided by its element count.
Value spread_mean(Value g, Value like) {
  std::vector<std::int64_t> ones(like.shape().rank(), 1);
  return expand(reshape(g, Shape(ones)), like.shape(), like, /*mean=*/true);
}

void require_unfused(const GradContext& c) {
  if (c.node.attrs.post_op != PostOp::none || (c.node.op == Op::matmul && c.inputs.size() > 2))
    throw ValueError("grad: node '" + c.node.name +
                     "' has a fused epilogue; differentiate the unfused graph");
}

Grads g_matmul(const GradContext& c) {
  require_unfused(c);
  const Value a = c.inputs[0], b = c.inputs[1];
  const bool ta = c.node.attrs.transpose_a, tb = c.node.attrs.transpose_b;
  const bool b_shared = b.shape().rank() == 2 && a.shape().rank() > 2;
  Value ga = matmul(c.gy, b, {.transpose_a = false, .transpose_b = !tb});
  if (ta) ga = transpose(ga);
  if (b_shared && !ta) {
    // A 2-D b shared by every matrix of a ([..., M, K], e.g. a dense layer over [B, T, F]):
    // its gradient is one product over all rows, a^T gy with a as [rows, K] and gy as
    // [rows, N], not a product per matrix and a sum over them (16 [K, N] products and a
    // 16x larger intermediate for a [16, 128, F] input).
    const std::int64_t k = a.shape()[a.shape().rank() - 1];
    const std::int64_t n = c.gy.shape()[c.gy.shape().rank() - 1];
    const Value a_rows = reshape(a, Shape{-1, k}), gy_rows = reshape(c.gy, Shape{-1, n});
    return {ga, tb ? matmul(gy_rows, a_rows, {.transpose_a = true})
                   : matmul(a_rows, gy_rows, {.transpose_a = true})};
  }
  Value gb = tb ? matmul(c.gy, a, {.transpose_a = true, .transpose_b = ta})
                : matmul(a, c.gy, {.transpose_a = !ta, .transpose_b = false});
  if (b_shared) {
    std::vector<std::int64_t> batch_axes(a.shape().rank() - 2);
    std::iota(batch_axes.begin(), batch_axes.end(), 0);
    gb = sum(gb, batch_axes);
  }
  return {ga, gb};
}

Grads g_add(const GradContext& c) { return {c.gy, c.gy}; }
Grads g_sub(const GradContext& c) { return {c.gy, neg(c.gy)}; }
Grads g_mul(const GradContext& c) { return {mul(c.gy, c.inputs[1]), mul(c.gy, c.inputs[0])}; }
Grads g_div(const GradContext& c) {
  return {div(c.gy, c.inputs[1]), neg(mul(c.gy, div(c.y, c.inputs[1])))};
}
Grads g_neg(const GradContext& c) { return {neg(c.gy)}; }
Grads g_exp(const GradContext& c) { return {mul(c.gy, c.y)}; }
Grads g_log(const GradContext& c) { return {div(c.gy, c.inputs[0])}; }
Grads g_sqrt(const GradContext& c) { return {div(mul(c.gy, 0.5), c.y)}; }
// relu and leaky_relu (alpha >= 0) read their output, not their input: y > 0 exactly where
// x > 0, and the pre-activation need not be kept (so the fusion pass may fold the
// activation into the producer's epilogue, in training too).
Grads g_relu(const GradContext& c) { return {relu_backward(c.y, c.gy)}; }
Grads g_leaky_relu(const GradContext& c) {
  const double alpha = c.node.attrs.alpha;
  const Value positive = step(alpha >= 0.0 ? c.y : c.inputs[0]);
  return {mul(c.gy, add(mul(positive, 1.0 - alpha), alpha))};
}
Grads g_sigmoid(const GradContext& c) { return {mul(mul(c.gy, c.y), sub(1.0, c.y))}; }
Grads g_tanh(const GradContext& c) { return {mul(c.gy, sub(1.0, mul(c.y, c.y)))}; }

Grads g_softmax(const GradContext& c) { return {softmax_backward(c.y, c.gy, c.node.attrs.axis)}; }
Grads g_log_softmax(const GradContext& c) {
  const Value s = sum(c.gy, {c.node.attrs.axis}, true);
  return {sub(c.gy, mul(exp(c.y), s))};
}

Grads g_sum(const GradContext& c) {
  const Value x = c.inputs[0];
  return {expand(keep_reduced_dims(c, c.gy), x.shape(), x)};
}
Grads g_mean(const GradContext& c) {
  const Value x = c.inputs[0];
  return {expand(keep_reduced_dims(c, c.gy), x.shape(), x, /*mean=*/true)};
}
Grads g_max(const GradContext& c) {
  // Ties share the gradient equally (like torch.amax).
  const Value x = c.inputs[0];
  const Value mask = equal(x, keep_reduced_dims(c, c.y));
  const Value count = sum(mask, c.node.attrs.axes, true);
  return {div(mul(mask, keep_reduced_dims(c, c.gy)), count)};
}

Grads g_expand(const GradContext& c) {
  const Shape& xs = c.inputs[0].shape();
  const Shape& ys = c.y.shape();
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < xs.rank(); ++i)
    if (xs[i] == 1 && ys[i] != 1) axes.push_back(static_cast<std::int64_t>(i));
  Grads out(c.inputs.size());
  if (axes.empty()) {
    out[0] = c.gy;
  } else {
    out[0] = c.node.attrs.mean ? mean(c.gy, axes, true) : sum(c.gy, axes, true);
  }
  return out;
}

Grads g_reshape(const GradContext& c) { return {reshape(c.gy, c.inputs[0].shape())}; }

Grads g_transpose(const GradContext& c) {
  const auto& perm = c.node.attrs.axes;
  std::vector<std::int64_t> inverse(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    inverse[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
  return {transpose(c.gy, inverse)};
}

std::int64_t static_dim(const GradContext& c, Value v, std::int64_t axis) {
  const auto d = v.shape()[static_cast<std::size_t>(axis)];
  if (d < 0)
    throw ValueError("grad: op '" + std::string(op_name(c.node.op)) + "' (node '" + c.node.name +
                     "') works along the dynamic batch axis; its gradient needs a static size");
  return d;
}

Grads g_concat(const GradContext& c) {
  const auto axis = c.node.attrs.axis;
  Grads out;
  std::int64_t offset = 0;
  for (const Value& x : c.inputs) {
    const auto d = static_dim(c, x, axis);
    out.push_back(slice(c.gy, axis, offset, offset + d));
    offset += d;
  }
  return out;
}

Grads g_slice(const GradContext& c) {
  const auto& a = c.node.attrs;
  const auto d = static_dim(c, c.inputs[0], a.axis);
  return {pad(c.gy, a.axis, a.start, d - a.stop)};
}

Grads g_pad(const GradContext& c) {
  const auto& a = c.node.attrs;
  const auto d = static_dim(c, c.inputs[0], a.axis);
  return {slice(c.gy, a.axis, a.start, a.start + d)};
}

Grads g_gather(const GradContext& c) {
  const auto rows = static_dim(c, c.inputs[0], 0);
  return {scatter_add_rows(c.inputs[1], c.gy, rows), Value{}};
}

Grads g_scatter_add_rows(const GradContext& c) { return {Value{}, gather(c.gy, c.inputs[0])}; }

Grads g_softmax_cross_entropy(const GradContext& c) {
  const Value logits = c.inputs[0], labels = c.inputs[1];
  const auto classes = static_dim(c, logits, 1);
  // d/dlogits of mean_n CE = (softmax - onehot) * gy / N
  const Value per_row = expand(reshape(c.gy, Shape{1}), Shape{-1}, labels, /*mean=*/true);
  const Value diff = sub(softmax(logits, 1), one_hot(labels, classes, logits.dtype()));
  return {mul(diff, reshape(per_row, Shape{-1, 1})), Value{}};
}

Grads g_mse(const GradContext& c) {
  const Value a = c.inputs[0], b = c.inputs[1];
  const Value ga = mul(mul(sub(a, b), spread_mean(c.gy, a)), 2.0);
  return {ga, neg(ga)};
}

Grads g_bce_with_logits(const GradContext& c) {
  const Value x = c.inputs[0], t = c.inputs[1];
  const Value g = spread_mean(c.gy, x);
  return {mul(sub(sigmoid(x), t), g), neg(mul(x, g))};
}

Conv2dOptions conv_options(const Attrs& a) {
  Conv2dOptions o;
  o.stride = a.stride;
  o.padding = a.padding;
  o.dilation = a.dilation;
  o.groups = a.groups;
  return o;
}

Pool2dOptions pool_options(const Attrs& a) {
  Pool2dOptions o;
  o.kernel = a.kernel;
  o.stride = a.stride;
  o.padding = a.padding;
  o.include_pad = a.include_pad;
  return o;
}

// d/dbias of a per-output-channel bias in NCHW.
Value channel_sum(Value gy) { return sum(gy, {0, 2, 3}); }

Grads g_conv2d(const GradContext& c) {
  if (c.node.attrs.post_op != PostOp::none)
    throw ValueError("grad: node '" + c.node.name + "' has a fused epilogue");
  const Value x = c.inputs[0], w = c.inputs[1];
  const Attrs& a = c.node.attrs;
  ConvTranspose2dOptions t;
  static_cast<Conv2dOptions&>(t) = conv_options(a);
  // Rows/cols of x the strided windows did not reach come back as output padding.
  for (std::size_t d = 0; d < 2; ++d) {
    const auto in = static_dim(c, x, static_cast<std::int64_t>(2 + d));
    const auto out = c.y.shape()[2 + d];
    const auto k = w.shape()[2 + d];
    t.output_padding[d] =
        in - ((out - 1) * a.stride[d] - 2 * a.padding[d] + a.dilation[d] * (k - 1) + 1);
  }
  Grads g{conv_transpose2d(c.gy, w, {}, t),
          conv2d_backward_weights(x, c.gy, {w.shape()[2], w.shape()[3]}, conv_options(a))};
  if (c.inputs.size() == 3) g.push_back(channel_sum(c.gy));
  return g;
}

Grads g_conv_transpose2d(const GradContext& c) {
  if (c.node.attrs.post_op != PostOp::none)
    throw ValueError("grad: node '" + c.node.name + "' has a fused epilogue");
  const Value x = c.inputs[0], w = c.inputs[1];
  const Conv2dOptions o = conv_options(c.node.attrs);
  // The adjoint of a transposed convolution is the convolution with the same weights.
  Grads g{conv2d(c.gy, w, {}, o),
          conv2d_backward_weights(c.gy, x, {w.shape()[2], w.shape()[3]}, o)};
  if (c.inputs.size() == 3) g.push_back(channel_sum(c.gy));
  return g;
}

Grads g_max_pool2d(const GradContext& c) {
  return {max_pool2d_backward(c.inputs[0], c.gy, pool_options(c.node.attrs))};
}

Grads g_avg_pool2d(const GradContext& c) {
  return {avg_pool2d_backward(c.inputs[0], c.gy, pool_options(c.node.attrs))};
}

Grads g_batch_norm(const GradContext& c) {
  // Training mode: batch statistics. gamma and beta get sums over N (and H, W) written
  // with forward ops; x gets the explicit backward primitive.
  const Value x = c.inputs[0], gamma = c.inputs[1];
  const std::vector<std::int64_t> axes =
      x.shape().rank() == 4 ? std::vector<std::int64_t>{0, 2, 3} : std::vector<std::int64_t>{0};
  const Value centred = sub(x, mean(x, axes, true));
  const Value var = mean(mul(centred, centred), axes, true);
  const Value xhat = div(centred, sqrt(add(var, c.node.attrs.eps)));
  return {batch_norm_backward(x, gamma, c.gy, c.node.attrs.eps), sum(mul(c.gy, xhat), axes),
          sum(c.gy, axes), Value{}, Value{}};
}

Grads g_upsample_nearest2d(const GradContext& c) {
  const Pair s = c.node.attrs.stride;
  Pool2dOptions o;
  o.kernel = s;
  o.stride = s;
  return {mul(avg_pool2d(c.gy, o), static_cast<double>(s[0] * s[1]))};
}

constexpr std::array<GradRule, op_count> kRules = [] {
  std::array<GradRule, op_count> r{};
  auto set = [&](Op op, GradRule f) { r[static_cast<std::size_t>(op)] = f; };
  set(Op::matmul, g_matmul);
  set(Op::add, g_add);
  set(Op::sub, g_sub);
  set(Op::mul, g_mul);
  set(Op::div, g_div);
  set(Op::neg, g_neg);
  set(Op::exp, g_exp);
  set(Op::log, g_log);
  set(Op::sqrt, g_sqrt);
  set(Op::relu, g_relu);
  set(Op::leaky_relu, g_leaky_relu);
  set(Op::sigmoid, g_sigmoid);
  set(Op::tanh, g_tanh);
  set(Op::softmax, g_softmax);
  set(Op::log_softmax, g_log_softmax);
  set(Op::sum, g_sum);
  set(Op::mean, g_mean);
  set(Op::max, g_max);
  set(Op::expand, g_expand);
  set(Op::reshape, g_reshape);
  set(Op::transpose, g_transpose);
  set(Op::concat, g_concat);
  set(Op::slice, g_slice);
  set(Op::pad, g_pad);
  set(Op::gather, g_gather);
  set(Op::scatter_add_rows, g_scatter_add_rows);
  set(Op::softmax_cross_entropy, g_softmax_cross_entropy);
  set(Op::mse, g_mse);
  set(Op::bce_with_logits, g_bce_with_logits);
  set(Op::conv2d, g_conv2d);
  set(Op::conv_transpose2d, g_conv_transpose2d);
  set(Op::max_pool2d, g_max_pool2d);
  set(Op::avg_pool2d, g_avg_pool2d);
  set(Op::batch_norm, g_batch_norm);
  set(Op::upsample_nearest2d, g_upsample_nearest2d);
  set(Op::lstm, g_lstm);
  set(Op::gru, g_gru);
  set(Op::attention, g_attention);
  set(Op::gelu, g_gelu);
  set(Op::layer_norm, g_layer_norm);
  return r;
}();

}  // namespace

GradRule grad_rule(Op op) { return kRules[static_cast<std::size_t>(op)]; }

}  // namespace kiln::internal
