// register_eigen_kernels: adds every forward Eigen kernel to the kernel table.
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal {

void register_eigen_kernels(KernelTable& t) {
  eigen::register_matmul(t);
  eigen::register_elementwise(t);
  eigen::register_softmax(t);
  eigen::register_reduce(t);
  eigen::register_data_movement(t);
  eigen::register_indexing(t);
  eigen::register_losses(t);
  eigen::register_conv(t);
  eigen::register_pool(t);
  eigen::register_batch_norm(t);
  eigen::register_upsample(t);
  eigen::register_recurrent(t);  // ---- rnn ----
  eigen::register_attention(t);  // ---- attention ----
  eigen::register_layer_norm(t);
}

}  // namespace kiln::internal
