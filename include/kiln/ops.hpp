// Builder functions: each checks and normalises its inputs (dtype, axes, broadcasting),
// adds a node to the inputs' graph and returns its output. Shapes are checked when
// the node is added; errors name the op, the node and the shapes involved.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln {

struct MatmulOptions {
  bool transpose_a = false;
  bool transpose_b = false;
};

/// Matrix product of the last two dims; batched when ranks > 2 (b may be 2-D).
KILN_API Value matmul(Value a, Value b, MatmulOptions opts = {}, std::string name = {});

/// Elementwise arithmetic with numpy broadcasting.
KILN_API Value add(Value a, Value b, std::string name = {});
KILN_API Value sub(Value a, Value b, std::string name = {});
KILN_API Value mul(Value a, Value b, std::string name = {});
KILN_API Value div(Value a, Value b, std::string name = {});
/// Arithmetic with a scalar, which becomes a constant of the value's dtype (broadcast).
KILN_API Value add(Value a, double b);
KILN_API Value add(double a, Value b);
KILN_API Value sub(Value a, double b);
KILN_API Value sub(double a, Value b);
KILN_API Value mul(Value a, double b);
KILN_API Value mul(double a, Value b);
KILN_API Value div(Value a, double b);
KILN_API Value div(double a, Value b);

/// Elementwise functions.
KILN_API Value neg(Value x, std::string name = {});
KILN_API Value exp(Value x, std::string name = {});
KILN_API Value log(Value x, std::string name = {});
KILN_API Value sqrt(Value x, std::string name = {});
KILN_API Value relu(Value x, std::string name = {});
KILN_API Value leaky_relu(Value x, float alpha = 0.01f, std::string name = {});
KILN_API Value sigmoid(Value x, std::string name = {});
KILN_API Value tanh(Value x, std::string name = {});
/// GELU, tanh approximation, composed from tanh and mul.
KILN_API Value gelu(Value x, std::string name = {});
/// 1 where x > 0, else 0 (no gradient).
KILN_API Value step(Value x, std::string name = {});
/// 1 where a == b, else 0 (no gradient); broadcasts.
KILN_API Value equal(Value a, Value b, std::string name = {});

/// Softmax and log-softmax along `axis` (negative counts from the end).
KILN_API Value softmax(Value x, std::int64_t axis = -1, std::string name = {});
KILN_API Value log_softmax(Value x, std::int64_t axis = -1, std::string name = {});

/// Reductions over `axes` (empty: all axes).
KILN_API Value sum(Value x, std::vector<std::int64_t> axes = {}, bool keepdims = false,
                   std::string name = {});
KILN_API Value mean(Value x, std::vector<std::int64_t> axes = {}, bool keepdims = false,
                    std::string name = {});
KILN_API Value max(Value x, std::vector<std::int64_t> axes = {}, bool keepdims = false,
                   std::string name = {});

/// Broadcasts x (same rank, dims 1 or equal) to `shape`; kiln::batch dims are taken
/// from `like` at run time. With mean, divides by the expansion factor.
KILN_API Value expand(Value x, Shape shape, Value like = {}, bool mean = false,
                      std::string name = {});
/// Broadcasts x to the shape of `like` (numpy rules; adds leading dims).
KILN_API Value broadcast_like(Value x, Value like, std::string name = {});
/// New shape with the same elements; one dim may be -1 (inferred).
KILN_API Value reshape(Value x, Shape shape, std::string name = {});
/// Permutes dimensions; an empty perm reverses the last two.
KILN_API Value transpose(Value x, std::vector<std::int64_t> perm = {}, std::string name = {});
KILN_API Value concat(const std::vector<Value>& xs, std::int64_t axis, std::string name = {});
/// Elements [start, stop) along axis.
KILN_API Value slice(Value x, std::int64_t axis, std::int64_t start, std::int64_t stop,
                     std::string name = {});
/// Zero padding of `before` and `after` elements along axis.
KILN_API Value pad(Value x, std::int64_t axis, std::int64_t before, std::int64_t after,
                   std::string name = {});

/// Row lookup: out[i..., :] = table[indices[i...], :] (embeddings).
KILN_API Value gather(Value table, Value indices, std::string name = {});
/// out = zeros([rows, ...]); out[indices[i...], :] += updates[i..., :] (gather's gradient).
/// A training op: defined in Kiln::kiln.
KILN_API Value scatter_add_rows(Value indices, Value updates, std::int64_t rows,
                                std::string name = {});
/// One-hot encoding of integer labels along a new last axis.
KILN_API Value one_hot(Value labels, std::int64_t depth, DType dtype = DType::f32,
                       std::string name = {});

/// Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p)
/// when the executable runs in training mode; identity otherwise. Seeded: the mask
/// depends on (seed, run counter, element) only.
KILN_API Value dropout(Value x, float p, std::uint64_t seed, std::string name = {});

