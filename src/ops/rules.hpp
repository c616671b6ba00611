// Internal: shape rules of every op family, gathered into the op table (op_table.cpp).
#pragma once

#include "internal/op_info.hpp"

namespace kiln::internal {

TensorDesc rule_leaf(const RuleContext& c);
TensorDesc rule_matmul(const RuleContext& c);
TensorDesc rule_binary(const RuleContext& c);
TensorDesc rule_unary(const RuleContext& c);
TensorDesc rule_softmax(const RuleContext& c);
TensorDesc rule_reduce(const RuleContext& c);
TensorDesc rule_expand(const RuleContext& c);
TensorDesc rule_reshape(const RuleContext& c);
TensorDesc rule_transpose(const RuleContext& c);
TensorDesc rule_concat(const RuleContext& c);
TensorDesc rule_slice(const RuleContext& c);
TensorDesc rule_pad(const RuleContext& c);
TensorDesc rule_gather(const RuleContext& c);
TensorDesc rule_scatter_add_rows(const RuleContext& c);
TensorDesc rule_one_hot(const RuleContext& c);
TensorDesc rule_dropout_mask(const RuleContext& c);
TensorDesc rule_softmax_cross_entropy(const RuleContext& c);
TensorDesc rule_pairwise_loss(const RuleContext& c);
TensorDesc rule_conv2d(const RuleContext& c);
TensorDesc rule_conv_transpose2d(const RuleContext& c);
TensorDesc rule_conv2d_backward_weights(const RuleContext& c);
TensorDesc rule_pool2d(const RuleContext& c);
TensorDesc rule_pool2d_backward(const RuleContext& c);
TensorDesc rule_batch_norm(const RuleContext& c);
TensorDesc rule_batch_norm_backward(const RuleContext& c);
TensorDesc rule_upsample_nearest2d(const RuleContext& c);
TensorDesc rule_lstm(const RuleContext& c);
TensorDesc rule_lstm_backward(const RuleContext& c);
TensorDesc rule_gru(const RuleContext& c);
TensorDesc rule_gru_backward(const RuleContext& c);
TensorDesc rule_attention(const RuleContext& c);
TensorDesc rule_layer_norm(const RuleContext& c);
TensorDesc rule_layer_norm_backward(const RuleContext& c);

/// Throws DTypeError unless input i is float.
void require_float(const RuleContext& c, std::size_t i);
/// Throws DTypeError unless input i is an integer type.
void require_integer(const RuleContext& c, std::size_t i);
/// Throws DTypeError unless all inputs share a dtype.
void require_same_dtype(const RuleContext& c);

}  // namespace kiln::internal
