// Convolution, pooling, batch norm and upsampling (NCHW): shape rules and builders.
#include <string>

#include "internal/conv_geometry.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {
namespace {

// Output size of a sliding window along one spatial dim (-1 stays dynamic), by the shared
// geometry (internal/conv_geometry.hpp).
std::int64_t window_out(const RuleContext& c, std::int64_t in, std::int64_t k, std::size_t d) {
  if (in < 0) return -1;
  const auto& a = c.attrs;
  const std::int64_t out = window_out_size(in, k, a.stride[d], a.padding[d], a.dilation[d]);
  if (out < 1)
    c.fail("kernel " + std::to_string(k) + " with dilation " + std::to_string(a.dilation[d]) +
           " does not fit the input of " + std::to_string(in) + " padded by " +
           std::to_string(a.padding[d]) + " along " + (d == 0 ? "height" : "width"));
  return out;
}

void check_window_attrs(const RuleContext& c, bool pooling) {
  if (auto e = window_attrs_error(c.attrs, pooling); !e.empty()) c.fail(e);
}

void require_nchw(const RuleContext& c, std::size_t i, const char* what) {
  if (c.inputs[i].shape.rank() != 4) c.fail(std::string(what) + " must be 4-D (NCHW)");
}

void check_bias(const RuleContext& c, std::int64_t channels) {
  if (c.inputs.size() < 3) return;
  const Shape& b = c.inputs[2].shape;
  if (b.rank() != 1 || !dims_match(b[0], channels))
    c.fail("bias must be [" + std::to_string(channels) + "]");
}

}  // namespace

TensorDesc rule_conv2d(const RuleContext& c) {
  if (c.inputs.size() < 2 || c.inputs.size() > 3) c.fail("expects x, w and an optional bias");
  require_same_dtype(c);
  require_float(c, 0);
  require_nchw(c, 0, "x");
  require_nchw(c, 1, "w");
  check_window_attrs(c, false);
  const Shape& x = c.inputs[0].shape;
  const Shape& w = c.inputs[1].shape;
  const auto g = c.attrs.groups;
  if (x[1] >= 0 && x[1] % g != 0) c.fail("input channels must divide into the groups");
  if (w[0] % g != 0) c.fail("output channels must divide into the groups");
  if (!dims_match(x[1], w[1] * g))
    c.fail("w expects " + std::to_string(w[1] * g) + " input channels (with " + std::to_string(g) +
           " groups)");
  check_bias(c, w[0]);
  const Shape y{x[0], w[0], window_out(c, x[2], w[2], 0), window_out(c, x[3], w[3], 1)};
  if (c.attrs.post_op != PostOp::relu_max_pool) return {y, c.inputs[0].dtype};
  // A plan's conv2d with the pooling that followed it fused in gives the pooled shape.
  Shape pooled;
  if (auto e = pooled_shape(fused_pool_attrs(c.attrs), y, &pooled); !e.empty()) c.fail(e);
  return {pooled, c.inputs[0].dtype};
}

TensorDesc rule_conv_transpose2d(const RuleContext& c) {
  if (c.inputs.size() < 2 || c.inputs.size() > 3) c.fail("expects x, w and an optional bias");
  require_same_dtype(c);
  require_float(c, 0);
  require_nchw(c, 0, "x");
  require_nchw(c, 1, "w");
  check_window_attrs(c, false);
  const auto& a = c.attrs;
  const Shape& x = c.inputs[0].shape;
  const Shape& w = c.inputs[1].shape;
  if (!dims_match(x[1], w[0])) c.fail("w's first dim must equal the input channels");
  if (w[0] % a.groups != 0) c.fail("input channels must divide into the groups");
  const std::int64_t out_c = w[1] * a.groups;
  check_bias(c, out_c);
  std::int64_t out[2];
  for (std::size_t d = 0; d < 2; ++d) {
    if (a.output_padding[d] < 0 ||
        (a.output_padding[d] >= a.stride[d] && a.output_padding[d] >= a.dilation[d]))
      c.fail("output_padding " + pair_str(a.output_padding) +
             " must be smaller than the stride or the dilation");
    const auto in = x[2 + d];
    out[d] = in < 0 ? -1
                    : transposed_out_size(in, w[2 + d], a.stride[d], a.padding[d], a.dilation[d],
                                          a.output_padding[d]);
    if (in >= 0 && out[d] < 1) c.fail("output would be empty (or its size overflows)");
  }
  return {Shape{x[0], out_c, out[0], out[1]}, c.inputs[0].dtype};
}

