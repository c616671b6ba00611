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
/// Gradients as one op each (training ops, defined in Kiln::kiln; y, gy of one shape):
/// relu's from its output, gy * (y > 0); softmax's along `axis` from its output y,
/// y * (gy - sum(gy * y, axis)).
KILN_API Value relu_backward(Value y, Value gy, std::string name = {});
KILN_API Value softmax_backward(Value y, Value gy, std::int64_t axis = -1, std::string name = {});

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

// ---- Sequence ops (batch-first; see docs/sequence.md) ----
//
// The recurrent ops run the recurrence only: the input projection x @ W_ih^T + b_ih is an
// ordinary matmul over all steps at once (one large GEMM), done by the caller (the
// nn::lstm / nn::gru layers). Each recurrent op returns one packed tensor holding what its
// backward pass needs; the layers slice the sequence and the last states out of it.
//
// Variable-length batches: `lengths` [B] (i32 or i64, each in [0, T]) marks steps
// t >= lengths[b] of row b as padding. A forward op skips them and carries its state
// through (so step T-1 holds each row's last valid state); with `reverse` the op runs
// t = lengths[b]-1 down to 0 and padded steps hold the initial state (so step 0 holds the
// last state). Without lengths every step is valid.

struct RecurrentOptions {
  Value lengths = {};    ///< [B] valid steps per row (integer); empty: all T steps
  bool reverse = false;  ///< run from each row's last valid step to step 0
};

/// One LSTM layer direction (PyTorch's gate order i, f, g, o):
///   gates_t = xw[:, t] + h_{t-1} @ w_hh^T            xw [B, T, 4H], w_hh [4H, H]
///   i, f, o = sigmoid(gates), g = tanh(gates)
///   c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)   h0, c0 [B, H]
/// Returns the packed [B, T, 6H]: (i, f, g, o) activated in [0, 4H), c_t in [4H, 5H),
/// h_t in [5H, 6H). Padded steps hold zero gates and the carried state (see above).
KILN_API Value lstm(Value xw, Value w_hh, Value h0, Value c0, const RecurrentOptions& options = {},
                    std::string name = {});
/// Gradient of lstm (a training op, defined in Kiln::kiln): y is lstm's packed output and gy
/// the gradient flowing into all of it. Returns [B, T + 1, 4H]: steps [0, T) hold the
/// gradient with respect to xw (the gate pre-activations), step T holds [dh0 | dc0 | 0 | 0].
KILN_API Value lstm_backward(Value y, Value gy, Value w_hh, Value h0, Value c0,
                             const RecurrentOptions& options = {}, std::string name = {});

/// One GRU layer direction (PyTorch's gate order r, z, n):
///   hw_t = h_{t-1} @ w_hh^T + b_hh                   xw [B, T, 3H], w_hh [3H, H], b_hh [3H]
///   r = sigmoid(xw_r + hw_r), z = sigmoid(xw_z + hw_z), n = tanh(xw_n + r * hw_n)
///   h_t = (1 - z) * n + z * h_{t-1}                   h0 [B, H]
/// Returns the packed [B, T, 5H]: r, z, n in [0, 3H), hw_n in [3H, 4H), h_t in [4H, 5H).
KILN_API Value gru(Value xw, Value w_hh, Value b_hh, Value h0, const RecurrentOptions& options = {},
                   std::string name = {});
/// Gradient of gru (a training op, defined in Kiln::kiln). Returns [B, 2T + 1, 3H]: steps
/// [0, T) the gradient with respect to xw, steps [T, 2T) the gradient with respect to hw
/// (h_{t-1} @ w_hh^T + b_hh; it differs from xw's in the n gate), step 2T [dh0 | 0 | 0].
KILN_API Value gru_backward(Value y, Value gy, Value w_hh, Value h0,
                            const RecurrentOptions& options = {}, std::string name = {});

struct AttentionOptions {
  /// [B, Tk] float, 1 for a key to attend to and 0 for padding; empty: every key.
  Value key_mask = {};
  /// Query i attends to keys j <= i only (needs Tq == Tk).
  bool causal = false;
  /// Multiplies q k^T; 0: 1 / sqrt(d).
  float scale = 0.0f;
};

/// Scaled dot-product attention, fused: softmax(q k^T * scale + masks) v over q [B, N, Tq, d],
/// k [B, N, Tk, d], v [B, N, Tk, dv] -> [B, N, Tq, dv] (N heads). A query whose keys are all
/// masked gets zeros (PyTorch gives NaN there).
KILN_API Value attention(Value q, Value k, Value v, const AttentionOptions& options = {},
                         std::string name = {});

/// Exact GELU, x * Phi(x) with the normal CDF (PyTorch's default), as one op. kiln::gelu(x)
/// above is the tanh approximation, composed from other ops.
KILN_API Value gelu_erf(Value x, std::string name = {});
/// Gradient of gelu_erf (a training op, defined in Kiln::kiln): gy * (Phi(x) + x * phi(x)),
/// phi the normal density; x and gy of one shape.
KILN_API Value gelu_backward(Value x, Value gy, std::string name = {});

/// Layer normalisation over the last axis, fused: (x - mean) / sqrt(var + eps) * gamma + beta
/// per row of x [..., D] (biased variance, as PyTorch). gamma and beta [D] are both given or
/// both empty (no affine). nn::layer_norm builds it with its parameters.
KILN_API Value layer_norm(Value x, Value gamma, Value beta, float eps = 1e-5f,
                          std::string name = {});
/// d/dx of layer_norm (a training op, defined in Kiln::kiln); gamma may be empty (no affine).
/// Per row, xhat = (x - mean) * rstd and g = gy * gamma:
/// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
KILN_API Value layer_norm_backward(Value x, Value gamma, Value gy, float eps,
                                   std::string name = {});

/// Sequence utilities (composed from other ops).
/// [B] integer lengths -> [B, steps] float mask, 1 where t < lengths[b].
KILN_API Value sequence_mask(Value lengths, std::int64_t steps, DType dtype = DType::f32,
                             std::string name = {});
/// x [B, T, F] -> [B, F]: each row's step lengths[b] - 1 (differentiable; rows with length 0
/// give zeros).
KILN_API Value last_valid_step(Value x, Value lengths, std::string name = {});
/// The sinusoidal position table of "Attention Is All You Need": [steps, dim],
/// pe[t, 2i] = sin(t / 10000^(2i/dim)), pe[t, 2i+1] = cos(...).
KILN_API Tensor sinusoidal_positions(std::int64_t steps, std::int64_t dim,
                                     DType dtype = DType::f32);

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
