// Backward rules of attention and gelu, and the builder of the training op gelu_backward.
//
// attention recomputes the probabilities P with forward ops (S = q k^T * scale, the masks as
// a -1e30 bias, which exp turns into exact zeros, softmax, and rows without any allowed key
// zeroed as the kernels do), then
//   dV = P^T dY, dP = dY V^T, dS = P * (dP - rowsum(dP * P)),
//   dQ = dS K * scale, dK = dS^T (Q * scale).
// Masked keys and empty rows have P = 0, hence dS = 0: no gradient flows through them.
#include <cmath>
#include <string>
#include <vector>

#include "autodiff/grad_rules.hpp"
#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln::internal {
namespace {

/// Added to the scores of disallowed keys: exp(s - 1e30 - max) is exactly 0 in f32 and f64.
constexpr double masked_bias = 1e30;

}  // namespace

std::vector<Value> g_attention(const GradContext& c) {
  const Value q = c.inputs[0], k = c.inputs[1], v = c.inputs[2];
  const Shape& qs = q.shape();
  const std::int64_t tq = qs[2], tk = k.shape()[2], d = qs[3];
  const double scale = c.node.attrs.alpha != 0.0f ? static_cast<double>(c.node.attrs.alpha)
                                                  : 1.0 / std::sqrt(static_cast<double>(d));
  // q * scale [B, N, Tq, d] once, rather than scaling s and dK (each [.., Tk] wide).
  const Value q_scaled = mul(q, scale);
  Value s = matmul(q_scaled, k, {.transpose_b = true});  // [B, N, Tq, Tk]
  // Each mask is a bias added to s on its own (so only the bias is broadcast, with s giving
  // the batch size).
  const bool has_mask = c.inputs.size() == 4;
  Value valid;  // [B, Tk]: 1 for a key to attend to
  if (has_mask) {
    const Value mask = c.inputs[3];
    valid = sub(1.0, equal(mask, scalar_like(mask, 0.0)));
    s = add(s, reshape(mul(sub(valid, 1.0), masked_bias), Shape{-1, 1, 1, tk}));
  }
  auto triangle = [&](bool transposed, double inside, double outside) {
    std::vector<double> t(static_cast<std::size_t>(tq * tk));
    for (std::int64_t i = 0; i < tq; ++i)
      for (std::int64_t j = 0; j < tk; ++j)
        t[static_cast<std::size_t>(transposed ? j * tq + i : i * tk + j)] =
            j <= i ? inside : outside;
    const Shape shape = transposed ? Shape{tk, tq} : Shape{1, 1, tq, tk};
    return q.graph().constant(Tensor::from(t, shape).to(q.dtype()));
  };
  if (c.node.attrs.causal) s = add(s, triangle(false, 0.0, -masked_bias));
  Value p = softmax(s, -1);
  // Only a key mask can leave a query without keys (causal alone always keeps key 0):
  // rows whose count of allowed keys is 0 are zeroed.
  if (has_mask) {
    const Value count = c.node.attrs.causal
                            ? reshape(matmul(valid, triangle(true, 1.0, 0.0)), Shape{-1, 1, tq, 1})
                            : reshape(sum(valid, {-1}, true), Shape{-1, 1, 1, 1});
    p = mul(p, step(count));
  }
  const Value gv = matmul(p, c.gy, {.transpose_a = true});
  const Value gp = matmul(c.gy, v, {.transpose_b = true});
  const Value gs = softmax_backward(p, gp, -1);  // p * (dP - rowsum(dP * p))
  const Value gq = mul(matmul(gs, k), scale);
  const Value gk = matmul(gs, q_scaled, {.transpose_a = true});
  std::vector<Value> out{gq, gk, gv};
  if (has_mask) out.emplace_back();  // the mask gets no gradient
  return out;
}

std::vector<Value> g_gelu(const GradContext& c) { return {gelu_backward(c.inputs[0], c.gy)}; }

}  // namespace kiln::internal

namespace kiln {

Value gelu_backward(Value x, Value gy, std::string name) {
  internal::require_valid(x, "gelu_backward", "x");
  internal::require_valid(gy, "gelu_backward", "gy");
  internal::require_same_graph(x, gy, "gelu_backward");
  internal::ensure_training_kernels();
  return x.graph().add(Op::gelu_backward, {x, gy}, {}, std::move(name));
}

}  // namespace kiln