TensorDesc rule_conv2d_backward_weights(const RuleContext& c) {
  require_same_dtype(c);
  require_float(c, 0);
  require_nchw(c, 0, "x");
  require_nchw(c, 1, "gy");
  check_window_attrs(c, false);
  const auto& a = c.attrs;
  const Shape& x = c.inputs[0].shape;
  const Shape& gy = c.inputs[1].shape;
  if (a.kernel[0] < 1 || a.kernel[1] < 1) c.fail("kernel size must be positive");
  if (!dims_match(x[0], gy[0])) c.fail("x and gy must have the same batch");
  if (x[1] < 0 || x[1] % a.groups != 0 || gy[1] % a.groups != 0)
    c.fail("channels must divide into the groups");
  for (std::size_t d = 0; d < 2; ++d)
    if (!dims_match(window_out(c, x[2 + d], a.kernel[d], d), gy[2 + d]))
      c.fail("gy's spatial size does not match the convolution of x");
  return {Shape{gy[1], x[1] / a.groups, a.kernel[0], a.kernel[1]}, c.inputs[0].dtype};
}

TensorDesc rule_pool2d(const RuleContext& c) {
  require_float(c, 0);
  require_nchw(c, 0, "x");
  Shape pooled;
  if (auto e = pooled_shape(c.attrs, c.inputs[0].shape, &pooled); !e.empty()) c.fail(e);
  return {pooled, c.inputs[0].dtype};
}

TensorDesc rule_pool2d_backward(const RuleContext& c) {
  require_same_dtype(c);
  const TensorDesc pooled = rule_pool2d(c);
  const Shape& gy = c.inputs[1].shape;
  if (gy.rank() != 4) c.fail("gy must be 4-D");
  for (std::size_t i = 0; i < 4; ++i)
    if (!dims_match(gy[i], pooled.shape[i]))
      c.fail("gy must have the pooled shape " + pooled.shape.str());
  return c.inputs[0];
}

TensorDesc rule_batch_norm(const RuleContext& c) {
  require_same_dtype(c);
  require_float(c, 0);
  const Shape& x = c.inputs[0].shape;
  if (x.rank() != 2 && x.rank() != 4) c.fail("x must be [N, C] or [N, C, H, W]");
  for (std::size_t i = 1; i < c.inputs.size(); ++i) {
    const Shape& p = c.inputs[i].shape;
    if (p.rank() != 1 || !dims_match(p[0], x[1]))
      c.fail("per-channel inputs must be [" + std::to_string(x[1]) + "]");
  }
  if (!(c.attrs.eps > 0.0f)) c.fail("eps must be positive");
  if (!(c.attrs.momentum >= 0.0f && c.attrs.momentum <= 1.0f)) c.fail("momentum must be in [0, 1]");
  return c.inputs[0];
}

TensorDesc rule_batch_norm_backward(const RuleContext& c) {
  require_same_dtype(c);
  require_float(c, 0);
  const Shape& x = c.inputs[0].shape;
  if (x.rank() != 2 && x.rank() != 4) c.fail("x must be [N, C] or [N, C, H, W]");
  if (c.inputs[1].shape.rank() != 1 || !dims_match(c.inputs[1].shape[0], x[1]))
    c.fail("gamma must be [C]");
  const Shape& gy = c.inputs[2].shape;
  if (gy.rank() != x.rank()) c.fail("gy must have x's shape");
  for (std::size_t i = 0; i < x.rank(); ++i)
    if (!dims_match(gy[i], x[i])) c.fail("gy must have x's shape");
  if (!(c.attrs.eps > 0.0f)) c.fail("eps must be positive");
  return c.inputs[0];
}

