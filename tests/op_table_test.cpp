// The op table: one list of cases drives the op tests. Every registered op must appear;
// every fast kernel is compared with the reference kernel on the case's shapes, and at
// least one fast kernel must accept each case (no case silently compares the reference
// with itself); every differentiable op's backward rule is checked against central finite
// differences in double precision.
//
// Non-finite values: every case with a float input also runs as "<case>_nonfinite", its
// first float input holding a NaN, a +Inf and a -Inf. All kernels must then agree with
// the reference under NaN-aware equality (NaN matches NaN, an infinity the same infinity).
// The semantics are IEEE's, as PyTorch's: a NaN reaching relu, max, max_pool2d, softmax,
// a matmul or convolution sum, ... makes the affected outputs NaN (see docs/semantics.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "autodiff/grad_rules.hpp"
#include "internal/kernel.hpp"
#include "kiln/kiln.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln {
namespace {

enum class Fill { normal, positive, away_from_zero, probability, distinct, index, label };

struct InputSpec {
  Shape shape;  // concrete shape
  Fill fill = Fill::normal;
  std::int64_t hi = 0;  // index / label range [0, hi)
  DType int_type = DType::i32;
  bool dynamic_batch = false;
  std::vector<std::int64_t> values = {};  // integer inputs: these values instead of random ones
};

struct OpCase {
  std::string name;
  Op op;  // the op of the built output node
  std::vector<InputSpec> inputs;
  std::function<Value(std::vector<Value>&)> build;
  double tolerance = 1e-5;     // fast vs reference, relative to the largest magnitude
  bool stochastic = false;     // output depends on the run counter (dropout)
  bool differentiable = true;  // false: a fused node (no backward rule applies)
  bool nonfinite = false;      // the first float input holds NaN, +Inf and -Inf
};

InputSpec F(Shape s, Fill f = Fill::normal) { return {std::move(s), f}; }
InputSpec B(Shape s, Fill f = Fill::normal) {
  InputSpec in{std::move(s), f};
  in.dynamic_batch = true;
  return in;
}
InputSpec I(Shape s, std::int64_t hi, DType t = DType::i32, Fill f = Fill::index) {
  return {std::move(s), f, hi, t};
}

std::vector<OpCase> op_cases() {
  using V = std::vector<Value>;
  std::vector<OpCase> c;
  auto push = [&](std::string name, Op op, std::vector<InputSpec> in, std::function<Value(V&)> fn,
                  double tol = 1e-5) {
    c.push_back({std::move(name), op, std::move(in), std::move(fn), tol});
  };
  push("matmul_2d", Op::matmul, {F({3, 4}), F({4, 5})}, [](V& v) { return matmul(v[0], v[1]); });
  push("matmul_ta", Op::matmul, {F({4, 3}), F({4, 5})},
       [](V& v) { return matmul(v[0], v[1], {.transpose_a = true}); });
  push("matmul_tb", Op::matmul, {B({3, 4}), F({5, 4})},
       [](V& v) { return matmul(v[0], v[1], {.transpose_b = true}); });
  push("matmul_ta_tb", Op::matmul, {F({4, 3}), F({5, 4})},
       [](V& v) { return matmul(v[0], v[1], {.transpose_a = true, .transpose_b = true}); });
  push("matmul_batched", Op::matmul, {F({2, 3, 4}), F({2, 4, 5})},
       [](V& v) { return matmul(v[0], v[1]); });
  push("matmul_batched_shared_b", Op::matmul, {B({2, 3, 4}), F({4, 5})},
       [](V& v) { return matmul(v[0], v[1]); });
  push("matmul_batched_ta_shared_b", Op::matmul, {F({2, 4, 3}), F({4, 5})},
       [](V& v) { return matmul(v[0], v[1], {.transpose_a = true}); });
  push("matmul_gemv_like", Op::matmul, {F({1, 17}), F({17, 9})},
       [](V& v) { return matmul(v[0], v[1]); });
  push("add_broadcast", Op::add, {B({3, 4}), F({4})}, [](V& v) { return add(v[0], v[1]); });
  push("sub", Op::sub, {F({3, 4}), F({3, 4})}, [](V& v) { return sub(v[0], v[1]); });
  push("mul_broadcast_col", Op::mul, {F({3, 4}), F({3, 1})}, [](V& v) { return mul(v[0], v[1]); });
  push("div", Op::div, {F({3, 4}), F({3, 4}, Fill::positive)},
       [](V& v) { return div(v[0], v[1]); });
  push("neg", Op::neg, {F({5, 7})}, [](V& v) { return neg(v[0]); });
  push("exp", Op::exp, {F({5, 7})}, [](V& v) { return exp(v[0]); });
  push("log", Op::log, {F({5, 7}, Fill::positive)}, [](V& v) { return log(v[0]); });
  push("sqrt", Op::sqrt, {F({5, 7}, Fill::positive)}, [](V& v) { return sqrt(v[0]); });
  push("relu", Op::relu, {B({5, 7}, Fill::away_from_zero)}, [](V& v) { return relu(v[0]); });
  push("leaky_relu", Op::leaky_relu, {F({5, 7}, Fill::away_from_zero)},
       [](V& v) { return leaky_relu(v[0], 0.1f); });
  push("sigmoid", Op::sigmoid, {F({5, 7})}, [](V& v) { return sigmoid(v[0]); });
  push("tanh", Op::tanh, {F({5, 7})}, [](V& v) { return tanh(v[0]); });
  push("gelu", Op::mul, {F({5, 7})}, [](V& v) { return gelu(v[0]); });
  push("step", Op::step, {F({5, 7}, Fill::away_from_zero)}, [](V& v) { return step(v[0]); });
  push("equal", Op::equal, {F({4, 6}, Fill::distinct)},
       [](V& v) { return equal(v[0], max(v[0], {1}, true)); });
  push("softmax_last", Op::softmax, {B({3, 6})}, [](V& v) { return softmax(v[0]); });
  push("softmax_axis0", Op::softmax, {F({4, 3, 2})}, [](V& v) { return softmax(v[0], 0); });
  push("log_softmax", Op::log_softmax, {F({3, 6})}, [](V& v) { return log_softmax(v[0]); });
  push("log_softmax_mid", Op::log_softmax, {F({2, 5, 3})},
       [](V& v) { return log_softmax(v[0], 1); });
  push("sum_axis", Op::sum, {F({3, 4, 5})}, [](V& v) { return sum(v[0], {1}); });
  push("sum_keep", Op::sum, {B({3, 4, 5})}, [](V& v) { return sum(v[0], {0, 2}, true); });
  push("sum_all", Op::sum, {F({3, 4})}, [](V& v) { return sum(v[0]); });
  push("mean_axis", Op::mean, {B({3, 4, 5})}, [](V& v) { return mean(v[0], {-1}); });
  push("mean_all", Op::mean, {F({6, 2})}, [](V& v) { return mean(v[0]); });
  push("max_axis", Op::max, {F({3, 4, 5}, Fill::distinct)}, [](V& v) { return max(v[0], {1}); });
  push("max_keep", Op::max, {F({4, 6}, Fill::distinct)}, [](V& v) { return max(v[0], {0}, true); });
  push("expand", Op::expand, {F({3, 1})}, [](V& v) { return expand(v[0], Shape{3, 4}); });
  push("expand_mean", Op::expand, {F({1, 4, 1})}, [](V& v) {
    return expand(v[0], Shape{2, 4, 3}, {}, true);
  });
  push("reshape", Op::reshape, {F({3, 4})}, [](V& v) { return reshape(v[0], Shape{2, 6}); });
  push("reshape_batch", Op::reshape, {B({3, 2, 2})}, [](V& v) {
    return reshape(v[0], Shape{-1, 4});
  });
  push("transpose_2d", Op::transpose, {F({3, 5})}, [](V& v) { return transpose(v[0]); });
  push("transpose_3d", Op::transpose, {B({2, 3, 4})}, [](V& v) {
    return transpose(v[0], {2, 0, 1});
  });
  push("concat", Op::concat, {B({3, 2}), F({3, 4})}, [](V& v) { return concat({v[0], v[1]}, 1); });
  push("concat_axis0", Op::concat, {F({1, 3}), F({2, 3}), F({3, 3})}, [](V& v) {
    return concat({v[0], v[1], v[2]}, 0);
  });
  push("slice", Op::slice, {B({3, 5})}, [](V& v) { return slice(v[0], 1, 1, 4); });
  push("slice_axis0", Op::slice, {F({6, 2, 3})}, [](V& v) { return slice(v[0], 0, 2, 5); });
  push("pad", Op::pad, {F({3, 2})}, [](V& v) { return pad(v[0], 0, 1, 2); });
  push("pad_inner", Op::pad, {B({2, 3})}, [](V& v) { return pad(v[0], 1, 2, 0); });
  push("gather", Op::gather, {F({6, 4}), I({3, 2}, 6)}, [](V& v) { return gather(v[0], v[1]); });
  push("gather_i64", Op::gather, {F({5, 2, 3}), I({4}, 5, DType::i64)},
       [](V& v) { return gather(v[0], v[1]); });
  push("scatter_add_rows", Op::scatter_add_rows, {I({5}, 3, DType::i64), F({5, 3})},
       [](V& v) { return scatter_add_rows(v[0], v[1], 4); });
  push("one_hot", Op::one_hot, {I({4}, 5)}, [](V& v) { return one_hot(v[0], 5); });
  push("dropout", Op::mul, {F({8, 16})}, [](V& v) { return dropout(v[0], 0.3f, 42); });
  push("softmax_cross_entropy", Op::softmax_cross_entropy, {B({4, 5}), I({4}, 5, DType::i32)},
       [](V& v) { return softmax_cross_entropy(v[0], v[1]); });
  push("softmax_cross_entropy_i64", Op::softmax_cross_entropy, {F({3, 7}), I({3}, 7, DType::i64)},
       [](V& v) { return softmax_cross_entropy(v[0], v[1]); });
  push("mse", Op::mse, {B({3, 4}), F({3, 4})}, [](V& v) { return mse(v[0], v[1]); });
  push("bce_with_logits", Op::bce_with_logits, {F({3, 4}), F({3, 4}, Fill::probability)},
       [](V& v) { return binary_cross_entropy_with_logits(v[0], v[1]); });
  // Convolution, pooling, normalisation (NCHW).
  auto conv = [](Pair stride, Pair padding, Pair dilation, std::int64_t groups) {
    Conv2dOptions o;
    o.stride = stride;
    o.padding = padding;
    o.dilation = dilation;
    o.groups = groups;
    return o;
  };
  push("conv2d", Op::conv2d, {F({2, 3, 7, 6}), F({4, 3, 3, 2})},
       [](V& v) { return conv2d(v[0], v[1]); });
  push("conv2d_stride_pad_dilation_bias", Op::conv2d, {B({2, 3, 9, 8}), F({5, 3, 3, 3}), F({5})},
       [conv](V& v) {
         return conv2d(v[0], v[1], v[2], conv({2, 3}, {1, 2}, {2, 1}, 1));
       });
  push("conv2d_groups", Op::conv2d, {F({1, 4, 6, 5}), F({6, 2, 3, 3})}, [conv](V& v) {
    return conv2d(v[0], v[1], {}, conv({1, 1}, {1, 0}, {1, 1}, 2));
  });
  push("conv2d_depthwise", Op::conv2d, {F({2, 3, 6, 5}), F({3, 1, 3, 3}), F({3})}, [conv](V& v) {
    return conv2d(v[0], v[1], v[2], conv({2, 1}, {1, 1}, {1, 1}, 3));
  });
  push("conv2d_1x1", Op::conv2d, {F({3, 5, 4, 3}), F({7, 5, 1, 1})},
       [](V& v) { return conv2d(v[0], v[1]); });
  push("conv_transpose2d", Op::conv_transpose2d, {F({2, 3, 4, 5}), F({3, 2, 3, 3}), F({2})},
       [conv](V& v) {
         ConvTranspose2dOptions o;
         static_cast<Conv2dOptions&>(o) = conv({2, 2}, {1, 1}, {1, 1}, 1);
         o.output_padding = {1, 0};
         return conv_transpose2d(v[0], v[1], v[2], o);
       });
  push("conv_transpose2d_groups_dilation", Op::conv_transpose2d, {B({1, 4, 3, 4}), F({4, 3, 2, 3})},
       [conv](V& v) {
         ConvTranspose2dOptions o;
         static_cast<Conv2dOptions&>(o) = conv({1, 2}, {0, 1}, {2, 1}, 2);
         return conv_transpose2d(v[0], v[1], {}, o);
       });
  push("conv2d_backward_weights", Op::conv2d_backward_weights, {F({2, 4, 7, 6}), F({2, 6, 4, 3})},
       [conv](V& v) {
         return conv2d_backward_weights(v[0], v[1], {3, 2}, conv({2, 2}, {1, 0}, {1, 1}, 2));
       });
  auto pool = [](Pair kernel, Pair stride, Pair padding, bool include_pad) {
    Pool2dOptions o;
    o.kernel = kernel;
    o.stride = stride;
    o.padding = padding;
    o.include_pad = include_pad;
    return o;
  };
  push("max_pool2d", Op::max_pool2d, {B({2, 3, 6, 7}, Fill::distinct)},
       [](V& v) { return max_pool2d(v[0]); });
  push("max_pool2d_stride_pad", Op::max_pool2d, {F({1, 2, 7, 5}, Fill::distinct)}, [pool](V& v) {
    return max_pool2d(v[0], pool({3, 2}, {2, 1}, {1, 1}, true));
  });
  push("max_pool2d_backward", Op::max_pool2d_backward,
       {F({2, 2, 5, 6}, Fill::distinct), F({2, 2, 3, 3})}, [pool](V& v) {
         return max_pool2d_backward(v[0], v[1], pool({3, 2}, {2, 2}, {1, 0}, true));
       });
  push("avg_pool2d", Op::avg_pool2d, {B({2, 3, 6, 7})}, [](V& v) { return avg_pool2d(v[0]); });
  push("avg_pool2d_pad_include", Op::avg_pool2d, {F({1, 2, 7, 5})}, [pool](V& v) {
    return avg_pool2d(v[0], pool({3, 3}, {2, 2}, {1, 1}, true));
  });
  push("avg_pool2d_pad_exclude", Op::avg_pool2d, {F({1, 2, 7, 5})}, [pool](V& v) {
    return avg_pool2d(v[0], pool({3, 2}, {2, 1}, {1, 1}, false));
  });
  push("avg_pool2d_backward", Op::avg_pool2d_backward, {F({2, 2, 5, 6}), F({2, 2, 3, 3})},
       [pool](V& v) {
         return avg_pool2d_backward(v[0], v[1], pool({3, 2}, {2, 2}, {1, 0}, false));
       });
  push("batch_norm", Op::batch_norm,
       {B({4, 3, 2, 3}), F({3}, Fill::positive), F({3}), F({3}), F({3}, Fill::positive)},
       [](V& v) { return batch_norm(v[0], v[1], v[2], v[3], v[4]); });
  push("batch_norm_2d", Op::batch_norm,
       {F({5, 4}), F({4}, Fill::positive), F({4}), F({4}), F({4}, Fill::positive)}, [](V& v) {
         return batch_norm(v[0], v[1], v[2], v[3], v[4], {.eps = 1e-3f, .momentum = 0.3f});
       });
  push("batch_norm_backward", Op::batch_norm_backward,
       {F({4, 3, 2, 3}), F({3}, Fill::positive), F({4, 3, 2, 3})},
       [](V& v) { return batch_norm_backward(v[0], v[1], v[2], 1e-5f); });
  push("upsample_nearest2d", Op::upsample_nearest2d, {B({2, 3, 3, 4})}, [](V& v) {
    return upsample_nearest2d(v[0], {2, 3});
  });
  push("global_avg_pool2d", Op::mean, {F({2, 3, 4, 5})},
       [](V& v) { return global_avg_pool2d(v[0]); });
  push("flatten", Op::reshape, {B({2, 3, 2, 2})}, [](V& v) { return flatten(v[0]); });
  // ---- attention ----
  // Key masks are constants (a 0/1 input would flip under finite differences); row 1 of
  // "attention_key_mask" and query 0 of batch 0 in "attention_causal_mask" see no key.
  auto mask_of = [](Value like, std::vector<double> m, std::int64_t rows) {
    const auto cols = static_cast<std::int64_t>(m.size()) / rows;
    return like.graph().constant(Tensor::from(m, Shape{rows, cols}).to(like.dtype()));
  };
  push("attention", Op::attention, {F({2, 2, 3, 4}), F({2, 2, 5, 4}), F({2, 2, 5, 3})},
       [](V& v) { return attention(v[0], v[1], v[2]); });
  push("attention_key_mask", Op::attention, {F({3, 2, 3, 4}), F({3, 2, 5, 4}), F({3, 2, 5, 3})},
       [mask_of](V& v) {
         const Value m = mask_of(v[0], {1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, 3);
         return attention(v[0], v[1], v[2], {.key_mask = m});
       });
  push("attention_causal_scale", Op::attention, {F({2, 3, 4, 5}), F({2, 3, 4, 5}), F({2, 3, 4, 2})},
       [](V& v) { return attention(v[0], v[1], v[2], {.causal = true, .scale = 0.3f}); });
  push("attention_causal_mask", Op::attention, {F({2, 2, 4, 3}), F({2, 2, 4, 3}), F({2, 2, 4, 3})},
       [mask_of](V& v) {
         const Value m = mask_of(v[0], {0, 1, 1, 0, 1, 1, 0, 1}, 2);
         return attention(v[0], v[1], v[2], {.key_mask = m, .causal = true});
       });
  push("attention_dynamic_batch", Op::attention,
       {B({2, 2, 3, 4}), B({2, 2, 6, 4}), B({2, 2, 6, 5})},
       [](V& v) { return attention(v[0], v[1], v[2]); });
  push("gelu_erf", Op::gelu, {B({5, 7})}, [](V& v) { return gelu_erf(v[0]); });
  push("gelu_backward", Op::gelu_backward, {F({5, 7}), F({5, 7})},
       [](V& v) { return gelu_backward(v[0], v[1]); });
  // ---- layer norm ----
  push("layer_norm", Op::layer_norm, {B({4, 6}), F({6}), F({6})},
       [](V& v) { return layer_norm(v[0], v[1], v[2]); });
  push("layer_norm_rank3_eps", Op::layer_norm, {F({2, 3, 5}), F({5}), F({5})},
       [](V& v) { return layer_norm(v[0], v[1], v[2], 0.25f); });
  push("layer_norm_no_affine", Op::layer_norm, {F({4, 6})},
       [](V& v) { return layer_norm(v[0], {}, {}); });
  push("layer_norm_no_affine_rank3", Op::layer_norm, {B({2, 3, 7})},
       [](V& v) { return layer_norm(v[0], {}, {}, 1e-3f); });
  push("layer_norm_rank1", Op::layer_norm, {F({5}), F({5}), F({5})},
       [](V& v) { return layer_norm(v[0], v[1], v[2]); });
  push("layer_norm_backward", Op::layer_norm_backward, {F({2, 3, 5}), F({5}), F({2, 3, 5})},
       [](V& v) { return layer_norm_backward(v[0], v[1], v[2], 1e-5f); });
  push("layer_norm_backward_no_gamma", Op::layer_norm_backward, {B({4, 6}), B({4, 6})},
       [](V& v) { return layer_norm_backward(v[0], {}, v[1], 1e-5f); });
  // One-pass gradients of relu (y of both signs) and softmax (y a real softmax output,
  // along the last axis, a middle one and a dynamic batch).
  push("relu_backward", Op::relu_backward, {F({5, 7}), F({5, 7})},
       [](V& v) { return relu_backward(v[0], v[1]); });
  push("softmax_backward_last", Op::softmax_backward, {F({4, 9}), F({4, 9})},
       [](V& v) { return softmax_backward(softmax(v[0]), v[1]); });
  push("softmax_backward_middle_axis", Op::softmax_backward, {F({3, 5, 4}), F({3, 5, 4})},
       [](V& v) { return softmax_backward(softmax(v[0], 1), v[1], 1); });
  push("softmax_backward_dynamic_batch", Op::softmax_backward, {B({2, 6}), B({2, 6})},
       [](V& v) { return softmax_backward(softmax(v[0]), v[1], -1); });
  // Fused epilogues, as the fusion pass creates them (no gradient: autodiff runs first).
  push("matmul_bias_relu_fused", Op::matmul, {F({5, 7}), F({7, 9}), F({9})}, [](V& v) {
    Attrs a;
    a.post_op = PostOp::relu;
    return v[0].graph().add(Op::matmul, {v[0], v[1], v[2]}, a);
  });
  push("conv_transpose2d_bias_relu_fused", Op::conv_transpose2d,
       {F({2, 3, 4, 5}), F({3, 2, 3, 3}), F({2})}, [](V& v) {
         Attrs a;
         a.stride = {2, 2};
         a.padding = {1, 1};
         a.post_op = PostOp::relu;
         return v[0].graph().add(Op::conv_transpose2d, {v[0], v[1], v[2]}, a);
       });
  push("conv2d_bias_relu_fused", Op::conv2d, {F({2, 3, 6, 5}), F({4, 3, 3, 3}), F({4})}, [](V& v) {
    Attrs a;
    a.padding = {1, 1};
    a.post_op = PostOp::relu;
    return v[0].graph().add(Op::conv2d, {v[0], v[1], v[2]}, a);
  });
  // ---- rnn ----
  // xw [B, T, G*H], w_hh [G*H, H], states [B, H], lengths [B] (B = 3, T = 4, H = 2): row 0
  // runs all steps, row 1 none, row 2 two. The *_backward cases run the forward op first
  // so that y is a real packed output.
  InputSpec lengths = I({3}, 5, DType::i64);
  lengths.values = {4, 0, 2};
  InputSpec lengths_dyn = lengths;
  lengths_dyn.dynamic_batch = true;
  const Shape lx{3, 4, 8}, gx{3, 4, 6}, st{3, 2};
  push("lstm", Op::lstm, {F(lx), F({8, 2}), F(st), F(st)},
       [](V& v) { return lstm(v[0], v[1], v[2], v[3]); });
  push("lstm_lengths", Op::lstm, {F(lx), F({8, 2}), F(st), F(st), lengths},
       [](V& v) { return lstm(v[0], v[1], v[2], v[3], {.lengths = v[4]}); });
  push("lstm_lengths_reverse_dynamic_batch", Op::lstm,
       {B(lx), F({8, 2}), B(st), B(st), lengths_dyn},
       [](V& v) { return lstm(v[0], v[1], v[2], v[3], {.lengths = v[4], .reverse = true}); });
  push("lstm_reverse_one_step", Op::lstm, {F({2, 1, 12}), F({12, 3}), F({2, 3}), F({2, 3})},
       [](V& v) { return lstm(v[0], v[1], v[2], v[3], {.reverse = true}); });
  push("lstm_backward", Op::lstm_backward, {F(lx), F({8, 2}), F(st), F(st), F({3, 4, 12})},
       [](V& v) {
         const Value y = lstm(v[0], v[1], v[2], v[3]);
         return lstm_backward(y, v[4], v[1], v[2], v[3]);
       });
  push("lstm_backward_lengths_reverse", Op::lstm_backward,
       {F(lx), F({8, 2}), F(st), F(st), F({3, 4, 12}), lengths}, [](V& v) {
         const RecurrentOptions o{.lengths = v[5], .reverse = true};
         const Value y = lstm(v[0], v[1], v[2], v[3], o);
         return lstm_backward(y, v[4], v[1], v[2], v[3], o);
       });
  push("gru", Op::gru, {F(gx), F({6, 2}), F({6}), F(st)},
       [](V& v) { return gru(v[0], v[1], v[2], v[3]); });
  push("gru_lengths", Op::gru, {B(gx), F({6, 2}), F({6}), B(st), lengths_dyn},
       [](V& v) { return gru(v[0], v[1], v[2], v[3], {.lengths = v[4]}); });
  push("gru_lengths_reverse", Op::gru, {F(gx), F({6, 2}), F({6}), F(st), lengths},
       [](V& v) { return gru(v[0], v[1], v[2], v[3], {.lengths = v[4], .reverse = true}); });
  push("gru_reverse", Op::gru, {F({2, 3, 9}), F({9, 3}), F({9}), F({2, 3})},
       [](V& v) { return gru(v[0], v[1], v[2], v[3], {.reverse = true}); });
  push("gru_backward", Op::gru_backward, {F(gx), F({6, 2}), F({6}), F(st), F({3, 4, 10})},
       [](V& v) {
         const Value y = gru(v[0], v[1], v[2], v[3]);
         return gru_backward(y, v[4], v[1], v[3]);
       });
  push("gru_backward_lengths_reverse", Op::gru_backward,
       {F(gx), F({6, 2}), F({6}), F(st), F({3, 4, 10}), lengths}, [](V& v) {
         const RecurrentOptions o{.lengths = v[5], .reverse = true};
         const Value y = gru(v[0], v[1], v[2], v[3], o);
         return gru_backward(y, v[4], v[1], v[3], o);
       });
  for (auto& oc : c) {
    oc.stochastic = oc.name == "dropout";
    oc.differentiable = oc.name.find("_fused") == std::string::npos;
  }
  return c;
}

// The cases with a float input again, with NaN and infinities in their first float input.
std::vector<OpCase> nonfinite_cases() {
  std::vector<OpCase> c;
  for (const OpCase& oc : op_cases()) {
    const bool has_float = std::any_of(oc.inputs.begin(), oc.inputs.end(), [](const InputSpec& in) {
      return in.fill != Fill::index && in.fill != Fill::label;
    });
    if (!has_float) continue;
    OpCase special = oc;
    special.name += "_nonfinite";
    special.nonfinite = true;
    c.push_back(std::move(special));
  }
  return c;
}

// Deterministic values for one input.
Tensor make_input(const InputSpec& in, DType float_type, std::uint64_t seed) {
  Rng rng(seed);
  const auto n = in.shape.numel();
  if (in.fill == Fill::index || in.fill == Fill::label) {
    Tensor t = Tensor::empty(in.shape, in.int_type);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto v = !in.values.empty()
                         ? in.values[static_cast<std::size_t>(i) % in.values.size()]
                         : static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(in.hi)));
      if (in.int_type == DType::i32)
        t.data<std::int32_t>()[i] = static_cast<std::int32_t>(v);
      else
        t.data<std::int64_t>()[i] = v;
    }
    return t;
  }
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double x = rng.normal();
    switch (in.fill) {
      case Fill::positive:
        x = 0.5 + std::abs(x);
        break;
      case Fill::away_from_zero:
        x = (x < 0 ? -0.2 : 0.2) + x;
        break;
      case Fill::probability:
        x = rng.uniform();
        break;
      case Fill::distinct:
        // A shuffled ramp: all values differ by at least 0.05.
        x = 0.05 * static_cast<double>((i * 7919) % n) - 0.025 * static_cast<double>(n);
        break;
      default:
        break;
    }
    v[static_cast<std::size_t>(i)] = x;
  }
  return Tensor::from(v, in.shape).to(float_type);
}

