// Reference lstm and gru (one layer direction each; the recurrence only, the input
// projection xw is computed by the caller). Row by row, step by step, in double:
//
// lstm: gates = xw[b, t] + h @ w_hh^T; i, f, o = sigmoid, g = tanh (PyTorch's order
//   i, f, g, o); c = f * c + i * g; h = o * tanh(c). Packed output [B, T, 6H]:
//   (i, f, g, o) | c | h.
// gru: hw = h @ w_hh^T + b_hh; r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z),
//   n = tanh(xw_n + r * hw_n); h = (1 - z) * n + z * h. Packed [B, T, 5H]: r | z | n |
//   hw_n | h.
// Every dtype is computed in double, read and written through one conversion.
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

/// A tensor's values in double (the kernels compute in double whatever the dtype, so one
/// copy of each serves f32 and f64).
std::vector<double> values(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

void store(const std::vector<double>& v, Tensor& out) {
  out.copy_from(Tensor::from(v, out.shape()).to(out.dtype()));
}

void lstm_rows(const KernelArgs& args, const RecurrentGeometry& g,
               const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = g.steps, hid = g.hidden, gw = 4 * hid, pw = 6 * hid;
  const auto xw = values(args.inputs[0]), w = values(args.inputs[1]);
  const auto h0 = values(args.inputs[2]), c0 = values(args.inputs[3]);
  std::vector<double> y(static_cast<std::size_t>(args.output.numel()));
  const auto at = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  std::vector<double> h(at(hid)), c(at(hid)), a(at(gw));
  for (std::int64_t b = 0; b < g.batch; ++b) {
    const std::int64_t len = lengths[at(b)];
    for (std::int64_t k = 0; k < hid; ++k) {
      h[at(k)] = h0[at(b * hid + k)];
      c[at(k)] = c0[at(b * hid + k)];
    }
    for (std::int64_t t : step_order(len, args.node.attrs.reverse)) {
      for (std::int64_t r = 0; r < gw; ++r) {
        double s = xw[at((b * steps + t) * gw + r)];
        for (std::int64_t k = 0; k < hid; ++k) s += w[at(r * hid + k)] * h[at(k)];
        a[at(r)] = s;
      }
      double* out = y.data() + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const double i = sigmoid(a[at(k)]), f = sigmoid(a[at(hid + k)]);
        const double gg = std::tanh(a[at(2 * hid + k)]), o = sigmoid(a[at(3 * hid + k)]);
        c[at(k)] = f * c[at(k)] + i * gg;
        h[at(k)] = o * std::tanh(c[at(k)]);
        out[k] = i;
        out[hid + k] = f;
        out[2 * hid + k] = gg;
        out[3 * hid + k] = o;
        out[4 * hid + k] = c[at(k)];
        out[5 * hid + k] = h[at(k)];
      }
    }
    // Padded steps: zero gates (y starts zero) and the carried state (the initial state in
    // reverse).
    for (std::int64_t t = len; t < steps; ++t) {
      double* out = y.data() + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const bool initial = args.node.attrs.reverse;
        out[4 * hid + k] = initial ? c0[at(b * hid + k)] : c[at(k)];
        out[5 * hid + k] = initial ? h0[at(b * hid + k)] : h[at(k)];
      }
    }
  }
  store(y, args.output);
}

void gru_rows(const KernelArgs& args, const RecurrentGeometry& g,
              const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = g.steps, hid = g.hidden, gw = 3 * hid, pw = 5 * hid;
  const auto xw = values(args.inputs[0]), w = values(args.inputs[1]);
  const auto bias = values(args.inputs[2]), h0 = values(args.inputs[3]);
  std::vector<double> y(static_cast<std::size_t>(args.output.numel()));
  const auto at = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  std::vector<double> h(at(hid)), hw(at(gw));
  for (std::int64_t b = 0; b < g.batch; ++b) {
    const std::int64_t len = lengths[at(b)];
    for (std::int64_t k = 0; k < hid; ++k) h[at(k)] = h0[at(b * hid + k)];
    for (std::int64_t t : step_order(len, args.node.attrs.reverse)) {
      for (std::int64_t r = 0; r < gw; ++r) {
        double s = bias[at(r)];
        for (std::int64_t k = 0; k < hid; ++k) s += w[at(r * hid + k)] * h[at(k)];
        hw[at(r)] = s;
      }
      const double* x = xw.data() + (b * steps + t) * gw;
      double* out = y.data() + (b * steps + t) * pw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const double r = sigmoid(x[k] + hw[at(k)]);
        const double z = sigmoid(x[hid + k] + hw[at(hid + k)]);
        const double n = std::tanh(x[2 * hid + k] + r * hw[at(2 * hid + k)]);
        h[at(k)] = (1.0 - z) * n + z * h[at(k)];
        out[k] = r;
        out[hid + k] = z;
        out[2 * hid + k] = n;
        out[3 * hid + k] = hw[at(2 * hid + k)];
        out[4 * hid + k] = h[at(k)];
      }
    }
    for (std::int64_t t = len; t < steps; ++t)
      for (std::int64_t k = 0; k < hid; ++k)
        y[at((b * steps + t) * pw + 4 * hid + k)] =
            args.node.attrs.reverse ? h0[at(b * hid + k)] : h[at(k)];
  }
  store(y, args.output);
}

void run_lstm(const KernelArgs& args) {
  require(check_recurrent, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  lstm_rows(args, g, recurrent_step_counts(args.node, args.inputs, g));
}

void run_gru(const KernelArgs& args) {
  require(check_recurrent, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  gru_rows(args, g, recurrent_step_counts(args.node, args.inputs, g));
}

}  // namespace

void add_recurrent_kernels(KernelTable& t) {
  t.add<Op::lstm>({"reference", "ref_lstm", supports_check<check_recurrent>, run_lstm});
  t.add<Op::gru>({"reference", "ref_gru", supports_check<check_recurrent>, run_gru});
}

}  // namespace kiln::internal::ref
