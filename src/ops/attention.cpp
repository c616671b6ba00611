// Attention and exact GELU: shape rules and builders. The sequence utilities
// (sequence_mask, last_valid_step, sinusoidal_positions) are in sequence_util.cpp; the
// builder of the training op gelu_backward is in autodiff/grad_attention.cpp.
#include <string>

#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

// attention(q, k, v[, key_mask]) -> [B, N, Tq, dv]
TensorDesc rule_attention(const RuleContext& c) {
  if (c.inputs.size() != 3 && c.inputs.size() != 4)
    c.fail("expects q, k, v and an optional key mask");
  for (std::size_t i = 0; i < c.inputs.size(); ++i) require_float(c, i);
  require_same_dtype(c);
  const Shape& q = c.inputs[0].shape;
  const Shape& k = c.inputs[1].shape;
  const Shape& v = c.inputs[2].shape;
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    c.fail("q, k and v must be [B, heads, T, d]");
  for (std::size_t i = 1; i < 4; ++i)
    if (q[i] <= 0 || k[i] <= 0 || v[i] <= 0) c.fail("only the batch dimension may be dynamic");
  if (!dims_match(q[0], k[0]) || !dims_match(q[0], v[0]) || q[1] != k[1] || q[1] != v[1])
    c.fail("q, k and v must have the same batch and heads");
  if (q[3] != k[3]) c.fail("q and k must have the same feature size d");
  if (k[2] != v[2]) c.fail("k and v must have the same number of steps");
  if (c.attrs.causal && q[2] != k[2]) c.fail("causal attention needs as many queries as keys");
  if (c.inputs.size() == 4) {
    const Shape& m = c.inputs[3].shape;
    if (m.rank() != 2 || !dims_match(m[0], q[0]) || m[1] != k[2])
      c.fail("key_mask must be [B, Tk]");
  }
  return {Shape{q[0], q[1], q[2], v[3]}, c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {

Value attention(Value q, Value k, Value v, const AttentionOptions& options, std::string name) {
  const char* op = "attention";
  internal::require_valid(q, op, "q");
  internal::require_valid(k, op, "k");
  internal::require_valid(v, op, "v");
  internal::require_same_graph(q, k, op);
  internal::require_same_graph(q, v, op);
  std::vector<Value> inputs{q, k, v};
  if (options.key_mask.valid()) {
    internal::require_same_graph(q, options.key_mask, op);
    inputs.push_back(options.key_mask);
  }
  Attrs a;
  a.causal = options.causal;
  a.alpha = options.scale;
  return q.graph().add(Op::attention, inputs, a, std::move(name));
}

Value gelu_erf(Value x, std::string name) {
  internal::require_valid(x, "gelu_erf", "x");
  return x.graph().add(Op::gelu, {x}, {}, std::move(name));
}

}  // namespace kiln