struct Built {
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  std::vector<Value> inputs;
  Feeds feeds;
  Value output;
};

Built build_case(const OpCase& oc, DType float_type) {
  Built b;
  bool injected = false;
  for (std::size_t i = 0; i < oc.inputs.size(); ++i) {
    const auto& in = oc.inputs[i];
    const bool is_int = in.fill == Fill::index || in.fill == Fill::label;
    Shape declared = in.shape;
    if (in.dynamic_batch) declared[0] = kiln::batch;
    const std::string name = "in" + std::to_string(i);
    b.inputs.push_back(b.graph->input(name, declared, is_int ? in.int_type : float_type));
    Tensor t = make_input(in, float_type, 1000 + 17 * i);
    if (oc.nonfinite && !is_int && !injected) {
      kiln_test::inject_nonfinite(t);
      injected = true;
    }
    b.feeds.emplace_back(name, t);
  }
  b.output = oc.build(b.inputs);
  return b;
}

void PrintTo(const OpCase& oc, std::ostream* os) { *os << oc.name; }

class OpTable : public ::testing::TestWithParam<OpCase> {};
class OpTableNonfinite : public ::testing::TestWithParam<OpCase> {};

TEST(OpTableCoverage, EveryOpHasACase) {
  std::set<Op> covered;
  for (const auto& oc : op_cases()) covered.insert(oc.op);
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    if (internal::op_info(op).has(internal::op_leaf)) continue;
    // dropout's mask is covered by the dropout case (its mask is the mul's input).
    if (op == Op::dropout_mask) continue;
    EXPECT_TRUE(covered.count(op)) << "op '" << op_name(op) << "' is missing from the op table";
  }
}

