// Reference lstm_backward and gru_backward (training only; built into kiln and registered by
// register_reference_training_kernels). Row by row, back through the steps the forward op
// ran, in double. y is the forward op's packed output and gy the gradient flowing into all
// of it (gates, states); the gradient of a padded step's state goes to the state it carries
// (the last state going forward, the initial state in reverse).
//
// lstm_backward -> [B, T + 1, 4H]: steps [0, T) d/d(gate pre-activations) = d/dxw,
//   step T [dh0 | dc0 | 0 | 0].
// gru_backward -> [B, 2T + 1, 3H]: steps [0, T) d/dxw, steps [T, 2T) d/dhw with
//   hw = h_{t-1} @ w_hh^T + b_hh (r and z as xw's, n: d/d(pre-activation of n) * r plus
//   gy of the packed hw_n), step 2T [dh0 | 0 | 0].
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "internal/recurrent_geometry.hpp"
#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_recurrent_backward(const Node& node, Descs in, const TensorDesc& out) {
  return check_recurrent_node(node, in, out, nullptr);
}

std::vector<std::int64_t> step_order(std::int64_t len, bool reverse) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(len));
  for (std::int64_t s = 0; s < len; ++s)
    order[static_cast<std::size_t>(s)] = reverse ? len - 1 - s : s;
  return order;
}

using Vec = std::vector<double>;

template <class T>
void lstm_backward_typed(const KernelArgs& args, const RecurrentGeometry& geo,
                         const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = geo.steps, hid = geo.hidden, gw = 4 * hid, pw = 6 * hid;
  const bool reverse = args.node.attrs.reverse;
  const T* y = args.inputs[0].data<T>();
  const T* gy = args.inputs[1].data<T>();
  const T* w = args.inputs[2].data<T>();
  const T* c0 = args.inputs[4].data<T>();
  T* out = args.output.data<T>();
  const auto hz = static_cast<std::size_t>(hid);
  Vec dh(hz), dc(hz), dh_init(hz), dc_init(hz), da(static_cast<std::size_t>(gw));
  for (std::int64_t b = 0; b < geo.batch; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    std::fill(dh.begin(), dh.end(), 0.0);
    std::fill(dc.begin(), dc.end(), 0.0);
    std::fill(dh_init.begin(), dh_init.end(), 0.0);
    std::fill(dc_init.begin(), dc_init.end(), 0.0);
    // Padded steps carry the last state (forward) or the initial one (reverse).
    for (std::int64_t t = len; t < steps; ++t) {
      const T* g = gy + (b * steps + t) * pw;
      Vec& th = reverse ? dh_init : dh;
      Vec& tc = reverse ? dc_init : dc;
      for (std::size_t k = 0; k < hz; ++k) {
        tc[k] += static_cast<double>(g[4 * hid + static_cast<std::int64_t>(k)]);
        th[k] += static_cast<double>(g[5 * hid + static_cast<std::int64_t>(k)]);
      }
      T* o = out + (b * (steps + 1) + t) * gw;
      for (std::int64_t k = 0; k < gw; ++k) o[k] = T(0);
    }
    const auto order = step_order(len, reverse);
    for (std::size_t s = order.size(); s-- > 0;) {
      const std::int64_t t = order[s];
      const T* yt = y + (b * steps + t) * pw;
      const T* g = gy + (b * steps + t) * pw;
      const T* c_prev = s == 0 ? c0 + b * hid : y + (b * steps + order[s - 1]) * pw + 4 * hid;
      for (std::int64_t k = 0; k < hid; ++k) {
        const auto uk = static_cast<std::size_t>(k);
        const double i = static_cast<double>(yt[k]), f = static_cast<double>(yt[hid + k]);
        const double gg = static_cast<double>(yt[2 * hid + k]);
        const double o = static_cast<double>(yt[3 * hid + k]);
        const double c = static_cast<double>(yt[4 * hid + k]);
        const double dhk = dh[uk] + static_cast<double>(g[5 * hid + k]);
        const double tc = std::tanh(c);
        const double dct = dc[uk] + static_cast<double>(g[4 * hid + k]) + dhk * o * (1.0 - tc * tc);
        const double di = dct * gg + static_cast<double>(g[k]);
        const double df = dct * static_cast<double>(c_prev[k]) + static_cast<double>(g[hid + k]);
        const double dg = dct * i + static_cast<double>(g[2 * hid + k]);
        const double dout = dhk * tc + static_cast<double>(g[3 * hid + k]);
        da[uk] = di * i * (1.0 - i);
        da[hz + uk] = df * f * (1.0 - f);
        da[2 * hz + uk] = dg * (1.0 - gg * gg);
        da[3 * hz + uk] = dout * o * (1.0 - o);
        dc[uk] = dct * f;
      }
      T* ot = out + (b * (steps + 1) + t) * gw;
      for (std::int64_t r = 0; r < gw; ++r) ot[r] = static_cast<T>(da[static_cast<std::size_t>(r)]);
      for (std::int64_t k = 0; k < hid; ++k) {
        double sum = 0.0;
        for (std::int64_t r = 0; r < gw; ++r)
          sum += da[static_cast<std::size_t>(r)] * static_cast<double>(w[r * hid + k]);
        dh[static_cast<std::size_t>(k)] = sum;
      }
    }
    T* last = out + (b * (steps + 1) + steps) * gw;
    for (std::int64_t k = 0; k < hid; ++k) {
      const auto uk = static_cast<std::size_t>(k);
      last[k] = static_cast<T>(dh[uk] + dh_init[uk]);
      last[hid + k] = static_cast<T>(dc[uk] + dc_init[uk]);
      last[2 * hid + k] = T(0);
      last[3 * hid + k] = T(0);
    }
  }
}