/// Mean cross-entropy of softmax(logits [N, C]) against integer labels [N] (fused).
KILN_API Value softmax_cross_entropy(Value logits, Value labels, std::string name = {});
/// Mean squared error (fused).
KILN_API Value mse(Value prediction, Value target, std::string name = {});
/// Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1] (fused, stable).
KILN_API Value binary_cross_entropy_with_logits(Value logits, Value targets, std::string name = {});

// ---- Convolution, pooling, normalisation (NCHW; see docs/ops.md) ----

struct Conv2dOptions {
  Pair stride{1, 1};
  Pair padding{0, 0};
  Pair dilation{1, 1};
  std::int64_t groups = 1;  ///< groups == input channels == output channels: depthwise
};

struct ConvTranspose2dOptions : Conv2dOptions {
  Pair output_padding{0, 0};
};

struct Pool2dOptions {
  Pair kernel{2, 2};
  Pair stride{0, 0};  ///< {0, 0}: the kernel size
  Pair padding{0, 0};
  bool include_pad = true;  ///< avg_pool2d: padding counts in the divisor
};

struct BatchNormOptions {
  float eps = 1e-5f;
  float momentum = 0.1f;
};

/// 2-D convolution of x [N, C, H, W] with w [O, C/groups, kh, kw], plus an optional bias [O].
KILN_API Value conv2d(Value x, Value w, Value bias = {}, Conv2dOptions options = {},
                      std::string name = {});
/// Transposed convolution: x [N, Ci, H, W], w [Ci, Co/groups, kh, kw], optional bias [Co].
KILN_API Value conv_transpose2d(Value x, Value w, Value bias = {},
                                ConvTranspose2dOptions options = {}, std::string name = {});
/// d/dw of conv2d (a training op, defined in Kiln::kiln).
KILN_API Value conv2d_backward_weights(Value x, Value gy, Pair kernel, Conv2dOptions options = {},
                                       std::string name = {});
KILN_API Value max_pool2d(Value x, Pool2dOptions options = {}, std::string name = {});
KILN_API Value avg_pool2d(Value x, Pool2dOptions options = {}, std::string name = {});
/// Gradients of the pooling ops (training ops, defined in Kiln::kiln).
KILN_API Value max_pool2d_backward(Value x, Value gy, Pool2dOptions options, std::string name = {});
KILN_API Value avg_pool2d_backward(Value x, Value gy, Pool2dOptions options, std::string name = {});
/// Mean over H and W, keeping them as size 1: [N, C, 1, 1].
KILN_API Value global_avg_pool2d(Value x, std::string name = {});
/// Batch normalisation over N (and H, W). In training executables it normalises with batch
/// statistics and updates running_mean / running_var in place; otherwise it uses them.
KILN_API Value batch_norm(Value x, Value gamma, Value beta, Value running_mean, Value running_var,
                          BatchNormOptions options = {}, std::string name = {});
/// d/dx of training-mode batch_norm (a training op, defined in Kiln::kiln).
KILN_API Value batch_norm_backward(Value x, Value gamma, Value gy, float eps,
                                   std::string name = {});
/// [N, d1, d2, ...] -> [N, d1 * d2 * ...].
KILN_API Value flatten(Value x, std::string name = {});
/// Nearest-neighbour upsampling by integer factors (height, width).
KILN_API Value upsample_nearest2d(Value x, Pair scale, std::string name = {});

/// A scalar constant in x's graph with x's dtype.
KILN_API Value scalar_like(Value x, double value);

/// Arithmetic operators: the builders above with numpy broadcasting; a scalar operand
/// becomes a constant of the other operand's dtype. x * 0.5, 1.0 - p, (a + b) / c, -x.
inline Value operator+(Value a, Value b) { return add(a, b); }
inline Value operator-(Value a, Value b) { return sub(a, b); }
inline Value operator*(Value a, Value b) { return mul(a, b); }
inline Value operator/(Value a, Value b) { return div(a, b); }
inline Value operator-(Value a) { return neg(a); }
inline Value operator+(Value a, double b) { return add(a, b); }
inline Value operator+(double a, Value b) { return add(a, b); }
inline Value operator-(Value a, double b) { return sub(a, b); }
inline Value operator-(double a, Value b) { return sub(a, b); }
inline Value operator*(Value a, double b) { return mul(a, b); }
inline Value operator*(double a, Value b) { return mul(a, b); }
inline Value operator/(Value a, double b) { return div(a, b); }
inline Value operator/(double a, Value b) { return div(a, b); }
/// a = a + b, and so on (Values are handles: this adds a node and rebinds a).
inline Value& operator+=(Value& a, Value b) { return a = add(a, b); }
inline Value& operator-=(Value& a, Value b) { return a = sub(a, b); }
inline Value& operator*=(Value& a, Value b) { return a = mul(a, b); }
inline Value& operator/=(Value& a, Value b) { return a = div(a, b); }
inline Value& operator+=(Value& a, double b) { return a = add(a, b); }
inline Value& operator-=(Value& a, double b) { return a = sub(a, b); }
inline Value& operator*=(Value& a, double b) { return a = mul(a, b); }
inline Value& operator/=(Value& a, double b) { return a = div(a, b); }

}  // namespace kiln