TEST(OpTableCoverage, EveryOpHasAReferenceAndAFastKernel) {
  internal::ensure_training_kernels();
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    if (internal::op_info(op).has(internal::op_leaf)) continue;
    const auto ks = internal::kernels_for(op);
    ASSERT_FALSE(ks.empty()) << op_name(op);
    EXPECT_STREQ(ks.back().backend, "reference") << op_name(op) << ": reference kernel last";
    EXPECT_GE(ks.size(), 2u) << "op '" << op_name(op) << "' has no fast kernel";
  }
}

// ---- per-op facts of the op table (internal/op_info.hpp) ----------------------------------

TEST(OpTableFacts, DifferentiableFlagMatchesTheBackwardRules) {
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    EXPECT_EQ(internal::is_differentiable(op), internal::grad_rule(op) != nullptr)
        << "op '" << op_name(op) << "': the table's differentiable flag and kiln's backward "
        << "rules disagree";
  }
}

TEST(OpTableFacts, TrainingOnlyOpsAreExactlyThoseWithoutInferenceKernels) {
  // kiln_infer's reference kernels (every op it runs has one; training kernels come from
  // kiln's separate registration).
  internal::KernelTable forward;
  internal::register_reference_kernels(forward);
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    const auto& info = internal::op_info(op);
    if (info.has(internal::op_leaf)) continue;
    EXPECT_EQ(info.has(internal::op_training_only), forward.get(op).empty())
        << "op '" << op_name(op) << "': training-only flag vs kernels in kiln_infer";
  }
}