TensorDesc rule_upsample_nearest2d(const RuleContext& c) {
  require_nchw(c, 0, "x");
  const auto& s = c.attrs.stride;
  if (s[0] < 1 || s[1] < 1) c.fail("scale factors " + pair_str(s) + " must be positive");
  const Shape& x = c.inputs[0].shape;
  return {Shape{x[0], x[1], x[2] < 0 ? -1 : x[2] * s[0], x[3] < 0 ? -1 : x[3] * s[1]},
          c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {
namespace {

Attrs conv_attrs(const Conv2dOptions& o) {
  Attrs a;
  a.stride = o.stride;
  a.padding = o.padding;
  a.dilation = o.dilation;
  a.groups = o.groups;
  return a;
}

std::vector<Value> with_bias(Value x, Value w, Value bias, const char* op) {
  internal::require_valid(x, op, "x");
  internal::require_valid(w, op, "w");
  internal::require_same_graph(x, w, op);
  std::vector<Value> ins{x, w};
  if (bias.valid()) {
    internal::require_same_graph(x, bias, op);
    ins.push_back(bias);
  }
  return ins;
}

}  // namespace

Value conv2d(Value x, Value w, Value bias, Conv2dOptions options, std::string name) {
  auto ins = with_bias(x, w, bias, "conv2d");
  return x.graph().add(Op::conv2d, ins, conv_attrs(options), std::move(name));
}

Value conv_transpose2d(Value x, Value w, Value bias, ConvTranspose2dOptions options,
                       std::string name) {
  auto ins = with_bias(x, w, bias, "conv_transpose2d");
  Attrs a = conv_attrs(options);
  a.output_padding = options.output_padding;
  return x.graph().add(Op::conv_transpose2d, ins, a, std::move(name));
}

Value max_pool2d(Value x, Pool2dOptions options, std::string name) {
  internal::require_valid(x, "max_pool2d", "x");
  return x.graph().add(Op::max_pool2d, {x}, internal::pool_attrs(options), std::move(name));
}

Value avg_pool2d(Value x, Pool2dOptions options, std::string name) {
  internal::require_valid(x, "avg_pool2d", "x");
  return x.graph().add(Op::avg_pool2d, {x}, internal::pool_attrs(options), std::move(name));
}

Value global_avg_pool2d(Value x, std::string name) {
  internal::require_valid(x, "global_avg_pool2d", "x");
  if (x.shape().rank() != 4)
    throw ShapeError("global_avg_pool2d: value '" + x.name() + "' " + x.shape().str() +
                     " must be 4-D (NCHW)");
  return mean(x, {2, 3}, true, std::move(name));
}

Value batch_norm(Value x, Value gamma, Value beta, Value running_mean, Value running_var,
                 BatchNormOptions options, std::string name) {
  const char* op = "batch_norm";
  internal::require_valid(x, op, "x");
  for (Value v : {gamma, beta, running_mean, running_var}) {
    internal::require_valid(v, op, "per-channel input");
    internal::require_same_graph(x, v, op);
  }
  Attrs a;
  a.eps = options.eps;
  a.momentum = options.momentum;
  return x.graph().add(Op::batch_norm, {x, gamma, beta, running_mean, running_var}, a,
                       std::move(name));
}

Value flatten(Value x, std::string name) {
  internal::require_valid(x, "flatten", "x");
  const Shape& s = x.shape();
  if (s.rank() < 2) return x;
  std::int64_t rest = 1;
  for (std::size_t i = 1; i < s.rank(); ++i) {
    if (s[i] < 0)
      throw ShapeError("flatten: value '" + x.name() + "' " + s.str() +
                       " has a dynamic dimension after the first");
    rest *= s[i];
  }
  return reshape(x, Shape{-1, rest}, std::move(name));
}

Value upsample_nearest2d(Value x, Pair scale, std::string name) {
  internal::require_valid(x, "upsample_nearest2d", "x");
  Attrs a;
  a.stride = scale;
  return x.graph().add(Op::upsample_nearest2d, {x}, a, std::move(name));
}

}  // namespace kiln
