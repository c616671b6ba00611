// Internal: the layout of the recurrent ops (lstm, gru and their backward primitives) as
// every kernel family sees it: the input checks on concrete shapes, the step counts read
// from `lengths` (validated, naming the node) and which steps of a row are valid.
// The packing is documented in kiln/ops.hpp ("Sequence ops") and docs/sequence.md.
// Header-only, so kiln_infer (forward kernels) and kiln (backward kernels) each carry it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "internal/op_info.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::internal {

/// The sizes of one recurrent node.
struct RecurrentGeometry {
  int gates = 4;          ///< G: 4 (lstm) or 3 (gru)
  int packed = 6;         ///< width of the packed forward output in units of H: 6 or 5
  std::size_t fixed = 4;  ///< inputs before the optional lengths
  std::int64_t batch = 0, steps = 0, hidden = 0;
  bool has_lengths = false;
};

/// The geometry of a node of op lstm, gru, lstm_backward or gru_backward.
inline RecurrentGeometry recurrent_geometry(Op op) {
  RecurrentGeometry g;
  const bool lstm = op == Op::lstm || op == Op::lstm_backward;
  g.gates = lstm ? 4 : 3;
  g.packed = lstm ? 6 : 5;
  const bool backward = op == Op::lstm_backward || op == Op::gru_backward;
  g.fixed = backward ? (lstm ? 5 : 4) : 4;
  return g;
}

/// "" when a kernel can run the node with these concrete inputs and output, else why not.
/// Fills *geo. Inputs: lstm (xw, w_hh, h0, c0[, lengths]), gru (xw, w_hh, b_hh, h0[,
/// lengths]), lstm_backward (y, gy, w_hh, h0, c0[, lengths]), gru_backward (y, gy, w_hh,
/// h0[, lengths]).
inline std::string check_recurrent_node(const Node& node, std::span<const TensorDesc> in,
                                        const TensorDesc& out, RecurrentGeometry* geo) {
  RecurrentGeometry g = recurrent_geometry(node.op);
  const bool backward = node.op == Op::lstm_backward || node.op == Op::gru_backward;
  if (in.size() != g.fixed && in.size() != g.fixed + 1)
    return "expected " + std::to_string(g.fixed) + " or " + std::to_string(g.fixed + 1) +
           " inputs, got " + std::to_string(in.size());
  g.has_lengths = in.size() == g.fixed + 1;
  if (!is_floating(out.dtype)) return "output dtype is not float";
  for (std::size_t i = 0; i < g.fixed; ++i)
    if (in[i].dtype != out.dtype) return "input " + std::to_string(i) + " differs in dtype";
  if (g.has_lengths && !is_integer(in[g.fixed].dtype)) return "lengths must be i32 or i64";
  for (const auto& d : in)
    for (std::int64_t v : d.shape)
      if (v < 0) return "shapes must be concrete";
  const Shape& first = in[0].shape;
  const std::size_t w_at = backward ? 2 : 1;
  const Shape& w = in[w_at].shape;
  constexpr std::int64_t max_dim = std::int64_t{1} << 40;  // as the shape rules
  if (first.rank() != 3 || w.rank() != 2 || w[1] <= 0 || w[1] > max_dim || first[1] > max_dim ||
      w[0] != g.gates * w[1])
    return "bad xw / y or w_hh shape";
  g.batch = first[0];
  g.steps = first[1];
  g.hidden = w[1];
  const std::int64_t width = (backward ? g.packed : g.gates) * g.hidden;
  if (g.steps <= 0 || first[2] != width) return "xw / y has the wrong width";
  if (backward && in[1].shape != first) return "gy must have y's shape";
  const Shape state{g.batch, g.hidden};
  const std::size_t first_state = backward ? 3 : (g.gates == 4 ? 2 : 3);
  for (std::size_t i = first_state; i < g.fixed; ++i)
    if (in[i].shape != state) return "states must be [B, H]";
  if (node.op == Op::gru && in[2].shape != Shape{3 * g.hidden}) return "b_hh must be [3H]";
  if (g.has_lengths && in[g.fixed].shape != Shape{g.batch}) return "lengths must be [B]";
  Shape expected;
  if (node.op == Op::lstm || node.op == Op::gru)
    expected = Shape{g.batch, g.steps, g.packed * g.hidden};
  else if (node.op == Op::lstm_backward)
    expected = Shape{g.batch, g.steps + 1, 4 * g.hidden};
  else
    expected = Shape{g.batch, 2 * g.steps + 1, 3 * g.hidden};
  if (out.shape != expected)
    return "output shape " + out.shape.str() + ", expected " + expected.str();
  if (geo != nullptr) *geo = g;
  return {};
}

/// The geometry of a call on concrete tensors; throws ValueError naming the node when the
/// tensors do not fit it.
inline RecurrentGeometry recurrent_call_geometry(const Node& node, std::span<const Tensor> inputs,
                                                 const Tensor& output) {
  std::vector<TensorDesc> in;
  for (const Tensor& t : inputs) in.push_back({t.shape(), t.dtype()});
  RecurrentGeometry g;
  const std::string problem = check_recurrent_node(node, in, {output.shape(), output.dtype()}, &g);
  if (!problem.empty())
    throw ValueError(std::string(op_name(node.op)) + " '" + node.name + "': " + problem);
  return g;
}

/// The number of valid steps of every row: lengths (each checked to lie in [0, T]; a
/// ValueError names the node otherwise) or T for all rows.
inline std::vector<std::int64_t> recurrent_step_counts(const Node& node,
                                                       std::span<const Tensor> inputs,
                                                       const RecurrentGeometry& g) {
  std::vector<std::int64_t> n(static_cast<std::size_t>(g.batch), g.steps);
  if (!g.has_lengths) return n;
  const Tensor& len = inputs[g.fixed];
  for (std::int64_t b = 0; b < g.batch; ++b) {
    const std::int64_t v =
        len.dtype() == DType::i32 ? len.data<std::int32_t>()[b] : len.data<std::int64_t>()[b];
    if (v < 0 || v > g.steps)
      throw ValueError(std::string(op_name(node.op)) + " '" + node.name + "': lengths[" +
                       std::to_string(b) + "] = " + std::to_string(v) + " is outside [0, " +
                       std::to_string(g.steps) + "]");
    n[static_cast<std::size_t>(b)] = v;
  }
  return n;
}

}  // namespace kiln::internal
