// Eigen kernels of lstm_backward and gru_backward (f32, training only, in kiln). They walk
// back through the steps in the opposite order of the forward kernels, all rows at once:
// per step a fused pass over each row's gates and one GEMM d(pre-activations) [B, G*H] x
// w_hh [G*H, H] for the gradient flowing into h_{t-1}. A row at a padded step passes its
// state gradient through unchanged (its forward step carried the state), adding the
// gradient of the state the padded step holds. Outputs as the reference
// (kernels/ref/training_recurrent.cpp).
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

bool supports_recurrent_backward(const KernelQuery& q, std::string* why) {
  if (q.output.dtype != DType::f32) return decline(why, "eigen kernels handle f32 only");
  const char* problem = recurrent_problem(q.node, q.inputs, q.output, nullptr);
  return problem == nullptr || decline(why, problem);
}

/// Eigen's GEMM: c += d x w_hh.
class EigenBackwardProduct final : public StepProduct {
 public:
  explicit EigenBackwardProduct(const KernelArgs& args) {
    const RecurrentGeometry g = recurrent_call_geometry(args.node, args.inputs, args.output);
    w_ = args.inputs[2].data<float>();
    rows_ = g.batch;
    hid_ = g.hidden;
    width_ = g.gates * g.hidden;
  }
  void operator()(const float* a, float* c) const override {
    Eigen::Map<Mat>(c, rows_, hid_).noalias() +=
        ConstMat(a, rows_, width_) * ConstMat(w_, width_, hid_);
  }

 private:
  const float* w_ = nullptr;
  std::int64_t rows_ = 0, hid_ = 0, width_ = 0;
};

void run_lstm_backward(const KernelArgs& args) {
  lstm_backward_steps(args, EigenBackwardProduct(args));
}
void run_gru_backward(const KernelArgs& args) {
  gru_backward_steps(args, EigenBackwardProduct(args));
}

}  // namespace

void lstm_backward_steps(const KernelArgs& args, const StepProduct& product) {
  const RecurrentGeometry geo = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto len = recurrent_step_counts(args.node, args.inputs, geo);
  const SingleThreadedRegion one_thread;
  const std::int64_t nb = geo.batch, steps = geo.steps, hid = geo.hidden, gw = 4 * hid;
  const std::int64_t pw = 6 * hid;
  const bool reverse = args.node.attrs.reverse;
  const float* y = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  const float* c0 = args.inputs[4].data<float>();
  float* out = args.output.data<float>();
  Mat dh = Mat::Zero(nb, hid), dc = Mat::Zero(nb, hid), da(nb, gw);
  Eigen::ArrayXf dhk(hid), tc(hid), dct(hid);
  for (std::int64_t s = steps; s-- > 0;) {
    const std::int64_t t = reverse ? steps - 1 - s : s;
    for (std::int64_t b = 0; b < nb; ++b) {
      const float* yt = y + (b * steps + t) * pw;
      const float* g = gy + (b * steps + t) * pw;
      Arr dhb(dh.data() + b * hid, hid), dcb(dc.data() + b * hid, hid);
      Arr dab(da.data() + b * gw, gw);
      float* o_row = out + (b * (steps + 1) + t) * gw;
      if (t >= len[static_cast<std::size_t>(b)]) {
        dhb += ConstArr(g + 5 * hid, hid);
        dcb += ConstArr(g + 4 * hid, hid);
        dab.setZero();
        Arr(o_row, gw).setZero();
        continue;
      }
      // The previous step: t-1 going forward (c0 at t = 0); t+1 in reverse, where a padded
      // step or the end holds the initial state.
      const float* c_prev;
      if (!reverse)
        c_prev = t == 0 ? c0 + b * hid : y + (b * steps + t - 1) * pw + 4 * hid;
      else
        c_prev = t == steps - 1 ? c0 + b * hid : y + (b * steps + t + 1) * pw + 4 * hid;
      const ConstArr i(yt, hid), f(yt + hid, hid), gg(yt + 2 * hid, hid), o(yt + 3 * hid, hid);
      const ConstArr c(yt + 4 * hid, hid);
      dhk = dhb + ConstArr(g + 5 * hid, hid);
      tc = c.tanh();
      dct = dcb + ConstArr(g + 4 * hid, hid) + dhk * o * (1.0f - tc * tc);
      dab.head(hid) = (dct * gg + ConstArr(g, hid)) * i * (1.0f - i);
      dab.segment(hid, hid) =
          (dct * ConstArr(c_prev, hid) + ConstArr(g + hid, hid)) * f * (1.0f - f);
      dab.segment(2 * hid, hid) = (dct * i + ConstArr(g + 2 * hid, hid)) * (1.0f - gg * gg);
      dab.tail(hid) = (dhk * tc + ConstArr(g + 3 * hid, hid)) * o * (1.0f - o);
      dcb = dct * f;
      dhb.setZero();  // replaced by the gradient through w_hh below
      Arr(o_row, gw) = dab;
    }
    product(da.data(), dh.data());
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    float* last = out + (b * (steps + 1) + steps) * gw;
    Arr(last, hid) = Arr(dh.data() + b * hid, hid);
    Arr(last + hid, hid) = Arr(dc.data() + b * hid, hid);
    Arr(last + 2 * hid, 2 * hid).setZero();
  }
}

