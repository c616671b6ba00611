// Backward rule of layer_norm and the builder of the training op layer_norm_backward.
//
// x gets the explicit backward primitive; gamma and beta get sums over every axis but the
// last written with forward ops: dgamma = sum(gy * xhat), xhat the no-affine layer_norm of
// x (recomputed, one fused node), and dbeta = sum(gy).
#include <string>
#include <vector>

#include "autodiff/grad_rules.hpp"
#include "internal/kernel.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln::internal {

std::vector<Value> g_layer_norm(const GradContext& c) {
  const Value x = c.inputs[0];
  const float eps = c.node.attrs.eps;
  const bool affine = c.inputs.size() == 3;
  const Value gx = layer_norm_backward(x, affine ? c.inputs[1] : Value{}, c.gy, eps);
  if (!affine) return {gx};
  // Every axis but the last; a 1-D x is one row, whose per-feature terms need no sum.
  const auto rank = static_cast<std::int64_t>(x.shape().rank());
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i + 1 < rank; ++i) rows.push_back(i);
  auto row_sum = [&](Value v) { return rows.empty() ? v : sum(v, rows); };
  const Value xhat = layer_norm(x, {}, {}, eps);
  return {gx, row_sum(mul(c.gy, xhat)), row_sum(c.gy)};
}

}  // namespace kiln::internal

namespace kiln {

Value layer_norm_backward(Value x, Value gamma, Value gy, float eps, std::string name) {
  const char* op = "layer_norm_backward";
  internal::require_valid(x, op, "x");
  internal::require_valid(gy, op, "gy");
  internal::require_same_graph(x, gy, op);
  std::vector<Value> inputs{x};
  if (gamma.valid()) {
    internal::require_same_graph(x, gamma, op);
    inputs.push_back(gamma);
  }
  inputs.push_back(gy);
  internal::ensure_training_kernels();
  Attrs a;
  a.eps = eps;
  return x.graph().add(Op::layer_norm_backward, inputs, a, std::move(name));
}

}  // namespace kiln