TEST(OpTableFacts, LeavesHaveNoInputs) {
  for (int i = 0; i < op_count; ++i) {
    const auto& info = internal::op_info(static_cast<Op>(i));
    EXPECT_EQ(info.has(internal::op_leaf), info.arity == 0) << info.name;
  }
}

TEST(OpTableFacts, ElementwiseOpsKeepTheShapeOfTheirInputs) {
  const Shape s{3, 1, 4};
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    const auto& info = internal::op_info(op);
    if (!info.has(internal::op_elementwise)) continue;
    ASSERT_GE(info.arity, 1) << info.name;
    std::vector<internal::TensorDesc> in(static_cast<std::size_t>(info.arity), {s, DType::f32});
    EXPECT_EQ(internal::infer(op, Attrs{}, in, "probe").shape, s) << info.name;
  }
}

TEST(OpTableFacts, EveryEpilogueFusableOpHasAFusedCase) {
  std::set<Op> fused;
  for (const auto& oc : op_cases())
    if (oc.name.find("_bias_relu_fused") != std::string::npos) fused.insert(oc.op);
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    EXPECT_EQ(internal::op_info(op).has(internal::op_epilogue_fusable), fused.count(op) == 1)
        << "op '" << op_name(op) << "': fusable flag vs a '<op>_bias_relu_fused' case";
  }
}

