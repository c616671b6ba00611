// Sequence layers: LSTM and GRU (stacked, bidirectional, variable-length through lengths),
// multi-head attention, the transformer encoder block and positional encodings. They build
// graph fragments over the sequence ops of kiln/ops.hpp, like the layers of layers.hpp, and
// name their parameters as PyTorch does, so weights carry over one to one.
//
//   auto x = g.input("series", {kiln::batch, 24, 1});            // [B, T, F], batch first
//   auto r = kiln::nn::lstm(x, {.hidden = 32, .layers = 2, .name = "lstm"});
//   auto y = kiln::nn::dense(kiln::last_valid_step(r.sequence, lengths), 1);
//
//   auto h = kiln::nn::transformer_encoder_layer(tokens, {.heads = 4, .feedforward = 1024});
//
// Shapes are batch first ([B, T, F]) as everywhere in Kiln: the batch is the one dynamic
// dimension, the number of steps T is static (pad shorter sequences and pass lengths).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"

namespace kiln::nn {

// ---------------------------------------------------------------------------------------------
// Recurrent layers

struct RecurrentLayerOptions {
  std::int64_t hidden = 0;  ///< H, required
  std::int64_t layers = 1;
  bool bidirectional = false;
  /// [B] valid steps per row (integer); empty: every step of every row is valid.
  Value lengths = {};
  /// Initial states [layers * directions, B, H] (PyTorch's h_0 / c_0); empty: zeros.
  Value h0 = {};
  Value c0 = {};  ///< LSTM only
  bool use_bias = true;
  /// Every weight and bias starts U(-1/sqrt(H), 1/sqrt(H)) unless set (PyTorch's default).
  Initializer init = {};
  /// Prefix of the parameter names; empty: "lstm_<k>" / "gru_<k>", the first free k.
  /// Parameters: "<name>.weight_ih_l<k>[_reverse]" [G*H, in], "<name>.weight_hh_l<k>..."
  /// [G*H, H], "<name>.bias_ih_l<k>..." and "<name>.bias_hh_l<k>..." [G*H] (G = 4 or 3).
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
  /// false: x is time-major [T, B, F] and `sequence` is [T, B, directions * H] (PyTorch's
  /// batch_first=False, its default); the layer transposes around the batch-first ops.
  bool batch_first = true;
};

struct RecurrentOutput {
  /// [B, T, directions * H]: the last layer's h_t (both directions concatenated); zero at
  /// padded steps. [T, B, directions * H] when batch_first is false.
  Value sequence;
  /// [layers * directions, B, H]: each layer and direction's last valid state (PyTorch's
  /// h_n; c_n for an LSTM, empty for a GRU).
  Value h_n;
  Value c_n;
};

/// x [B, T, F] (or [T, B, F], see batch_first) -> RecurrentOutput. x must be floating with
/// static T and F.
KILN_API RecurrentOutput lstm(Value x, const RecurrentLayerOptions& options);
KILN_API RecurrentOutput gru(Value x, const RecurrentLayerOptions& options);

// ---------------------------------------------------------------------------------------------
// Attention and the transformer encoder

struct MultiHeadAttentionOptions {
  std::int64_t heads = 1;
  /// [B, Tk] float, 1 for keys to attend to, 0 for padding; empty: every key.
  Value key_mask = {};
  bool causal = false;
  bool use_bias = true;
  /// Parameters (PyTorch's nn.MultiheadAttention): "<name>.in_proj_weight" [3D, D],
  /// "<name>.in_proj_bias" [3D], "<name>.out_proj.weight" [D, D], "<name>.out_proj.bias"
  /// [D]; empty name: "attention_<k>".
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// query [B, Tq, D], key and value [B, Tk, D] -> [B, Tq, D] (D divisible by heads).
KILN_API Value multi_head_attention(Value query, Value key, Value value,
                                    const MultiHeadAttentionOptions& options);

struct TransformerEncoderOptions {
  std::int64_t heads = 1;
  std::int64_t feedforward = 2048;  ///< width of the feed-forward block
  /// relu or gelu (exact, kiln::gelu_erf), as PyTorch's activation="relu" / "gelu".
  Activation::Kind activation = Activation::relu;
  /// Pre-norm (x + attn(norm(x)), PyTorch's norm_first=True) or post-norm (the default).
  bool norm_first = false;
  double eps = 1e-5;
  Value key_mask = {};  ///< [B, T] float, 1 for real steps
  bool causal = false;
  /// Parameters as PyTorch's nn.TransformerEncoderLayer: "<name>.self_attn.*",
  /// "<name>.linear1.*", "<name>.linear2.*", "<name>.norm1.*", "<name>.norm2.*";
  /// empty: "encoder_<k>".
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// One transformer encoder block (self-attention and feed-forward, each with a residual
/// and layer norm; no dropout): x [B, T, D] -> [B, T, D].
KILN_API Value transformer_encoder_layer(Value x, const TransformerEncoderOptions& options);

struct PositionalEncodingOptions {
  /// Sinusoidal (a constant table) or learned (a parameter "<name>.weight" [T, D]).
  bool learned = false;
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// x [B, T, D] + positions [T, D].
KILN_API Value positional_encoding(Value x, const PositionalEncodingOptions& options = {});

}  // namespace kiln::nn
