// register_reference_kernels: adds the reference kernel of every forward op to the table.
#include "internal/kernel.hpp"
#include "kernels/ref/ref.hpp"

namespace kiln::internal {

void register_reference_kernels(KernelTable& t) {
  ref::add_matmul_kernels(t);
  ref::add_elementwise_kernels(t);
  ref::add_reduce_kernels(t);
  ref::add_shape_kernels(t);
  ref::add_index_kernels(t);
  ref::add_softmax_loss_kernels(t);
  ref::add_dropout_kernels(t);
  ref::add_conv_kernels(t);
  ref::add_pool_kernels(t);
  ref::add_batch_norm_kernels(t);
  ref::add_upsample_kernels(t);
  ref::add_recurrent_kernels(t);  // ---- rnn ----
  ref::add_attention_kernels(t);  // ---- attention ----
  ref::add_layer_norm_kernels(t);
}

}  // namespace kiln::internal
