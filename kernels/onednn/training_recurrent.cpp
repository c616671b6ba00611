// oneDNN kernels of lstm_backward and gru_backward (training only, in kiln): the Eigen
// kernels' step loops with the per-step product d x w_hh as a oneDNN matmul over w_hh
// packed once per call (recurrent_product.cpp).
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

void run_lstm_backward(const KernelArgs& args) { run_recurrent(args, eigen::lstm_backward_steps); }
void run_gru_backward(const KernelArgs& args) { run_recurrent(args, eigen::gru_backward_steps); }

}  // namespace

void register_training_recurrent(KernelTable& t) {
  t.add<Op::lstm_backward>({"onednn", "onednn_lstm_backward_packed_step_matmul", supports_recurrent,
                            run_lstm_backward, prepare_recurrent});
  t.add<Op::gru_backward>({"onednn", "onednn_gru_backward_packed_step_matmul", supports_recurrent,
                           run_gru_backward, prepare_recurrent});
}

}  // namespace kiln::internal::onednn
