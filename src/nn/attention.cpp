// Multi-head attention, the transformer encoder block and positional encodings (see
// kiln/nn/sequence.hpp). Parameters carry PyTorch's names and layouts (a linear weight is
// [out, in]), so a state dict copies over one to one; initialisation follows PyTorch's:
// xavier-uniform in_proj_weight and zero attention biases, U(-1/sqrt(in), 1/sqrt(in)) for
// the other linear weights and biases, layer norms ones and zeros.
#include <cmath>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "nn/layer_util.hpp"

namespace kiln::nn {
namespace {

using detail::initial_value;
using detail::layer_prefix;

/// x [B, T, F] floating with static T and F; returns F.
std::int64_t sequence_features(Value x, const char* layer, const char* what) {
  const Shape& s = x.shape();
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string("nn::") + layer + ": " + what + " '" + x.name() +
                     "' must be f32 or f64, got " + std::string(to_string(x.dtype())));
  if (s.rank() != 3 || s[1] <= 0 || s[2] <= 0)
    throw ShapeError(std::string("nn::") + layer + ": " + what + " '" + x.name() +
                     "' must be [B, T, D] with static T and D, got " + s.str());
  return s[2];
}

struct Seeding {
  Rng* rng;
  std::uint64_t seed;
};

Value param(Graph& g, const std::string& name, const Shape& shape, DType dtype,
            const Initializer& init, const Seeding& s) {
  return g.parameter(name, initial_value(init, shape, dtype, s.rng, s.seed, name));
}

/// x [..., in] @ weight^T + bias with weight [out, in] (PyTorch's nn.Linear layout).
Value linear(Value x, Value weight, Value bias, const std::string& name) {
  Value y = matmul(x, weight, {.transpose_b = true}, name + ".matmul");
  return bias.valid() ? add(y, bias, name + ".add") : y;
}

/// A PyTorch nn.Linear(in, out): "<name>.weight" [out, in], "<name>.bias" [out], both
/// U(-1/sqrt(in), 1/sqrt(in)).
Value linear_layer(Value x, std::int64_t in, std::int64_t out, const std::string& name,
                   const Seeding& s) {
  Graph& g = x.graph();
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  const Value w = param(g, name + ".weight", Shape{out, in}, x.dtype(), uniform(-bound, bound), s);
  const Value b = param(g, name + ".bias", Shape{out}, x.dtype(), uniform(-bound, bound), s);
  return linear(x, w, b, name);
}

/// [B, T, heads * dh] -> [B, heads, T, dh].
Value split_heads(Value x, std::int64_t steps, std::int64_t heads, std::int64_t dh) {
  return transpose(reshape(x, Shape{-1, steps, heads, dh}), {0, 2, 1, 3});
}

}  // namespace

Value multi_head_attention(Value query, Value key, Value value,
                           const MultiHeadAttentionOptions& options) {
  const char* layer = "multi_head_attention";
  Graph& g = detail::graph_of(query, layer, "query");
  if (!key.valid() || !value.valid() || &key.graph() != &g || &value.graph() != &g)
    throw ValueError("nn::multi_head_attention: key and value must be Values of the query's graph");
  const std::int64_t d = sequence_features(query, layer, "query");
  const std::int64_t dk = sequence_features(key, layer, "key");
  const std::int64_t dv = sequence_features(value, layer, "value");
  const std::string where =
      options.name.empty() ? std::string() : " (layer '" + options.name + "')";
  if (dk != d || dv != d)
    throw ShapeError(
        "nn::multi_head_attention: query, key and value must have the same feature "
        "size, got " +
        query.shape().str() + ", " + key.shape().str() + " and " + value.shape().str() + where);
  if (key.shape()[1] != value.shape()[1])
    throw ShapeError("nn::multi_head_attention: key " + key.shape().str() + " and value " +
                     value.shape().str() + " must have the same number of steps" + where);
  if (options.heads <= 0 || d % options.heads != 0)
    throw ValueError("nn::multi_head_attention: the feature size " + std::to_string(d) +
                     " must be divisible by heads = " + std::to_string(options.heads) + where);
  const std::string prefix = layer_prefix(g, options.name, "attention");
  ScopeGuard scope = g.scope(prefix);
  const Seeding s{options.rng, options.seed};
  const DType dtype = query.dtype();
  const std::int64_t heads = options.heads, dh = d / heads;
  const std::int64_t tq = query.shape()[1], tk = key.shape()[1];

  const Value w_in =
      param(g, prefix + ".in_proj_weight", Shape{3 * d, d}, dtype, glorot_uniform, s);
  Value b_in;
  if (options.use_bias) b_in = param(g, prefix + ".in_proj_bias", Shape{3 * d}, dtype, zeros, s);
  Value q, k, v;  // [B, heads, T, dh]
  if (query.id() == key.id() && key.id() == value.id()) {
    // Self-attention: one projection GEMM for q, k and v, and one transpose of its
    // [B, T, 3, heads, dh] into [3, B, heads, T, dh], whose three blocks are q, k and v (views
    // in a compiled plan, and their gradients one concat).
    const Value qkv = linear(query, w_in, b_in, prefix + ".in_proj");
    const Value split =
        transpose(reshape(qkv, Shape{-1, tq, 3, heads, dh}), {2, 0, 3, 1, 4}, prefix + ".heads");
    auto part = [&](std::int64_t i) {
      return reshape(slice(split, 0, i, i + 1), Shape{-1, heads, tq, dh});
    };
    q = part(0);
    k = part(1);
    v = part(2);
  } else {
    auto part = [&](Value x, std::int64_t i, const char* what) {
      const Value w = slice(w_in, 0, i * d, (i + 1) * d);
      const Value b = b_in.valid() ? slice(b_in, 0, i * d, (i + 1) * d) : Value{};
      return linear(x, w, b, prefix + "." + what + "_proj");
    };
    q = split_heads(part(query, 0, "q"), tq, heads, dh);
    k = split_heads(part(key, 1, "k"), tk, heads, dh);
    v = split_heads(part(value, 2, "v"), tk, heads, dh);
  }
  const Value o = attention(q, k, v, {.key_mask = options.key_mask, .causal = options.causal},
                            prefix + ".attention");
  const Value merged = reshape(transpose(o, {0, 2, 1, 3}), Shape{-1, tq, d});
  const double bound = 1.0 / std::sqrt(static_cast<double>(d));
  const Value w_out =
      param(g, prefix + ".out_proj.weight", Shape{d, d}, dtype, uniform(-bound, bound), s);
  Value b_out;
  if (options.use_bias) b_out = param(g, prefix + ".out_proj.bias", Shape{d}, dtype, zeros, s);
  return linear(merged, w_out, b_out, prefix + ".out_proj");
}

