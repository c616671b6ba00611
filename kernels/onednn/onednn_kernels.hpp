// Internal: entry points of the oneDNN kernels that only training needs.
//
// register_onednn_kernels (declared in internal/kernel.hpp) adds the forward kernels to
// kiln_infer's table; register_onednn_training_kernels adds conv2d_backward_weights,
// max_pool2d_backward, avg_pool2d_backward and batch_norm_backward, and lives in kiln
// (kernels/onednn/training_cnn.cpp). Only built with KILN_WITH_ONEDNN.
#pragma once

#include "internal/kernel.hpp"

namespace kiln::internal {

/// Adds the oneDNN kernels of training-only ops.
void register_onednn_training_kernels(KernelTable& t);

}  // namespace kiln::internal
