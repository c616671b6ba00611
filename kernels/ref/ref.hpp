// Internal: registration of the reference (plain C++) kernels, one function per op family.
//
// register_reference_kernels (declared in internal/kernel.hpp, defined in register.cpp) adds
// every forward kernel to kiln_infer's table; register_reference_training_kernels adds the
// kernels only training needs (scatter_add_rows) and is built into kiln.
#pragma once

#include "internal/kernel.hpp"

namespace kiln::internal {

/// Adds the reference kernels of training-only ops (scatter_add_rows).
void register_reference_training_kernels(KernelTable& t);

namespace ref {

void add_matmul_kernels(KernelTable& t);        // matmul
void add_elementwise_kernels(KernelTable& t);   // add ... equal
void add_reduce_kernels(KernelTable& t);        // sum, mean, max
void add_shape_kernels(KernelTable& t);         // expand, reshape, transpose, concat, slice, pad
void add_index_kernels(KernelTable& t);         // gather, one_hot
void add_softmax_loss_kernels(KernelTable& t);  // softmax, log_softmax and the fused losses
void add_dropout_kernels(KernelTable& t);       // dropout_mask

}  // namespace ref
}  // namespace kiln::internal
