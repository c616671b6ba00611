// The recurrent layers nn::lstm and nn::gru: stacked, bidirectional, variable-length
// (lengths), with initial states, named as PyTorch's nn.LSTM / nn.GRU parameters.
//
// Per layer and direction: the input projection x @ W_ih^T + b_ih is ONE matmul over all
// B*T steps ([B*T, in] x [in, G*H]; for an LSTM, b_hh is added to it too, since it enters
// the gates the same way), then the recurrent op (kiln::lstm / kiln::gru) runs the
// recurrence and the layer slices h_t (and the last states) out of its packed output.
#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "nn/layer_util.hpp"

namespace kiln::nn {
namespace {

struct Cell {
  const char* kind;  // "lstm" or "gru"
  int gates;         // G
  int packed;        // width of the op's packed output in units of H
  int h_at;          // where h_t starts in it (in units of H)
  int c_at;          // where c_t starts (lstm), -1 for gru
};

constexpr Cell lstm_cell{"lstm", 4, 6, 5, 4};
constexpr Cell gru_cell{"gru", 3, 5, 4, -1};

/// [B, T] mask (x's dtype), 1 where t < lengths[b]: one_hot(lengths, T + 1) times the
/// constant [T + 1, T] with 1 where s > t.
Value step_mask(Graph& graph, Value lengths, std::int64_t steps, DType dtype,
                const std::string& prefix) {
  std::vector<double> upper(static_cast<std::size_t>((steps + 1) * steps), 0.0);
  for (std::int64_t s = 0; s <= steps; ++s)
    for (std::int64_t t = 0; t < s; ++t) upper[static_cast<std::size_t>(s * steps + t)] = 1.0;
  const Value u =
      graph.constant(Tensor::from(upper, Shape{steps + 1, steps}).to(dtype), prefix + ".steps");
  return matmul(one_hot(lengths, steps + 1, dtype), u, {}, prefix + ".mask");
}

/// The initial state [B, H] of layer-direction k: states[k] or zeros shaped like x's batch.
Value initial_state(Graph& graph, Value states, std::int64_t k, Value x, std::int64_t hidden,
                    const std::string& name) {
  if (states.valid()) return reshape(slice(states, 0, k, k + 1), Shape{-1, hidden}, name);
  const Value zero = graph.constant(Tensor::zeros(Shape{1, 1, hidden}, x.dtype()), name + ".zero");
  return reshape(expand(zero, Shape{batch, 1, hidden}, x), Shape{-1, hidden}, name);
}

void check_states(Value states, const char* what, std::int64_t count, std::int64_t hidden, Value x,
                  const std::string& prefix, const char* kind) {
  if (!states.valid()) return;
  if (&states.graph() != &x.graph())
    throw ValueError(std::string("nn::") + kind + " '" + prefix + "': " + what +
                     " belongs to another graph");
  const Shape& s = states.shape();
  const Shape& xs = x.shape();
  const bool batch_ok = s.rank() == 3 && (s[1] == xs[0] || s[1] < 0 || xs[0] < 0);
  if (s.rank() != 3 || s[0] != count || s[2] != hidden || !batch_ok)
    throw ShapeError(std::string("nn::") + kind + " '" + prefix + "': " + what + " '" +
                     states.name() + "' has shape " + s.str() + ", expected [" +
                     std::to_string(count) + ", B, " + std::to_string(hidden) + "]");
  if (states.dtype() != x.dtype())
    throw DTypeError(std::string("nn::") + kind + " '" + prefix + "': " + what +
                     " must have the input's dtype");
}

RecurrentOutput recurrent_layer(Value x, const RecurrentLayerOptions& o, const Cell& cell) {
  Graph& graph = detail::graph_of(x, cell.kind, "input");
  const std::int64_t features = detail::last_dim(x, cell.kind);
  const Shape& xs = x.shape();
  const std::string given = o.name.empty() ? std::string() : " (layer '" + o.name + "')";
  if (xs.rank() != 3 || xs[1] <= 0)
    throw ShapeError(std::string("nn::") + cell.kind + ": input '" + x.name() + "' has shape " +
                     xs.str() + "; expected [B, T, F] with static T > 0" + given);
  if (o.hidden <= 0)
    throw ValueError(std::string("nn::") + cell.kind + ": hidden must be > 0, got " +
                     std::to_string(o.hidden) + given);
  if (o.layers <= 0)
    throw ValueError(std::string("nn::") + cell.kind + ": layers must be > 0, got " +
                     std::to_string(o.layers) + given);
  if (cell.c_at < 0 && o.c0.valid())
    throw ValueError(std::string("nn::gru: c0 is for an LSTM only") + given);
  const std::string prefix = detail::layer_prefix(graph, o.name, cell.kind);
  ScopeGuard scope = graph.scope(prefix);
  const std::int64_t steps = xs[1], hid = o.hidden, gh = cell.gates * hid;
  const std::int64_t dirs = o.bidirectional ? 2 : 1;
  check_states(o.h0, "h0", o.layers * dirs, hid, x, prefix, cell.kind);
  check_states(o.c0, "c0", o.layers * dirs, hid, x, prefix, cell.kind);
  if (o.lengths.valid()) {
    if (&o.lengths.graph() != &graph || !is_integer(o.lengths.dtype()) ||
        o.lengths.shape().rank() != 1)
      throw ValueError(std::string("nn::") + cell.kind + " '" + prefix + "': lengths must be " +
                       "an integer [B] value of the input's graph");
  }
  const DType dtype = x.dtype();
  const double bound = 1.0 / std::sqrt(static_cast<double>(hid));
  const Initializer init = o.init ? o.init : uniform(-bound, bound);
  auto param = [&](const std::string& name, Shape shape) {
    return graph.parameter(name, detail::initial_value(init, shape, dtype, o.rng, o.seed, name));
  };
  const Value mask = o.lengths.valid() ? reshape(step_mask(graph, o.lengths, steps, dtype, prefix),
                                                 Shape{-1, steps, 1})
                                       : Value{};

  RecurrentOutput result;
  std::vector<Value> h_last, c_last;
  Value input = x;
  std::int64_t in = features;
  for (std::int64_t layer = 0; layer < o.layers; ++layer) {
    std::vector<Value> outputs;
    for (std::int64_t d = 0; d < dirs; ++d) {
      const std::string sfx = "_l" + std::to_string(layer) + (d == 1 ? "_reverse" : "");
      const std::string p = prefix + ".";
      const Value w_ih = param(p + "weight_ih" + sfx, Shape{gh, in});
      const Value w_hh = param(p + "weight_hh" + sfx, Shape{gh, hid});
      Value b_ih, b_hh, bias;
      if (o.use_bias) {
        b_ih = param(p + "bias_ih" + sfx, Shape{gh});
        b_hh = param(p + "bias_hh" + sfx, Shape{gh});
        // Created before the matmul, so the fusion pass may fold it into the GEMM.
        bias = cell.c_at >= 0 ? add(b_ih, b_hh, p + "bias" + sfx) : b_ih;
      } else if (cell.c_at < 0) {
        b_hh = graph.constant(Tensor::zeros(Shape{gh}, dtype), p + "bias_hh" + sfx);
      }
      Value xw = matmul(reshape(input, Shape{-1, in}), w_ih, {.transpose_b = true},
                        p + "input_projection" + sfx);
      if (bias.valid()) xw = add(xw, bias);
      xw = reshape(xw, Shape{-1, steps, gh}, p + "xw" + sfx);
      const std::int64_t k = layer * dirs + d;
      const Value h0 = initial_state(graph, o.h0, k, x, hid, p + "h0" + sfx);
      const RecurrentOptions ro{.lengths = o.lengths, .reverse = d == 1};
      Value y;
      if (cell.c_at >= 0) {
        const Value c0 = initial_state(graph, o.c0, k, x, hid, p + "c0" + sfx);
        y = kiln::lstm(xw, w_hh, h0, c0, ro, p + "lstm" + sfx);
      } else {
        y = kiln::gru(xw, w_hh, b_hh, h0, ro, p + "gru" + sfx);
      }
      Value seq = slice(y, 2, cell.h_at * hid, (cell.h_at + 1) * hid);
      if (mask.valid()) seq = mul(seq, mask);
      outputs.push_back(seq);
      // The last state: step T-1 going forward, step 0 in reverse (the packing carries
      // each row's last valid state there).
      const std::int64_t at = d == 1 ? 0 : steps - 1;
      const Value last = slice(y, 1, at, at + 1);
      auto state = [&](int offset) {
        return reshape(slice(last, 2, offset * hid, (offset + 1) * hid), Shape{1, -1, hid});
      };
      h_last.push_back(state(cell.h_at));
      if (cell.c_at >= 0) c_last.push_back(state(cell.c_at));
    }
    input = outputs.size() == 1 ? outputs[0]
                                : concat(outputs, 2, prefix + ".output" + std::to_string(layer));
    in = dirs * hid;
  }
  result.sequence = input;
  result.h_n = h_last.size() == 1 ? h_last[0] : concat(h_last, 0, prefix + ".h_n");
  if (!c_last.empty())
    result.c_n = c_last.size() == 1 ? c_last[0] : concat(c_last, 0, prefix + ".c_n");
  return result;
}

}  // namespace

RecurrentOutput lstm(Value x, const RecurrentLayerOptions& options) {
  return recurrent_layer(x, options, lstm_cell);
}

RecurrentOutput gru(Value x, const RecurrentLayerOptions& options) {
  return recurrent_layer(x, options, gru_cell);
}

}  // namespace kiln::nn
