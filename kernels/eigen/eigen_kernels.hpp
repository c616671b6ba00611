// Internal: entry points of the Eigen (portable, vectorised) kernels.
//
// register_eigen_kernels (declared in internal/kernel.hpp) adds the forward kernels to
// kiln_infer's table; register_eigen_training_kernels adds the kernels only training
// needs (scatter_add_rows, CNN backward ops) and lives in kiln.
#pragma once

#include "internal/kernel.hpp"

namespace kiln::internal {

/// Adds the Eigen kernels of training-only ops (scatter_add_rows, the CNN backward ops).
void register_eigen_training_kernels(KernelTable& t);

namespace eigen {
// One registration function per kernel family (kernels/eigen/<family>.cpp).
void register_matmul(KernelTable& t);
void register_elementwise(KernelTable& t);
void register_softmax(KernelTable& t);
void register_reduce(KernelTable& t);
void register_data_movement(KernelTable& t);
void register_indexing(KernelTable& t);
void register_losses(KernelTable& t);
void register_conv(KernelTable& t);        // conv2d, conv_transpose2d
void register_pool(KernelTable& t);        // max_pool2d, avg_pool2d
void register_batch_norm(KernelTable& t);  // batch_norm
void register_upsample(KernelTable& t);    // upsample_nearest2d
/// Training-only (kiln): conv2d_backward_weights, pool backward, batch_norm_backward.
void register_training_cnn(KernelTable& t);
// ---- rnn ----
/// C [m, n] = op(A) * op(B), row-major, on one thread unless Eigen splits a large product
/// (matmul.cpp's GEMM, shared so that kiln_infer carries one copy of Eigen's kernels).
void gemm_f32(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k,
              std::int64_t n, bool ta, bool tb);
void register_recurrent(KernelTable& t);  // lstm, gru
/// Training-only (kiln): lstm_backward, gru_backward.
void register_training_recurrent(KernelTable& t);
/// The one product per step of a recurrent kernel, over the node's w_hh [G*H, H]: forward,
/// c [B, G*H] = a [B, H] x w_hh^T; backward, c [B, H] += a [B, G*H] x w_hh. The Eigen
/// kernels run it with Eigen's GEMM; the oneDNN ones (kernels/onednn/recurrent.cpp) with a
/// matmul primitive over w_hh reordered once per call, around the same step loops below.
class StepProduct {
 public:
  virtual ~StepProduct() = default;
  virtual void operator()(const float* a, float* c) const = 0;
};
/// The step loops of lstm and gru (forward; in kiln_infer) and of lstm_backward and
/// gru_backward (training; in kiln), the node's whole call, with `product` as the per-step
/// GEMM. They run on the calling thread only (see recurrent.cpp).
void lstm_steps(const KernelArgs& args, const StepProduct& product);
void gru_steps(const KernelArgs& args, const StepProduct& product);
void lstm_backward_steps(const KernelArgs& args, const StepProduct& product);
void gru_backward_steps(const KernelArgs& args, const StepProduct& product);
// ---- attention ----
void register_attention(KernelTable& t);  // attention, gelu
/// The two products of attention for one (batch, head), row-major: s [tq, tk] = scale *
/// q [tq, d] k^T (k [tk, d]; zeros when d is 0) and y [tq, dv] = p [tq, tk] v [tk, dv]. The
/// Eigen kernel runs them with Eigen's GEMM, the oneDNN one (kernels/onednn/attention.cpp)
/// with dnnl_sgemm, around the same masks, softmax and threading (attention_heads).
struct AttentionProducts {
  void (*scores)(const float* q, const float* k, float* s, std::int64_t tq, std::int64_t tk,
                 std::int64_t d, float scale);
  void (*values)(const float* p, const float* v, float* y, std::int64_t tq, std::int64_t tk,
                 std::int64_t dv);
};
/// The attention kernel's whole call with these products (kernels/eigen/attention.cpp).
void attention_heads(const KernelArgs& args, const AttentionProducts& products);
/// Whether the attention kernels take this query (shapes, f32), and why not.
bool supports_attention(const KernelQuery& q, std::string* why);
void register_training_attention(KernelTable& t);  // training-only (kiln): gelu_backward
void register_layer_norm(KernelTable& t);          // layer_norm
/// Training-only (kiln): layer_norm_backward.
void register_training_layer_norm(KernelTable& t);
/// Training-only (kiln): relu_backward, softmax_backward.
void register_training_activations(KernelTable& t);
}  // namespace eigen

}  // namespace kiln::internal
