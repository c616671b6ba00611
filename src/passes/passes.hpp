// Internal: graph rewrites applied when an Executable compiles.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/graph/graph.hpp"

namespace kiln::internal {

/// The nodes an executable runs: a copy of the graph's nodes that passes may rewrite.
/// Node ids are kept; a node folded into another is marked dead and every use of it
/// (including the outputs) is redirected to the node that now computes its value.
struct PassGraph {
  std::vector<Node> nodes;
  std::vector<bool> dead;
  std::vector<std::int32_t> outputs;
  /// Per node: the node it was folded into, or -1.
  std::vector<std::int32_t> folded_into;
};

/// Marks what the outputs depend on.
std::vector<bool> live_nodes(const PassGraph& pg);

/// Folds a per-channel bias add and a following relu into the epilogue of conv2d,
/// conv_transpose2d and 2-D matmul nodes (oneDNN post-ops, Eigen epilogues), where the
/// intermediate values have no other use than their shape. Training graphs fuse too:
/// backward rules read the activation's output, not its input. In the backward pass,
/// relu_backward(y, max_pool2d_backward(y, g)) becomes the pooling's backward with the
/// ReLU's gradient as epilogue (PostOp::relu on max_pool2d_backward).
/// With `pool_into_conv` (oneDNN builds: its convolution then pools in its own blocked
/// layout), a non-overlapping unpadded max_pool2d that is the only use of a conv2d+ReLU is
/// folded in too (PostOp::relu_max_pool; inference plans in practice, since a training
/// graph's backward reads the ReLU's output). The fused node takes the pool's value, name
/// and layer scope.
void fuse_epilogues(PassGraph& pg, bool pool_into_conv);

}  // namespace kiln::internal
