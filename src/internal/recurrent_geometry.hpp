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

/// nullptr when a kernel can run the node with these concrete inputs and output, else why
/// not. Fills *geo. Inputs: lstm (xw, w_hh, h0, c0[, lengths]), gru (xw, w_hh, b_hh, h0[,
/// lengths]), lstm_backward (y, gy, w_hh, h0, c0[, lengths]), gru_backward (y, gy, w_hh,
/// h0[, lengths]). (Plain messages: this code is in kiln_infer, which must stay small.)
inline const char* recurrent_problem(const Node& node, std::span<const TensorDesc> in,
                                     const TensorDesc& out, RecurrentGeometry* geo) {
  RecurrentGeometry g = recurrent_geometry(node.op);
  const bool backward = node.op == Op::lstm_backward || node.op == Op::gru_backward;
  if (in.size() != g.fixed && in.size() != g.fixed + 1) return "wrong number of inputs";
  g.has_lengths = in.size() == g.fixed + 1;
  if (!is_floating(out.dtype)) return "output dtype is not float";
  for (std::size_t i = 0; i < g.fixed; ++i)
    if (in[i].dtype != out.dtype) return "inputs and output differ in dtype";
  if (g.has_lengths && !is_integer(in[g.fixed].dtype)) return "lengths must be i32 or i64";
  for (const auto& d : in)
    for (std::int64_t v : d.shape)
      if (v < 0) return "shapes must be concrete";
  const Shape& first = in[0].shape;
  const Shape& w = in[backward ? 2 : 1].shape;
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
  const std::size_t first_state = backward ? 3 : (g.gates == 4 ? 2 : 3);
  for (std::size_t i = first_state; i < g.fixed; ++i) {
    const Shape& st = in[i].shape;
    if (st.rank() != 2 || st[0] != g.batch || st[1] != g.hidden) return "states must be [B, H]";
  }
  if (node.op == Op::gru && (in[2].shape.rank() != 1 || in[2].shape[0] != 3 * g.hidden))
    return "b_hh must be [3H]";
  if (g.has_lengths && (in[g.fixed].shape.rank() != 1 || in[g.fixed].shape[0] != g.batch))
    return "lengths must be [B]";
  const bool forward = node.op == Op::lstm || node.op == Op::gru;
  const std::int64_t out_steps =
      forward ? g.steps : (node.op == Op::lstm_backward ? g.steps + 1 : 2 * g.steps + 1);
  const std::int64_t out_width = (forward ? g.packed : g.gates) * g.hidden;
  const Shape& o = out.shape;
  if (o.rank() != 3 || o[0] != g.batch || o[1] != out_steps || o[2] != out_width)
    return "wrong output shape";
  if (geo != nullptr) *geo = g;
  return nullptr;
}

/// recurrent_problem as a Check ("" when fine).
inline std::string check_recurrent_node(const Node& node, std::span<const TensorDesc> in,
                                        const TensorDesc& out, RecurrentGeometry* geo) {
  const char* problem = recurrent_problem(node, in, out, geo);
  return problem == nullptr ? std::string() : std::string(problem);
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
