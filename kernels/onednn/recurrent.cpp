// oneDNN kernels of lstm and gru: the Eigen kernels' step loops with the per-step product
// as a oneDNN matmul over w_hh packed once per call (recurrent_product.cpp).
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

void run_lstm(const KernelArgs& args) { run_recurrent(args, eigen::lstm_steps); }
void run_gru(const KernelArgs& args) { run_recurrent(args, eigen::gru_steps); }

}  // namespace

void register_recurrent(KernelTable& t) {
  t.add<Op::lstm>({"onednn", "onednn_lstm_packed_step_matmul", supports_recurrent, run_lstm,
                   prepare_recurrent});
  t.add<Op::gru>(
      {"onednn", "onednn_gru_packed_step_matmul", supports_recurrent, run_gru, prepare_recurrent});
}

}  // namespace kiln::internal::onednn
