// The op table: name, arity, shape rule and facts (OpFlag) of every primitive op, indexed
// by Op.
//
// Semantics every kernel of an op follows (docs/ops.md): IEEE 754 arithmetic for NaN and
// infinities, as PyTorch's: a NaN reaching relu, max, max_pool2d, softmax, a matmul or
// convolution sum gives NaN; comparisons (step, equal) are false for NaN.
#include <array>
#include <string>

#include "kiln/core/error.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {
namespace {

constexpr std::array<OpInfo, op_count> kAllOps{{
    {Op::input, "input", 0, rule_leaf, op_leaf},
    {Op::parameter, "parameter", 0, rule_leaf, op_leaf},
    {Op::constant, "constant", 0, rule_leaf, op_leaf},
    {Op::matmul, "matmul", -1, rule_matmul, op_differentiable | op_epilogue_fusable},
    {Op::add, "add", 2, rule_binary, op_elementwise | op_differentiable},
    {Op::sub, "sub", 2, rule_binary, op_elementwise | op_differentiable},
    {Op::mul, "mul", 2, rule_binary, op_elementwise | op_differentiable},
    {Op::div, "div", 2, rule_binary, op_elementwise | op_differentiable},
    {Op::neg, "neg", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::exp, "exp", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::log, "log", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::sqrt, "sqrt", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::relu, "relu", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::leaky_relu, "leaky_relu", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::sigmoid, "sigmoid", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::tanh, "tanh", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::step, "step", 1, rule_unary, op_elementwise},
    {Op::equal, "equal", 2, rule_binary, op_elementwise},
    {Op::softmax, "softmax", 1, rule_softmax, op_differentiable},
    {Op::log_softmax, "log_softmax", 1, rule_softmax, op_differentiable},
    {Op::sum, "sum", 1, rule_reduce, op_differentiable},
    {Op::mean, "mean", 1, rule_reduce, op_differentiable},
    {Op::max, "max", 1, rule_reduce, op_differentiable},
    {Op::expand, "expand", -1, rule_expand, op_differentiable},
    {Op::reshape, "reshape", 1, rule_reshape, op_differentiable},
    {Op::transpose, "transpose", 1, rule_transpose, op_differentiable},
    {Op::concat, "concat", -1, rule_concat, op_differentiable},
    {Op::slice, "slice", 1, rule_slice, op_differentiable},
    {Op::pad, "pad", 1, rule_pad, op_differentiable},
    {Op::gather, "gather", 2, rule_gather, op_differentiable},
    {Op::scatter_add_rows, "scatter_add_rows", 2, rule_scatter_add_rows,
     op_differentiable | op_training_only},
    {Op::one_hot, "one_hot", 1, rule_one_hot, 0},
    {Op::dropout_mask, "dropout_mask", 1, rule_dropout_mask, 0},
    {Op::softmax_cross_entropy, "softmax_cross_entropy", 2, rule_softmax_cross_entropy,
     op_differentiable},
    {Op::mse, "mse", 2, rule_pairwise_loss, op_differentiable},
    {Op::bce_with_logits, "bce_with_logits", 2, rule_pairwise_loss, op_differentiable},
    {Op::conv2d, "conv2d", -1, rule_conv2d, op_differentiable | op_epilogue_fusable},
    {Op::conv_transpose2d, "conv_transpose2d", -1, rule_conv_transpose2d,
     op_differentiable | op_epilogue_fusable},
    {Op::conv2d_backward_weights, "conv2d_backward_weights", 2, rule_conv2d_backward_weights,
     op_training_only},
    {Op::max_pool2d, "max_pool2d", 1, rule_pool2d, op_differentiable},
    {Op::max_pool2d_backward, "max_pool2d_backward", 2, rule_pool2d_backward, op_training_only},
    {Op::avg_pool2d, "avg_pool2d", 1, rule_pool2d, op_differentiable},
    {Op::avg_pool2d_backward, "avg_pool2d_backward", 2, rule_pool2d_backward, op_training_only},
    {Op::batch_norm, "batch_norm", 5, rule_batch_norm, op_differentiable},
    {Op::batch_norm_backward, "batch_norm_backward", 3, rule_batch_norm_backward, op_training_only},
    {Op::upsample_nearest2d, "upsample_nearest2d", 1, rule_upsample_nearest2d, op_differentiable},
    {Op::lstm, "lstm", -1, rule_lstm, op_differentiable},
    {Op::lstm_backward, "lstm_backward", -1, rule_lstm_backward, op_training_only},
    {Op::gru, "gru", -1, rule_gru, op_differentiable},
    {Op::gru_backward, "gru_backward", -1, rule_gru_backward, op_training_only},
    {Op::attention, "attention", -1, rule_attention, op_differentiable},
    {Op::gelu, "gelu", 1, rule_unary, op_elementwise | op_differentiable},
    {Op::gelu_backward, "gelu_backward", 2, rule_binary, op_training_only},
    {Op::layer_norm, "layer_norm", -1, rule_layer_norm, op_differentiable},
    {Op::layer_norm_backward, "layer_norm_backward", -1, rule_layer_norm_backward,
     op_training_only},
    {Op::relu_backward, "relu_backward", 2, rule_binary, op_training_only},
    {Op::softmax_backward, "softmax_backward", 2, rule_binary, op_training_only},
}};

constexpr bool table_in_op_order() {
  for (int i = 0; i < op_count; ++i)
    if (static_cast<int>(kAllOps[static_cast<std::size_t>(i)].op) != i) return false;
  return true;
}
static_assert(table_in_op_order(), "the op table must list every op once, in Op order");

[[noreturn]] TensorDesc rule_not_in_build(const RuleContext& c);

/// The table this build uses: in a selective build (KILN_OPS), the ops left out get
/// rule_not_in_build, so nothing refers to their shape rules (nor, through KernelTable,
/// to their kernels). kAllOps itself is only read here, at compile time.
constexpr std::array<OpInfo, op_count> in_build(std::array<OpInfo, op_count> ops) {
  for (OpInfo& info : ops)
    if (!op_in_build(info.op)) info.infer = rule_not_in_build;
  return ops;
}
constexpr std::array<OpInfo, op_count> kOps = in_build(kAllOps);

std::string shapes_of(std::span<const TensorDesc> inputs) {
  std::string s;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (i) s += " and ";
    s += inputs[i].shape.str() + " (" + std::string(to_string(inputs[i].dtype)) + ")";
  }
  return s.empty() ? "no inputs" : s;
}