Value transformer_encoder_layer(Value x, const TransformerEncoderOptions& options) {
  const char* layer = "transformer_encoder_layer";
  Graph& g = detail::graph_of(x, layer, "input");
  const std::int64_t d = sequence_features(x, layer, "input");
  const std::string where =
      options.name.empty() ? std::string() : " (layer '" + options.name + "')";
  if (options.feedforward <= 0)
    throw ValueError("nn::transformer_encoder_layer: feedforward must be > 0, got " +
                     std::to_string(options.feedforward) + where);
  if (options.activation != Activation::relu && options.activation != Activation::gelu)
    throw ValueError("nn::transformer_encoder_layer: the activation must be relu or gelu" + where);
  if (options.heads <= 0 || d % options.heads != 0)
    throw ValueError("nn::transformer_encoder_layer: the feature size " + std::to_string(d) +
                     " must be divisible by heads = " + std::to_string(options.heads) + where);
  const std::string prefix = layer_prefix(g, options.name, "encoder");
  ScopeGuard scope = g.scope(prefix);
  const Seeding s{options.rng, options.seed};

  auto self_attention = [&](Value h) {
    return multi_head_attention(h, h, h,
                                {.heads = options.heads,
                                 .key_mask = options.key_mask,
                                 .causal = options.causal,
                                 .name = prefix + ".self_attn",
                                 .rng = options.rng,
                                 .seed = options.seed});
  };
  auto feed_forward = [&](Value h) {
    Value f = linear_layer(h, d, options.feedforward, prefix + ".linear1", s);
    f = options.activation == Activation::gelu ? gelu_erf(f) : relu(f);
    return linear_layer(f, options.feedforward, d, prefix + ".linear2", s);
  };
  auto norm = [&](Value h, const char* which) {
    return layer_norm(h, {.eps = options.eps, .name = prefix + "." + which});
  };
  if (options.norm_first) {
    Value h = add(x, self_attention(norm(x, "norm1")));
    return add(h, feed_forward(norm(h, "norm2")));
  }
  const Value h = norm(add(x, self_attention(x)), "norm1");
  return norm(add(h, feed_forward(h)), "norm2");
}

Value positional_encoding(Value x, const PositionalEncodingOptions& options) {
  const char* layer = "positional_encoding";
  Graph& g = detail::graph_of(x, layer, "input");
  const std::int64_t d = sequence_features(x, layer, "input");
  const std::int64_t steps = x.shape()[1];
  const std::string prefix = layer_prefix(g, options.name, "positional_encoding");
  ScopeGuard scope = g.scope(prefix);
  Value table;
  if (options.learned) {
    table = param(g, prefix + ".weight", Shape{steps, d}, x.dtype(), normal(0.02),
                  {options.rng, options.seed});
  } else {
    table = g.constant(sinusoidal_positions(steps, d, x.dtype()), prefix + ".table");
  }
  return add(x, table, prefix + ".add");
}

}  // namespace kiln::nn