void gru_backward_steps(const KernelArgs& args, const StepProduct& product) {
  const RecurrentGeometry geo = recurrent_call_geometry(args.node, args.inputs, args.output);
  const auto len = recurrent_step_counts(args.node, args.inputs, geo);
  const SingleThreadedRegion one_thread;
  const std::int64_t nb = geo.batch, steps = geo.steps, hid = geo.hidden, gw = 3 * hid;
  const std::int64_t pw = 5 * hid;
  const bool reverse = args.node.attrs.reverse;
  const float* y = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  const float* h0 = args.inputs[3].data<float>();
  float* out = args.output.data<float>();
  Mat dh = Mat::Zero(nb, hid), dhw(nb, gw);
  Eigen::ArrayXf dhk(hid), dan(hid), dr(hid);
  for (std::int64_t s = steps; s-- > 0;) {
    const std::int64_t t = reverse ? steps - 1 - s : s;
    for (std::int64_t b = 0; b < nb; ++b) {
      const float* yt = y + (b * steps + t) * pw;
      const float* g = gy + (b * steps + t) * pw;
      float* ob = out + b * (2 * steps + 1) * gw;
      Arr dhb(dh.data() + b * hid, hid), dhwb(dhw.data() + b * gw, gw);
      if (t >= len[static_cast<std::size_t>(b)]) {
        dhb += ConstArr(g + 4 * hid, hid);
        dhwb.setZero();
        Arr(ob + t * gw, gw).setZero();
        Arr(ob + (steps + t) * gw, gw).setZero();
        continue;
      }
      const float* h_prev;
      if (!reverse)
        h_prev = t == 0 ? h0 + b * hid : y + (b * steps + t - 1) * pw + 4 * hid;
      else
        h_prev = t == steps - 1 ? h0 + b * hid : y + (b * steps + t + 1) * pw + 4 * hid;
      const ConstArr r(yt, hid), z(yt + hid, hid), n(yt + 2 * hid, hid), hwn(yt + 3 * hid, hid);
      dhk = dhb + ConstArr(g + 4 * hid, hid);
      dan = (dhk * (1.0f - z) + ConstArr(g + 2 * hid, hid)) * (1.0f - n * n);
      dr = dan * hwn + ConstArr(g, hid);
      Arr dx(ob + t * gw, gw);
      dx.head(hid) = dr * r * (1.0f - r);
      dx.segment(hid, hid) =
          (dhk * (ConstArr(h_prev, hid) - n) + ConstArr(g + hid, hid)) * z * (1.0f - z);
      dx.tail(hid) = dan;
      dhwb.head(2 * hid) = dx.head(2 * hid);
      dhwb.tail(hid) = dan * r + ConstArr(g + 3 * hid, hid);
      Arr(ob + (steps + t) * gw, gw) = dhwb;
      dhb = dhk * z;  // the direct path; the path through hw is added below
    }
    product(dhw.data(), dh.data());
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    float* last = out + (b * (2 * steps + 1) + 2 * steps) * gw;
    Arr(last, hid) = Arr(dh.data() + b * hid, hid);
    Arr(last + hid, 2 * hid).setZero();
  }
}

void register_training_recurrent(KernelTable& t) {
  t.add<Op::lstm_backward>({"eigen", "eigen_lstm_backward_gemm_per_step",
                            supports_recurrent_backward, run_lstm_backward});
  t.add<Op::gru_backward>(
      {"eigen", "eigen_gru_backward_gemm_per_step", supports_recurrent_backward, run_gru_backward});
}

}  // namespace kiln::internal::eigen