TEST(OpTableCoverage, NameTableMatchesOps) {
  std::set<std::string> names;
  for (int i = 0; i < op_count; ++i) names.insert(std::string(op_name(static_cast<Op>(i))));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(op_count));
}

// Runs every kernel that accepts the case's output node (and, for composites, every
// node of the built fragment) and compares it with the reference kernel.
void fast_kernels_match_reference(const OpCase& oc) {
  internal::ensure_training_kernels();
  Built b = build_case(oc, DType::f32);
  ASSERT_EQ(b.output.node().op, oc.op) << "case builds a different op";
  Graph& g = *b.graph;
  // Values of every node, computed with reference kernels.
  std::vector<Value> all;
  for (std::size_t id = 0; id < g.size(); ++id)
    all.push_back(g.value(static_cast<std::int32_t>(id)));
  Executable reference(g, all, {.training = true, .backend = "reference"});
  const auto values = reference.run(b.feeds);
  int fast_on_output = 0;
  for (std::size_t id = 0; id < g.size(); ++id) {
    const Node& n = g.node(static_cast<std::int32_t>(id));
    if (n.inputs.empty()) continue;
    std::vector<Tensor> ins;
    std::vector<internal::TensorDesc> descs;
    for (auto i : n.inputs) {
      ins.push_back(values[static_cast<std::size_t>(i)]);
      descs.push_back({ins.back().shape(), ins.back().dtype()});
    }
    const internal::TensorDesc out_desc{values[id].shape(), values[id].dtype()};
    internal::KernelQuery q{n, descs, out_desc};
    internal::RunContext ctx{true, 0};  // the reference executable ran once, with counter 0
    for (const auto& k : internal::kernels_for(n.op)) {
      if (std::string(k.backend) == "reference") continue;
      std::string why;
      if (!k.supports(q, &why)) continue;
      auto state = k.prepare ? k.prepare(q) : nullptr;
      Tensor out = Tensor::full(out_desc.shape, std::nan(""), out_desc.dtype);
      k.run({n, ins, out, state.get(), ctx});
      const kiln_test::Tol tol{oc.tolerance, oc.tolerance, /*relative_to_largest=*/true};
      kiln_test::expect_close_nan_aware(out, values[id], tol,
                                        std::string(k.name) + " on node '" + n.name + "'");
      if (static_cast<std::int32_t>(id) == b.output.id()) ++fast_on_output;
    }
  }
  // The case's own op must have been checked against at least one fast kernel.
  EXPECT_GE(fast_on_output, 1) << "no fast kernel accepted " << oc.name
                               << ": only the reference ran";
}

