// Internal: backward rules, written with forward ops. Each returns one gradient per
// input (an empty Value where the input gets none).
#pragma once

#include <vector>

#include "kiln/graph/graph.hpp"

namespace kiln::internal {

struct GradContext {
  const Node& node;
  Value y;                    ///< the node's output
  Value gy;                   ///< gradient flowing into the output
  std::vector<Value> inputs;  ///< the node's inputs
};

using GradRule = std::vector<Value> (*)(const GradContext&);

/// The rule of op, or nullptr if the op is not differentiable (step, equal, one_hot,
/// dropout_mask, leaves).
GradRule grad_rule(Op op);

/// The sequence ops' rules, in their own files (grad_recurrent.cpp, grad_attention.cpp).
std::vector<Value> g_lstm(const GradContext& c);
std::vector<Value> g_gru(const GradContext& c);
std::vector<Value> g_attention(const GradContext& c);
std::vector<Value> g_gelu(const GradContext& c);
/// layer_norm's rule (grad_layer_norm.cpp).
std::vector<Value> g_layer_norm(const GradContext& c);

}  // namespace kiln::internal