std::string where(const RuleContext& c) {
  return "op '" + std::string(op_name(c.op)) + "' (node '" + std::string(c.node_name) + "')";
}

TensorDesc rule_not_in_build(const RuleContext& c) {
  throw ValueError(where(c) + ": this build of Kiln was configured without it (KILN_OPS=\"" +
                   std::string(selected_ops_text) +
                   "\"); rebuild with the op added, e.g. from `kiln ops` on the model files");
}

}  // namespace

void RuleContext::fail(const std::string& what) const {
  throw ShapeError(where(*this) + ": " + what + "; input shapes " + shapes_of(inputs));
}

void RuleContext::fail_dtype(const std::string& what) const {
  throw DTypeError(where(*this) + ": " + what + "; inputs " + shapes_of(inputs));
}

const OpInfo& op_info(Op op) {
  const auto i = static_cast<std::size_t>(op);
  if (i >= kOps.size()) throw ValueError("unknown op id " + std::to_string(i));
  return kOps[i];
}

TensorDesc infer(Op op, const Attrs& attrs, std::span<const TensorDesc> inputs,
                 std::string_view node_name) {
  const OpInfo& info = op_info(op);
  RuleContext c{op, node_name, attrs, inputs};
  if (info.arity >= 0 && inputs.size() != static_cast<std::size_t>(info.arity))
    c.fail("expects " + std::to_string(info.arity) + " inputs, got " +
           std::to_string(inputs.size()));
  if (info.arity < 0 && inputs.empty()) c.fail("expects at least one input");
  return info.infer(c);
}

void require_float(const RuleContext& c, std::size_t i) {
  if (!is_floating(c.inputs[i].dtype))
    c.fail_dtype("input " + std::to_string(i) + " must be f32 or f64, not " +
                 std::string(to_string(c.inputs[i].dtype)));
}

void require_integer(const RuleContext& c, std::size_t i) {
  if (!is_integer(c.inputs[i].dtype))
    c.fail_dtype("input " + std::to_string(i) + " must be i32 or i64, not " +
                 std::string(to_string(c.inputs[i].dtype)));
}

void require_same_dtype(const RuleContext& c) {
  for (const auto& d : c.inputs)
    if (d.dtype != c.inputs[0].dtype) c.fail_dtype("inputs must have the same dtype");
}

}  // namespace kiln::internal

namespace kiln {
std::string_view op_name(Op op) { return internal::op_info(op).name; }
}  // namespace kiln
