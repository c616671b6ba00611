// Reference lstm and gru (one layer direction each; the recurrence only, the input
// projection xw is computed by the caller). Row by row, step by step, in double:
//
// lstm: gates = xw[b, t] + h @ w_hh^T; i, f, o = sigmoid, g = tanh (PyTorch's order
//   i, f, g, o); c = f * c + i * g; h = o * tanh(c). Packed output [B, T, 6H]:
//   (i, f, g, o) | c | h.
// gru: hw = h @ w_hh^T + b_hh; r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z),
//   n = tanh(xw_n + r * hw_n); h = (1 - z) * n + z * h. Packed [B, T, 5H]: r | z | n |
//   hw_n | h.
// Row b runs steps 0 .. len-1 (reverse: len-1 .. 0) with len = lengths[b] (T without
// lengths). Its padded steps t >= len hold zero gates and the carried state: the last
// state going forward, the initial state in reverse.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "internal/recurrent_geometry.hpp"
#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_recurrent(const Node& node, Descs in, const TensorDesc& out) {
  return check_recurrent_node(node, in, out, nullptr);
}

double sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

/// The steps row `len` runs, in order.
std::vector<std::int64_t> step_order(std::int64_t len, bool reverse) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(len));
  for (std::int64_t s = 0; s < len; ++s)
    order[static_cast<std::size_t>(s)] = reverse ? len - 1 - s : s;
  return order;
}

template <class T>
void lstm_typed(const KernelArgs& args, const RecurrentGeometry& g,
                const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = g.steps, hid = g.hidden, gw = 4 * hid, pw = 6 * hid;
  const T* xw = args.inputs[0].data<T>();
  const T* w = args.inputs[1].data<T>();
  const T* h0 = args.inputs[2].data<T>();
  const T* c0 = args.inputs[3].data<T>();
  T* y = args.output.data<T>();
  std::vector<double> h(static_cast<std::size_t>(hid)), c(h.size()),
      a(static_cast<std::size_t>(gw));
  for (std::int64_t b = 0; b < g.batch; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    for (std::int64_t k = 0; k < hid; ++k) {
      h[static_cast<std::size_t>(k)] = static_cast<double>(h0[b * hid + k]);
      c[static_cast<std::size_t>(k)] = static_cast<double>(c0[b * hid + k]);
    }
    for (std::int64_t t : step_order(len, args.node.attrs.reverse)) {
      const T* x = xw + (b * steps + t) * gw;
      for (std::int64_t r = 0; r < gw; ++r) {
        double s = static_cast<double>(x[r]);
        for (std::int64_t k = 0; k < hid; ++k)
          s += static_cast<double>(w[r * hid + k]) * h[static_cast<std::size_t>(k)];
        a[static_cast<std::size_t>(r)] = s;
      }
      T* out = y + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const auto at = [&](std::int64_t gate) {
          return a[static_cast<std::size_t>(gate * hid + k)];
        };
        const double i = sigmoid(at(0)), f = sigmoid(at(1)), gg = std::tanh(at(2)),
                     o = sigmoid(at(3));
        double& ck = c[static_cast<std::size_t>(k)];
        ck = f * ck + i * gg;
        const double hk = o * std::tanh(ck);
        h[static_cast<std::size_t>(k)] = hk;
        out[k] = static_cast<T>(i);
        out[hid + k] = static_cast<T>(f);
        out[2 * hid + k] = static_cast<T>(gg);
        out[3 * hid + k] = static_cast<T>(o);
        out[4 * hid + k] = static_cast<T>(ck);
        out[5 * hid + k] = static_cast<T>(hk);
      }
    }
    // Padded steps: zero gates and the carried state (the initial state in reverse).
    for (std::int64_t t = len; t < steps; ++t) {
      T* out = y + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < gw; ++k) out[k] = T(0);
      for (std::int64_t k = 0; k < hid; ++k) {
        const bool initial = args.node.attrs.reverse;
        out[4 * hid + k] =
            initial ? c0[b * hid + k] : static_cast<T>(c[static_cast<std::size_t>(k)]);
        out[5 * hid + k] =
            initial ? h0[b * hid + k] : static_cast<T>(h[static_cast<std::size_t>(k)]);
      }
    }
  }
}

template <class T>
void gru_typed(const KernelArgs& args, const RecurrentGeometry& g,
               const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = g.steps, hid = g.hidden, gw = 3 * hid, pw = 5 * hid;
  const T* xw = args.inputs[0].data<T>();
  const T* w = args.inputs[1].data<T>();
  const T* bias = args.inputs[2].data<T>();
  const T* h0 = args.inputs[3].data<T>();
  T* y = args.output.data<T>();
  std::vector<double> h(static_cast<std::size_t>(hid)), hw(static_cast<std::size_t>(gw));
  for (std::int64_t b = 0; b < g.batch; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    for (std::int64_t k = 0; k < hid; ++k)
      h[static_cast<std::size_t>(k)] = static_cast<double>(h0[b * hid + k]);
    for (std::int64_t t : step_order(len, args.node.attrs.reverse)) {
      const T* x = xw + (b * steps + t) * gw;
      for (std::int64_t r = 0; r < gw; ++r) {
        double s = static_cast<double>(bias[r]);
        for (std::int64_t k = 0; k < hid; ++k)
          s += static_cast<double>(w[r * hid + k]) * h[static_cast<std::size_t>(k)];
        hw[static_cast<std::size_t>(r)] = s;
      }
      T* out = y + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const auto hw_at = [&](std::int64_t gate) {
          return hw[static_cast<std::size_t>(gate * hid + k)];
        };
        const double r = sigmoid(static_cast<double>(x[k]) + hw_at(0));
        const double z = sigmoid(static_cast<double>(x[hid + k]) + hw_at(1));
        const double n = std::tanh(static_cast<double>(x[2 * hid + k]) + r * hw_at(2));
        double& hk = h[static_cast<std::size_t>(k)];
        hk = (1.0 - z) * n + z * hk;
        out[k] = static_cast<T>(r);
        out[hid + k] = static_cast<T>(z);
        out[2 * hid + k] = static_cast<T>(n);
        out[3 * hid + k] = static_cast<T>(hw_at(2));
        out[4 * hid + k] = static_cast<T>(hk);
      }
    }
    for (std::int64_t t = len; t < steps; ++t) {
      T* out = y + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < 4 * hid; ++k) out[k] = T(0);
      for (std::int64_t k = 0; k < hid; ++k)
        out[4 * hid + k] = args.node.attrs.reverse ? h0[b * hid + k]
                                                   : static_cast<T>(h[static_cast<std::size_t>(k)]);
    }
  }
}

void run_lstm(const KernelArgs& args) {
  require(check_recurrent, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto lengths = recurrent_step_counts(args.node, args.inputs, g);
  with_float(args.output.dtype(), [&](auto tag) { lstm_typed<decltype(tag)>(args, g, lengths); });
}

void run_gru(const KernelArgs& args) {
  require(check_recurrent, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto lengths = recurrent_step_counts(args.node, args.inputs, g);
  with_float(args.output.dtype(), [&](auto tag) { gru_typed<decltype(tag)>(args, g, lengths); });
}

}  // namespace

void add_recurrent_kernels(KernelTable& t) {
  t.add(Op::lstm, {"reference", "ref_lstm", supports_check<check_recurrent>, run_lstm});
  t.add(Op::gru, {"reference", "ref_gru", supports_check<check_recurrent>, run_gru});
}

}  // namespace kiln::internal::ref