// The default executable (best kernels, fusion on) picks a fast kernel for the case's
// output node and answers what the reference answers.
void default_plan_uses_a_fast_kernel(const OpCase& oc) {
  Built b = build_case(oc, DType::f32);
  Graph& g = *b.graph;
  Executable reference(g, {b.output}, {.training = true, .backend = "reference"});
  Executable fast(g, {b.output}, {.training = true});
  const std::string plan = fast.plan(b.feeds);
  const std::string line_start = "  " + b.output.name() + " = ";
  const auto at = plan.find(line_start);
  ASSERT_NE(at, std::string::npos) << plan;
  const std::string line = plan.substr(at, plan.find('\n', at) - at);
  const auto via = line.find(" via ");
  ASSERT_NE(via, std::string::npos) << line;
  EXPECT_NE(line.substr(via + 5, 4), "ref_") << "reference kernel chosen: " << line;
  // Both executables run once (dropout masks depend on the run count).
  kiln_test::expect_close_nan_aware(fast.run(b.feeds)[0], reference.run(b.feeds)[0],
                                    {oc.tolerance, oc.tolerance, true}, "default plan");
}

TEST_P(OpTable, FastKernelsMatchReference) { fast_kernels_match_reference(GetParam()); }
TEST_P(OpTable, DefaultPlanUsesAFastKernelAndMatchesReference) {
  default_plan_uses_a_fast_kernel(GetParam());
}
TEST_P(OpTableNonfinite, FastKernelsMatchReference) { fast_kernels_match_reference(GetParam()); }
TEST_P(OpTableNonfinite, DefaultPlanUsesAFastKernelAndMatchesReference) {
  default_plan_uses_a_fast_kernel(GetParam());
}

