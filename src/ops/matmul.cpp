// matmul: shape rule and builder.
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

TensorDesc rule_matmul(const RuleContext& c) {
  if (c.inputs.size() < 2 || c.inputs.size() > 3) c.fail("expects a, b and an optional bias");
  require_same_dtype(c);
  require_float(c, 0);
  const Shape& a = c.inputs[0].shape;
  const Shape& b = c.inputs[1].shape;
  if (a.rank() < 2 || b.rank() < 2) c.fail("both operands need at least 2 dimensions");
  if (b.rank() != 2 && b.rank() != a.rank()) c.fail("b must be 2-D or have a's rank (batched)");
  const std::size_t ra = a.rank(), rb = b.rank();
  const auto m = c.attrs.transpose_a ? a[ra - 1] : a[ra - 2];
  const auto ka = c.attrs.transpose_a ? a[ra - 2] : a[ra - 1];
  const auto kb = c.attrs.transpose_b ? b[rb - 1] : b[rb - 2];
  const auto n = c.attrs.transpose_b ? b[rb - 2] : b[rb - 1];
  if (!dims_match(ka, kb)) c.fail("inner dimensions differ");
  std::vector<std::int64_t> out(a.begin(), a.end() - 2);
  if (rb == ra)
    for (std::size_t i = 0; i + 2 < ra; ++i)
      if (!dims_match(a[i], b[i])) c.fail("batch dimensions differ");
  out.push_back(m);
  out.push_back(n);
  if (c.inputs.size() == 3) {
    const Shape& bias = c.inputs[2].shape;
    if (rb != 2 || bias.rank() != 1 || !dims_match(bias[0], n))
      c.fail("a bias needs a 2-D b and shape [" + std::to_string(n) + "]");
  }
  return {Shape(out), c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {

Value matmul(Value a, Value b, MatmulOptions opts, std::string name) {
  internal::require_valid(a, "matmul", "a");
  internal::require_valid(b, "matmul", "b");
  internal::require_same_graph(a, b, "matmul");
  Attrs attrs;
  attrs.transpose_a = opts.transpose_a;
  attrs.transpose_b = opts.transpose_b;
  return a.graph().add(Op::matmul, {a, b}, attrs, std::move(name));
}

}  // namespace kiln