template <class T>
void gru_backward_typed(const KernelArgs& args, const RecurrentGeometry& geo,
                        const std::vector<std::int64_t>& lengths) {
  const std::int64_t steps = geo.steps, hid = geo.hidden, gw = 3 * hid, pw = 5 * hid;
  const bool reverse = args.node.attrs.reverse;
  const T* y = args.inputs[0].data<T>();
  const T* gy = args.inputs[1].data<T>();
  const T* w = args.inputs[2].data<T>();
  const T* h0 = args.inputs[3].data<T>();
  T* out = args.output.data<T>();
  const auto hz = static_cast<std::size_t>(hid);
  Vec dh(hz), dh_init(hz), dhw(static_cast<std::size_t>(gw));
  for (std::int64_t b = 0; b < geo.batch; ++b) {
    const std::int64_t len = lengths[static_cast<std::size_t>(b)];
    std::fill(dh.begin(), dh.end(), 0.0);
    std::fill(dh_init.begin(), dh_init.end(), 0.0);
    T* ob = out + b * (2 * steps + 1) * gw;
    for (std::int64_t t = len; t < steps; ++t) {
      const T* g = gy + (b * steps + t) * pw;
      Vec& th = reverse ? dh_init : dh;
      for (std::size_t k = 0; k < hz; ++k)
        th[k] += static_cast<double>(g[4 * hid + static_cast<std::int64_t>(k)]);
      for (std::int64_t k = 0; k < gw; ++k) {
        ob[t * gw + k] = T(0);
        ob[(steps + t) * gw + k] = T(0);
      }
    }
    const auto order = step_order(len, reverse);
    for (std::size_t s = order.size(); s-- > 0;) {
      const std::int64_t t = order[s];
      const T* yt = y + (b * steps + t) * pw;
      const T* g = gy + (b * steps + t) * pw;
      const T* h_prev = s == 0 ? h0 + b * hid : y + (b * steps + order[s - 1]) * pw + 4 * hid;
      T* dx = ob + t * gw;
      for (std::int64_t k = 0; k < hid; ++k) {
        const auto uk = static_cast<std::size_t>(k);
        const double r = static_cast<double>(yt[k]), z = static_cast<double>(yt[hid + k]);
        const double n = static_cast<double>(yt[2 * hid + k]);
        const double hwn = static_cast<double>(yt[3 * hid + k]);
        const double hp = static_cast<double>(h_prev[k]);
        const double dhk = dh[uk] + static_cast<double>(g[4 * hid + k]);
        const double dn = dhk * (1.0 - z) + static_cast<double>(g[2 * hid + k]);
        const double dz = dhk * (hp - n) + static_cast<double>(g[hid + k]);
        const double dan = dn * (1.0 - n * n);
        const double dr = dan * hwn + static_cast<double>(g[k]);
        const double dar = dr * r * (1.0 - r), daz = dz * z * (1.0 - z);
        dx[k] = static_cast<T>(dar);
        dx[hid + k] = static_cast<T>(daz);
        dx[2 * hid + k] = static_cast<T>(dan);
        dhw[uk] = dar;
        dhw[hz + uk] = daz;
        dhw[2 * hz + uk] = dan * r + static_cast<double>(g[3 * hid + k]);
        dh[uk] = dhk * z;  // the direct path; the path through hw is added below
      }
      T* dhw_out = ob + (steps + t) * gw;
      for (std::int64_t q = 0; q < gw; ++q)
        dhw_out[q] = static_cast<T>(dhw[static_cast<std::size_t>(q)]);
      for (std::int64_t k = 0; k < hid; ++k) {
        double sum = 0.0;
        for (std::int64_t q = 0; q < gw; ++q)
          sum += dhw[static_cast<std::size_t>(q)] * static_cast<double>(w[q * hid + k]);
        dh[static_cast<std::size_t>(k)] += sum;
      }
    }
    T* last = ob + 2 * steps * gw;
    for (std::int64_t k = 0; k < hid; ++k) {
      const auto uk = static_cast<std::size_t>(k);
      last[k] = static_cast<T>(dh[uk] + dh_init[uk]);
      last[hid + k] = T(0);
      last[2 * hid + k] = T(0);
    }
  }
}

void run_lstm_backward(const KernelArgs& args) {
  require(check_recurrent_backward, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto lengths = recurrent_step_counts(args.node, args.inputs, g);
  with_float(args.output.dtype(),
             [&](auto tag) { lstm_backward_typed<decltype(tag)>(args, g, lengths); });
}

void run_gru_backward(const KernelArgs& args) {
  require(check_recurrent_backward, args);
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto lengths = recurrent_step_counts(args.node, args.inputs, g);
  with_float(args.output.dtype(),
             [&](auto tag) { gru_backward_typed<decltype(tag)>(args, g, lengths); });
}

}  // namespace

void add_recurrent_training_kernels(KernelTable& t) {
  t.add<Op::lstm_backward>({"reference", "ref_lstm_backward",
                            supports_check<check_recurrent_backward>, run_lstm_backward});
  t.add<Op::gru_backward>({"reference", "ref_gru_backward",
                           supports_check<check_recurrent_backward>, run_gru_backward});
}

}  // namespace kiln::internal::ref