// Central finite differences in double precision against the backward graph.
TEST_P(OpTable, GradientMatchesFiniteDifferences) {
  const OpCase& oc = GetParam();
  if (!internal::is_differentiable(oc.op) || !oc.differentiable)
    GTEST_SKIP() << oc.name << " has no gradient";
  Built b = build_case(oc, DType::f64);
  Graph& g = *b.graph;
  // loss = sum(y * w) with fixed random weights, so every output element matters.
  Executable probe(g, {b.output}, {.training = true});
  const Shape concrete = probe.run(b.feeds)[0].shape();
  Rng wrng(7);
  std::vector<double> wv(static_cast<std::size_t>(concrete.numel()));
  for (auto& w : wv) w = wrng.uniform(-1.0, 1.0);
  Value weights = g.input("weights", concrete, DType::f64);
  Value loss = sum(mul(b.output, weights));
  b.feeds.emplace_back("weights", Tensor::from(wv, concrete));

  std::vector<Value> wrt;
  std::vector<std::size_t> wrt_feed;
  for (std::size_t i = 0; i < b.inputs.size(); ++i) {
    if (!is_floating(b.inputs[i].dtype())) continue;
    wrt.push_back(b.inputs[i]);
    wrt_feed.push_back(i);
  }
  const auto grads = grad(loss, wrt);
  Executable analytic(g, grads, {.training = true});
  Executable forward(g, {loss}, {.training = true});
  const auto got = analytic.run(b.feeds);
  const double h = 1e-6;
  for (std::size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = b.feeds[wrt_feed[k]].second;
    ASSERT_EQ(got[k].shape(), x.shape());
    for (std::int64_t e = 0; e < x.numel(); ++e) {
      double* p = x.data<double>() + e;
      const double saved = *p;
      // Dropout masks change with every run: evaluate each point with a fresh executable.
      auto eval = [&] {
        if (!oc.stochastic) return forward.run(b.feeds)[0].item();
        return Executable(g, {loss}, {.training = true}).run(b.feeds)[0].item();
      };
      *p = saved + h;
      const double up = eval();
      *p = saved - h;
      const double down = eval();
      *p = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(got[k].at(e), numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << "d loss / d " << wrt[k].name() << "[" << e << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(op_cases()),
                         [](const auto& param_info) { return param_info.param.name; });
INSTANTIATE_TEST_SUITE_P(Ops, OpTableNonfinite, ::testing::ValuesIn(nonfinite_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace kiln
