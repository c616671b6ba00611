// Layer normalisation over the last axis: shape rules of layer_norm and layer_norm_backward
// and the forward builder. The builder of the training op layer_norm_backward and the
// backward rule are in autodiff/grad_layer_norm.cpp.
#include <cmath>
#include <string>

#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {
namespace {

/// x [..., D] with a static D > 0 and a usable eps; returns D.
std::int64_t require_rows(const RuleContext& c) {
  require_float(c, 0);
  const Shape& x = c.inputs[0].shape;
  if (x.rank() == 0) c.fail("x must have at least one axis (normalised over the last)");
  const std::int64_t d = x[x.rank() - 1];
  if (d <= 0) c.fail("x's last dim must be static and positive");
  if (!(c.attrs.eps >= 0.0f) || !std::isfinite(c.attrs.eps)) c.fail("eps must be finite and >= 0");
  return d;
}

void require_per_feature(const RuleContext& c, std::size_t i, std::int64_t d, const char* what) {
  const Shape& p = c.inputs[i].shape;
  if (p.rank() != 1 || p[0] != d)
    c.fail(std::string(what) + " must be [" + std::to_string(d) + "], x's last dim");
}

}  // namespace

// layer_norm(x[, gamma, beta]) -> x's shape
TensorDesc rule_layer_norm(const RuleContext& c) {
  if (c.inputs.size() != 1 && c.inputs.size() != 3) c.fail("expects x, or x, gamma and beta");
  require_same_dtype(c);
  const std::int64_t d = require_rows(c);
  if (c.inputs.size() == 3) {
    require_per_feature(c, 1, d, "gamma");
    require_per_feature(c, 2, d, "beta");
  }
  return c.inputs[0];
}

// layer_norm_backward(x[, gamma], gy) -> x's shape
TensorDesc rule_layer_norm_backward(const RuleContext& c) {
  if (c.inputs.size() != 2 && c.inputs.size() != 3) c.fail("expects x, an optional gamma, gy");
  require_same_dtype(c);
  const std::int64_t d = require_rows(c);
  if (c.inputs.size() == 3) require_per_feature(c, 1, d, "gamma");
  const Shape& x = c.inputs[0].shape;
  const Shape& gy = c.inputs.back().shape;
  if (gy.rank() != x.rank()) c.fail("gy must have x's shape");
  for (std::size_t i = 0; i < x.rank(); ++i)
    if (!dims_match(gy[i], x[i])) c.fail("gy must have x's shape");
  return c.inputs[0];
}

}  // namespace kiln::internal

namespace kiln {

Value layer_norm(Value x, Value gamma, Value beta, float eps, std::string name) {
  const char* op = "layer_norm";
  internal::require_valid(x, op, "x");
  if (gamma.valid() != beta.valid())
    throw ValueError("layer_norm: gamma and beta must be given together (node '" + name + "', x '" +
                     x.name() + "')");
  std::vector<Value> inputs{x};
  if (gamma.valid()) {
    internal::require_same_graph(x, gamma, op);
    internal::require_same_graph(x, beta, op);
    inputs.push_back(gamma);
    inputs.push_back(beta);
  }
  Attrs a;
  a.eps = eps;
  return x.graph().add(Op::layer_norm, inputs, a, std::move(name));
}

}  // namespace kiln
