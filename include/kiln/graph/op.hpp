// The primitive operations a graph is made of, and their attributes.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/export.hpp"

namespace kiln {

/// Every primitive op. Composite ops (gelu, dense, ...) are built from these.
enum class Op : std::uint16_t {
  input,
  parameter,
  constant,
  matmul,
  add,
  sub,
  mul,
  div,
  neg,
  exp,
  log,
  sqrt,
  relu,
  leaky_relu,
  sigmoid,
  tanh,
  step,
  equal,
  softmax,
  log_softmax,
  sum,
  mean,
  max,
  expand,
  reshape,
  transpose,
  concat,
  slice,
  pad,
  gather,
  scatter_add_rows,
  one_hot,
  dropout_mask,
  softmax_cross_entropy,
  mse,
  bce_with_logits,
  conv2d,
  conv_transpose2d,
  conv2d_backward_weights,
  max_pool2d,
  max_pool2d_backward,
  avg_pool2d,
  avg_pool2d_backward,
  batch_norm,
  batch_norm_backward,
  upsample_nearest2d,
  // Sequence ops (docs/sequence.md); appended so earlier ids keep their numbers.
  lstm,
  lstm_backward,
  gru,
  gru_backward,
  attention,
  gelu,
  gelu_backward,
  // Fused layer normalisation over the last axis (appended, as above).
  layer_norm,
  layer_norm_backward,
  // One-pass gradients of relu and softmax (training ops).
  relu_backward,
  softmax_backward,
};

/// Number of ops; the name table is pinned against it.
inline constexpr int op_count = static_cast<int>(Op::softmax_backward) + 1;

/// The op's name as used in messages, DOT output and files ("matmul").
KILN_API std::string_view op_name(Op op);

/// An activation fused into the epilogue of matmul or conv2d by the fusion pass; on
/// max_pool2d_backward, relu is the gradient of the ReLU before the pooling folded in
/// (gx * (x > 0), x being that ReLU's output). relu_max_pool (conv2d in plans of oneDNN builds
/// only): the ReLU, then the max pooling that followed it, over attrs.kernel windows at a stride of
/// the window and no padding; the node's output is the pooled one.
enum class PostOp : std::uint8_t { none = 0, relu = 1, relu_max_pool = 2 };

/// A pair of spatial sizes (height, width).
using Pair = std::array<std::int64_t, 2>;

/// Attributes of a node; each op reads the few it needs (see ops.hpp).
struct Attrs {
  std::vector<std::int64_t> axes;  ///< reduction axes, permutation, or target shape
  std::int64_t axis = 0;           ///< softmax / concat / slice / pad axis
  std::int64_t start = 0;          ///< slice begin, pad before
  std::int64_t stop = 0;           ///< slice end, pad after
  std::int64_t size = 0;           ///< one_hot depth, scatter_add_rows row count
  float alpha = 0.0f;              ///< leaky_relu slope, dropout probability
  std::uint64_t seed = 0;          ///< dropout seed
  bool keepdims = false;           ///< reductions keep reduced axes as 1
  bool transpose_a = false;        ///< matmul: use A^T
  bool transpose_b = false;        ///< matmul: use B^T
  bool mean = false;               ///< expand: divide by the expansion factor
  DType dtype = DType::f32;        ///< one_hot output type
  Pair kernel{0, 0};               ///< pooling window; conv2d_backward_weights kernel size
  Pair stride{1, 1};               ///< conv / pooling stride; upsample scale factors
  Pair padding{0, 0};              ///< zero padding on both sides (top+bottom, left+right)
  Pair dilation{1, 1};             ///< conv dilation
  Pair output_padding{0, 0};       ///< conv_transpose2d extra rows/cols at the end
  std::int64_t groups = 1;         ///< conv groups (groups == channels: depthwise)
  bool include_pad = true;         ///< avg_pool2d counts padding in the divisor
  float eps = 1e-5f;               ///< batch_norm / layer_norm epsilon
  float momentum = 0.1f;           ///< batch_norm running-average momentum
  PostOp post_op = PostOp::none;   ///< fused activation (matmul, conv2d)
  bool reverse = false;            ///< lstm / gru: run from each row's last valid step back
  bool causal = false;             ///< attention: query i sees keys j <= i only

  friend bool operator==(const Attrs&, const Attrs&) = default;
};

}  // namespace kiln
