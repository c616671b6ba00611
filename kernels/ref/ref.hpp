// Internal: registration of the reference (plain C++) kernels, one function per op family.
//
// register_reference_kernels (declared in internal/kernel.hpp, defined in register.cpp) adds
// every forward kernel to kiln_infer's table; register_reference_training_kernels adds the
// kernels only training needs (scatter_add_rows and the CNN backward kernels) and is built
// into kiln.
#pragma once

#include "internal/kernel.hpp"

namespace kiln::internal {

/// Adds the reference kernels of training-only ops (scatter_add_rows, conv2d_backward_weights,
/// max_pool2d_backward, avg_pool2d_backward, batch_norm_backward).
void register_reference_training_kernels(KernelTable& t);

namespace ref {

void add_matmul_kernels(KernelTable& t);        // matmul
void add_elementwise_kernels(KernelTable& t);   // add ... equal
void add_reduce_kernels(KernelTable& t);        // sum, mean, max
void add_shape_kernels(KernelTable& t);         // expand, reshape, transpose, concat, slice, pad
void add_index_kernels(KernelTable& t);         // gather, one_hot
void add_softmax_loss_kernels(KernelTable& t);  // softmax, log_softmax and the fused losses
void add_dropout_kernels(KernelTable& t);       // dropout_mask
void add_conv_kernels(KernelTable& t);          // conv2d, conv_transpose2d
void add_pool_kernels(KernelTable& t);          // max_pool2d, avg_pool2d
void add_batch_norm_kernels(KernelTable& t);    // batch_norm
void add_upsample_kernels(KernelTable& t);      // upsample_nearest2d
// ---- rnn ----
void add_recurrent_kernels(KernelTable& t);  // lstm, gru
/// Training only (training_recurrent.cpp, in kiln): lstm_backward, gru_backward.
void add_recurrent_training_kernels(KernelTable& t);

/// Training only (training_cnn.cpp, in kiln): conv2d_backward_weights, max_pool2d_backward,
/// avg_pool2d_backward, batch_norm_backward.
void add_cnn_training_kernels(KernelTable& t);

// ---- attention ----
void add_attention_kernels(KernelTable& t);  // attention, gelu
/// Training only (training_attention.cpp, in kiln): gelu_backward.
void add_attention_training_kernels(KernelTable& t);
/// Training only (training_activations.cpp, in kiln): relu_backward, softmax_backward.
void add_activation_training_kernels(KernelTable& t);

void add_layer_norm_kernels(KernelTable& t);  // layer_norm
/// Training only (training_layer_norm.cpp, in kiln): layer_norm_backward.
void add_layer_norm_training_kernels(KernelTable& t);

}  // namespace ref
}  // namespace kiln::internal
