// register_onednn_kernels: adds every oneDNN kernel to the kernel table.
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal {

void register_onednn_kernels(KernelTable& t) {
  onednn::register_matmul(t);
  onednn::register_elementwise(t);
  onednn::register_softmax(t);
  onednn::register_conv(t);
  onednn::register_pool(t);
  onednn::register_batch_norm(t);
  onednn::register_recurrent(t);
  onednn::register_attention(t);
}

}  // namespace kiln::internal
