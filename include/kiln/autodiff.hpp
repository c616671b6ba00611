// Reverse-mode automatic differentiation over graphs.
#pragma once

#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln {

/// Appends the backward graph of `loss` (any shape; seeded with ones) and returns
/// d loss / d w for each w in `wrt`. A w that loss does not depend on gets a zero
/// gradient of its shape. Throws ValueError for values of another graph, DTypeError for a
/// non-float loss; the graph is unchanged when it throws. Gradient nodes carry the scope
/// (Node::scope) of the forward node they differentiate.
KILN_API std::vector<Value> grad(Value loss, const std::vector<Value>& wrt);

}  // namespace kiln
