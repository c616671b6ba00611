// Backward rules of lstm and gru, and the builders of their backward primitives (training
// ops, whose kernels only Kiln::kiln carries).
//
// The primitive walks back through the steps once and returns the gradients with respect
// to the gate pre-activations (= xw's gradient) and the initial states; everything else is
// forward ops over all steps at once: dW_hh is ONE matmul, d(pre-activations)^T @ h_{t-1},
// over all B*T rows, with h_{t-1} read from the packed output (shifted by one step, h0 in
// front; in reverse, behind: there the padded steps hold h0, which is exactly the previous
// state of a row's first step). Padded steps have zero gradient, so what they hold does not
// matter there.
#include <string>

#include "autodiff/grad_rules.hpp"
#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln {
namespace {

Value recurrent_training_op(Op op, std::vector<Value> inputs, const RecurrentOptions& options,
                            std::string name) {
  const std::string what(op_name(op));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    internal::require_valid(inputs[i], what.c_str(), ("input " + std::to_string(i)).c_str());
    internal::require_same_graph(inputs[0], inputs[i], what.c_str());
  }
  if (options.lengths.valid()) {
    internal::require_same_graph(inputs[0], options.lengths, what.c_str());
    inputs.push_back(options.lengths);
  }
  internal::ensure_training_kernels();
  Attrs a;
  a.reverse = options.reverse;
  return inputs[0].graph().add(op, inputs, a, std::move(name));
}

}  // namespace

Value lstm_backward(Value y, Value gy, Value w_hh, Value h0, Value c0,
                    const RecurrentOptions& options, std::string name) {
  return recurrent_training_op(Op::lstm_backward, {y, gy, w_hh, h0, c0}, options, std::move(name));
}

Value gru_backward(Value y, Value gy, Value w_hh, Value h0, const RecurrentOptions& options,
                   std::string name) {
  return recurrent_training_op(Op::gru_backward, {y, gy, w_hh, h0}, options, std::move(name));
}

}  // namespace kiln

namespace kiln::internal {
namespace {

RecurrentOptions options_of(const GradContext& c, std::size_t fixed) {
  RecurrentOptions o;
  if (c.inputs.size() > fixed) o.lengths = c.inputs[fixed];
  o.reverse = c.node.attrs.reverse;
  return o;
}

/// h_{t-1} of every step, [B, T, H]: the packed h (at [first, first + H) of y's last axis)
/// shifted by one step, h0 at the end the recurrence starts from.
Value previous_states(const GradContext& c, Value h0, std::int64_t first) {
  const std::int64_t steps = c.y.shape()[1];
  const std::int64_t hid = h0.shape()[1];
  const Value h_seq = slice(c.y, 2, first, first + hid);
  const Value start = reshape(h0, Shape{-1, 1, hid});
  if (steps == 1) return start;
  if (c.node.attrs.reverse) return concat({slice(h_seq, 1, 1, steps), start}, 1);
  return concat({start, slice(h_seq, 1, 0, steps - 1)}, 1);
}

/// sum over all steps of d(pre-activations)_t^T @ h_{t-1}: one [G*H, B*T] x [B*T, H] GEMM.
Value weight_gradient(Value d_pre, Value h_prev) {
  const std::int64_t width = d_pre.shape()[2], hid = h_prev.shape()[2];
  return matmul(reshape(d_pre, Shape{-1, width}), reshape(h_prev, Shape{-1, hid}),
                {.transpose_a = true});
}

}  // namespace

std::vector<Value> g_lstm(const GradContext& c) {
  const Value w = c.inputs[1], h0 = c.inputs[2], c0 = c.inputs[3];
  const std::int64_t steps = c.y.shape()[1], hid = w.shape()[1];
  const Value d = lstm_backward(c.y, c.gy, w, h0, c0, options_of(c, 4));
  const Value d_pre = slice(d, 1, 0, steps);
  const Value last = reshape(slice(d, 1, steps, steps + 1), Shape{-1, 4 * hid});
  std::vector<Value> g(c.inputs.size());
  g[0] = d_pre;
  g[1] = weight_gradient(d_pre, previous_states(c, h0, 5 * hid));
  g[2] = slice(last, 1, 0, hid);
  g[3] = slice(last, 1, hid, 2 * hid);
  return g;
}

std::vector<Value> g_gru(const GradContext& c) {
  const Value w = c.inputs[1], h0 = c.inputs[3];
  const std::int64_t steps = c.y.shape()[1], hid = w.shape()[1];
  const Value d = gru_backward(c.y, c.gy, w, h0, options_of(c, 4));
  const Value d_hw = slice(d, 1, steps, 2 * steps);
  const Value last = reshape(slice(d, 1, 2 * steps, 2 * steps + 1), Shape{-1, 3 * hid});
  std::vector<Value> g(c.inputs.size());
  g[0] = slice(d, 1, 0, steps);
  g[1] = weight_gradient(d_hw, previous_states(c, h0, 4 * hid));
  g[2] = sum(d_hw, {0, 1});
  g[3] = slice(last, 1, 0, hid);
  return g;
}

}  // namespace kiln::internal
