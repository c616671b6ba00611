// Internal: how plans and run records name a compiled step with a fused epilogue.
#pragma once

#include <string>

#include "kiln/graph/graph.hpp"

namespace kiln::internal {

/// The node's op with what the fusion pass folded into it, e.g. "conv2d+bias+relu",
/// "conv2d+bias+relu+max_pool" or "max_pool2d_backward+relu_backward".
inline std::string step_op_label(const Node& n) {
  std::string s(op_name(n.op));
  if (n.op == Op::max_pool2d_backward)
    return n.attrs.post_op == PostOp::relu ? s + "+relu_backward" : s;
  if ((n.op == Op::matmul || n.op == Op::conv2d || n.op == Op::conv_transpose2d) &&
      n.inputs.size() == 3)
    s += "+bias";
  if (n.attrs.post_op == PostOp::relu || n.attrs.post_op == PostOp::relu_max_pool) s += "+relu";
  if (n.attrs.post_op == PostOp::relu_max_pool) s += "+max_pool";
  return s;
}

}  // namespace kiln::internal
