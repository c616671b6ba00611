// The recurrent ops (lstm, gru and their backward primitives): shape rules and the forward
// builders (lstm_backward and gru_backward, training ops, are built in
// src/autodiff/grad_recurrent.cpp, part of Kiln::kiln).
// The packing of their outputs is documented in kiln/ops.hpp and docs/sequence.md.
#include <string>

#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {
namespace {

/// H and T above this are refused, so that 6H, 2T + 1 and their products with small
/// factors cannot overflow int64 (a crafted model file may hold any dims).
constexpr std::int64_t max_recurrent_dim = std::int64_t{1} << 40;

bool too_large(std::int64_t d) { return d > max_recurrent_dim; }

/// Checks the inputs shared by the forward ops: xw [B, T, G*H] (float), w_hh [G*H, H], the
/// states [B, H] at `states` (count of them) and optional lengths [B] (integer) after them.
/// Returns H.
std::int64_t check_recurrent(const RuleContext& c, std::int64_t gates, std::size_t first_state,
                             std::size_t states) {
  const std::size_t fixed = first_state + states;
  if (c.inputs.size() != fixed && c.inputs.size() != fixed + 1)
    c.fail("expects " + std::to_string(fixed) + " inputs, or " + std::to_string(fixed + 1) +
           " with lengths");
  for (std::size_t i = 0; i < fixed; ++i) require_float(c, i);
  for (std::size_t i = 1; i < fixed; ++i)
    if (c.inputs[i].dtype != c.inputs[0].dtype) c.fail_dtype("inputs must have the same dtype");
  const Shape& xw = c.inputs[0].shape;
  const Shape& w = c.inputs[1].shape;
  if (xw.rank() != 3) c.fail("xw must be [B, T, " + std::to_string(gates) + "H]");
  if (w.rank() != 2 || w[0] < 0 || w[1] <= 0 || too_large(w[1]) || w[0] != gates * w[1])
    c.fail("w_hh must be [" + std::to_string(gates) + "H, H]");
  const std::int64_t h = w[1];
  if (xw[1] <= 0 || too_large(xw[1]) || xw[2] != gates * h)
    c.fail("xw must be [B, T, " + std::to_string(gates) + "H] with T > 0 and w_hh's H");
  for (std::size_t i = first_state; i < fixed; ++i) {
    const Shape& s = c.inputs[i].shape;
    if (s.rank() != 2 || !dims_match(s[0], xw[0]) || s[1] != h)
      c.fail("input " + std::to_string(i) + " (a state) must be [B, H]");
  }
  if (c.inputs.size() == fixed + 1) {
    require_integer(c, fixed);
    const Shape& len = c.inputs[fixed].shape;
    if (len.rank() != 1 || !dims_match(len[0], xw[0])) c.fail("lengths must be [B]");
  }
  return h;
}

/// y and gy both [B, T, P]; the batch may be dynamic in one and concrete in the other (a
/// gradient fed as an input, or reaching y's node from a concrete loss weight).
bool same_packed_shape(const Shape& y, const Shape& gy) {
  return y.rank() == 3 && gy.rank() == 3 && dims_match(y[0], gy[0]) && y[1] == gy[1] &&
         y[2] == gy[2];
}

}  // namespace

// lstm(xw, w_hh, h0, c0[, lengths]) -> [B, T, 6H]
TensorDesc rule_lstm(const RuleContext& c) {
  const std::int64_t h = check_recurrent(c, 4, 2, 2);
  const Shape& xw = c.inputs[0].shape;
  return {Shape{xw[0], xw[1], 6 * h}, c.inputs[0].dtype};
}

// lstm_backward(y, gy, w_hh, h0, c0[, lengths]) -> [B, T + 1, 4H]
TensorDesc rule_lstm_backward(const RuleContext& c) {
  if (c.inputs.size() != 5 && c.inputs.size() != 6)
    c.fail("expects y, gy, w_hh, h0, c0 and optional lengths");
  const Shape& y = c.inputs[0].shape;
  if (!same_packed_shape(y, c.inputs[1].shape)) c.fail("y and gy must be the same [B, T, 6H]");
  // Checked as the forward op would be, with y standing in for xw's [B, T, *].
  std::vector<TensorDesc> fwd(c.inputs.begin() + 1, c.inputs.end());
  const Shape& w = c.inputs[2].shape;
  if (w.rank() != 2 || w[1] <= 0 || too_large(w[1]) || y[2] != 6 * w[1])
    c.fail("y must be [B, T, 6H] with w_hh's H");
  fwd[0] = {Shape{y[0], y[1], 4 * w[1]}, c.inputs[0].dtype};
  RuleContext inner{c.op, c.node_name, c.attrs, fwd};
  const std::int64_t h = check_recurrent(inner, 4, 2, 2);
  return {Shape{y[0], y[1] + 1, 4 * h}, c.inputs[0].dtype};
}

// gru(xw, w_hh, b_hh, h0[, lengths]) -> [B, T, 5H]
TensorDesc rule_gru(const RuleContext& c) {
  const std::int64_t h = check_recurrent(c, 3, 3, 1);
  const Shape& b = c.inputs[2].shape;
  if (b.rank() != 1 || b[0] != 3 * h) c.fail("b_hh must be [3H]");
  const Shape& xw = c.inputs[0].shape;
  return {Shape{xw[0], xw[1], 5 * h}, c.inputs[0].dtype};
}

// gru_backward(y, gy, w_hh, h0[, lengths]) -> [B, 2T + 1, 3H]
TensorDesc rule_gru_backward(const RuleContext& c) {
  if (c.inputs.size() != 4 && c.inputs.size() != 5)
    c.fail("expects y, gy, w_hh, h0 and optional lengths");
  const Shape& y = c.inputs[0].shape;
  if (!same_packed_shape(y, c.inputs[1].shape)) c.fail("y and gy must be the same [B, T, 5H]");
  const Shape& w = c.inputs[2].shape;
  if (w.rank() != 2 || w[1] <= 0 || too_large(w[1]) || y[2] != 5 * w[1])
    c.fail("y must be [B, T, 5H] with w_hh's H");
  std::vector<TensorDesc> fwd(c.inputs.begin() + 1, c.inputs.end());
  fwd[0] = {Shape{y[0], y[1], 3 * w[1]}, c.inputs[0].dtype};
  RuleContext inner{c.op, c.node_name, c.attrs, fwd};
  const std::int64_t h = check_recurrent(inner, 3, 2, 1);
  return {Shape{y[0], 2 * y[1] + 1, 3 * h}, c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {
namespace {

Value recurrent_node(Op op, std::vector<Value> inputs, const RecurrentOptions& options,
                     std::string name) {
  const char* what = op_name(op).data();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    internal::require_valid(inputs[i], what, ("input " + std::to_string(i)).c_str());
    internal::require_same_graph(inputs[0], inputs[i], what);
  }
  if (options.lengths.valid()) {
    internal::require_same_graph(inputs[0], options.lengths, what);
    inputs.push_back(options.lengths);
  }
  Attrs a;
  a.reverse = options.reverse;
  return inputs[0].graph().add(op, inputs, a, std::move(name));
}

}  // namespace

Value lstm(Value xw, Value w_hh, Value h0, Value c0, const RecurrentOptions& options,
           std::string name) {
  return recurrent_node(Op::lstm, {xw, w_hh, h0, c0}, options, std::move(name));
}

Value gru(Value xw, Value w_hh, Value b_hh, Value h0, const RecurrentOptions& options,
          std::string name) {
  return recurrent_node(Op::gru, {xw, w_hh, b_hh, h0}, options, std::move(name));
}

}  // namespace kiln
