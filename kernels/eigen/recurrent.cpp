// Eigen kernels of lstm and gru (f32). Every step is one GEMM over the whole batch,
// h_{t-1} [B, H] x w_hh^T [H, G*H], and one fused pass over the gates of each row that
// writes the packed output (see kiln/ops.hpp). Variable lengths: all rows step through the
// same t (T-1 down to 0 in reverse); a row at a step t >= lengths[b] keeps its state (the
// last one going forward; in reverse it has not started yet, so the initial one), which is
// exactly the packing of the padded steps. The recurrence runs on the calling thread only
// (SingleThreadedRegion): a parallel region per step costs more than it saves (W6's shape,
// 2 threads on a loaded 2-core machine: a training step took 614 ms with Eigen splitting
// every step's GEMM, 118 ms with the recurrence on one thread); the layers' large GEMMs
// over all steps (input projection, weight gradients) still use every thread. The GEMM is
// matmul.cpp's (gemm_f32), so kiln_infer holds one copy of Eigen's product kernels.
#include <cstdint>
#include <vector>

#include "internal/recurrent_geometry.hpp"
#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

using Mat = RowMajorMatrix;
using ConstMat = Eigen::Map<const Mat>;
using Arr = Eigen::Map<Eigen::ArrayXf>;
using ConstArr = Eigen::Map<const Eigen::ArrayXf>;

bool supports_recurrent(const KernelQuery& q, std::string* why) {
  if (q.output.dtype != DType::f32) return decline(why, "eigen kernels handle f32 only");
  const char* problem = recurrent_problem(q.node, q.inputs, q.output, nullptr);
  return problem == nullptr || decline(why, problem);
}

// The activations in place, out of line: Eigen's vectorised logistic and tanh are large, and
// kiln_infer carries them once each rather than at every use.
[[gnu::noinline]] void sigmoid_in_place(float* p, std::int64_t n) {
  Arr a(p, n);
  a = a.logistic();
}
[[gnu::noinline]] void tanh_in_place(float* p, std::int64_t n) {
  Arr a(p, n);
  a = a.tanh();
}

/// Eigen's GEMM: c = h x w_hh^T.
class EigenForwardProduct final : public StepProduct {
 public:
  explicit EigenForwardProduct(const KernelArgs& args) {
    const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
    w_ = args.inputs[1].data<float>();
    rows_ = g.batch;
    hid_ = g.hidden;
    width_ = g.gates * g.hidden;
  }
  void operator()(const float* a, float* c) const override {
    gemm_f32(a, w_, c, rows_, hid_, width_, false, true);
  }

 private:
  const float* w_ = nullptr;
  std::int64_t rows_ = 0, hid_ = 0, width_ = 0;
};

void run_lstm(const KernelArgs& args) { lstm_steps(args, EigenForwardProduct(args)); }
void run_gru(const KernelArgs& args) { gru_steps(args, EigenForwardProduct(args)); }

}  // namespace

void lstm_steps(const KernelArgs& args, const StepProduct& product) {
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto len = recurrent_step_counts(args.node, args.inputs, g);
  const SingleThreadedRegion one_thread;
  const std::int64_t nb = g.batch, steps = g.steps, hid = g.hidden, gw = 4 * hid, pw = 6 * hid;
  const bool reverse = args.node.attrs.reverse;
  const float* xw = args.inputs[0].data<float>();
  Mat h = ConstMat(args.inputs[2].data<float>(), nb, hid);
  Mat c = ConstMat(args.inputs[3].data<float>(), nb, hid);
  Mat gates(nb, gw);
  float* y = args.output.data<float>();
  for (std::int64_t s = 0; s < steps; ++s) {
    const std::int64_t t = reverse ? steps - 1 - s : s;
    product(h.data(), gates.data());
    for (std::int64_t b = 0; b < nb; ++b) {
      float* out = y + (b * steps + t) * pw;
      Arr hb(h.data() + b * hid, hid), cb(c.data() + b * hid, hid);
      if (t < len[static_cast<std::size_t>(b)]) {
        Arr a(out, gw);
        a = ConstArr(xw + (b * steps + t) * gw, gw) + ConstArr(gates.data() + b * gw, gw);
        sigmoid_in_place(out, 2 * hid);        // i, f
        tanh_in_place(out + 2 * hid, hid);     // g
        sigmoid_in_place(out + 3 * hid, hid);  // o
        cb = a.segment(hid, hid) * cb + a.head(hid) * a.segment(2 * hid, hid);
        Arr tc(out + 5 * hid, hid);
        tc = cb;
        tanh_in_place(out + 5 * hid, hid);
        hb = a.tail(hid) * tc;
      } else {
        Arr(out, gw).setZero();
      }
      Arr(out + gw, hid) = cb;
      Arr(out + 5 * hid, hid) = hb;
    }
  }
}

void gru_steps(const KernelArgs& args, const StepProduct& product) {
  const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto len = recurrent_step_counts(args.node, args.inputs, g);
  const SingleThreadedRegion one_thread;
  const std::int64_t nb = g.batch, steps = g.steps, hid = g.hidden, gw = 3 * hid, pw = 5 * hid;
  const bool reverse = args.node.attrs.reverse;
  const float* xw = args.inputs[0].data<float>();
  const ConstArr bias(args.inputs[2].data<float>(), gw);
  Mat h = ConstMat(args.inputs[3].data<float>(), nb, hid);
  Mat hw(nb, gw);
  float* y = args.output.data<float>();
  for (std::int64_t s = 0; s < steps; ++s) {
    const std::int64_t t = reverse ? steps - 1 - s : s;
    product(h.data(), hw.data());
    for (std::int64_t b = 0; b < nb; ++b) {
      float* out = y + (b * steps + t) * pw;
      Arr hb(h.data() + b * hid, hid);
      if (t < len[static_cast<std::size_t>(b)]) {
        const float* x = xw + (b * steps + t) * gw;
        Arr hwb(hw.data() + b * gw, gw);
        hwb += bias;
        Arr rz(out, 2 * hid), n(out + 2 * hid, hid), hwn(out + 3 * hid, hid);
        rz = ConstArr(x, 2 * hid) + hwb.head(2 * hid);
        sigmoid_in_place(out, 2 * hid);
        hwn = hwb.tail(hid);
        n = ConstArr(x + 2 * hid, hid) + rz.head(hid) * hwn;
        tanh_in_place(out + 2 * hid, hid);
        const auto z = rz.tail(hid);
        hb = (1.0f - z) * n + z * hb;
      } else {
        Arr(out, 4 * hid).setZero();
      }
      Arr(out + 4 * hid, hid) = hb;
    }
  }
}

void register_recurrent(KernelTable& t) {
  t.add<Op::lstm>({"eigen", "eigen_lstm_gemm_per_step", supports_recurrent, run_lstm});
  t.add<Op::gru>({"eigen", "eigen_gru_gemm_per_step", supports_recurrent, run_gru});
}

}  // namespace kiln::internal::eigen
