// Layers: builders that add graph fragments (dense, embedding, layer norm, conv2d, batch
// norm, pooling, flatten, dropout) and own their parameters' initialisation; initialisers
// (Glorot, He, normal, ...); Sequential to compose. A layer takes its graph from its input
// value (the overloads with a leading Graph& do the same and check that x belongs to it).
//
//   kiln::nn::Sequential mlp{kiln::nn::Dense(128, kiln::nn::Activation::relu),
//                            kiln::nn::Dense(10)};
//   auto logits = mlp(x);
//   auto h = kiln::nn::dense(x, 64, {.activation = kiln::relu, .name = "fc1"});
//
//   kiln::nn::Sequential cnn{
//       kiln::nn::Conv2d(16, {3, 3}, {.padding = {1, 1}}), kiln::nn::BatchNorm2d(),
//       kiln::nn::Activation(kiln::nn::Activation::relu), kiln::nn::MaxPool2d({2, 2}),
//       kiln::nn::Flatten(), kiln::nn::Dropout(0.25), kiln::nn::Dense(10)};
//
// Parameters are named "<layer>.weight" / "<layer>.bias"; a layer without a name gets the
// first free one of "dense_0", "dense_1", ... Initial values are reproducible: a layer
// without an explicit Rng draws from one seeded by (seed, its parameter's name).
//
// Scopes. Every layer opens a graph scope named by its layer name ("fc1", "conv2d_0",
// "max_pool2d_0", see Graph::scope), so all its nodes (parameters, matmul, bias add,
// activation) carry it, and so do their gradient nodes. A named Sequential opens its name
// around its layers: Sequential("encoder", {...}) gives scopes "encoder/dense_0", ...
//
// Training and evaluation mode. There is no model.train() / model.eval() switch: the mode
// belongs to the compiled executable. A TrainStep (or an Executable compiled with
// CompileOptions::training = true) runs in training mode: dropout drops, batch norm
// normalises with the batch's statistics and updates its running averages in place. A
// plain Executable runs in evaluation mode: dropout is the identity and batch norm uses the
// running averages (which it does not change). So one graph serves both: train it with a
// TrainStep and predict with an Executable over the same graph, as PyTorch users would
// with model.train() and model.eval().
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/graph/op.hpp"
#include "kiln/ops.hpp"

namespace kiln::nn {

// ---------------------------------------------------------------------------------------------
// Initialisers

/// Makes a tensor of a static shape and floating dtype from random bits.
using Initializer = std::function<Tensor(const Shape&, Rng&, DType)>;

/// Fan-in and fan-out of a weight shape, Keras convention: [in, out] for rank 2,
/// [..., in, out] with the leading dims as receptive field for rank > 2, n for rank 1.
struct Fans {
  double in = 1.0;
  double out = 1.0;
};
KILN_API Fans fans(const Shape& shape);

/// Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
KILN_API Tensor glorot_uniform(const Shape& shape, Rng& rng, DType dtype = DType::f32);
/// Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).
KILN_API Tensor glorot_normal(const Shape& shape, Rng& rng, DType dtype = DType::f32);
/// He/Kaiming normal (fan_in, ReLU gain): N(0, 2 / fan_in).
KILN_API Tensor he_normal(const Shape& shape, Rng& rng, DType dtype = DType::f32);
/// He/Kaiming uniform (fan_in, ReLU gain): U(-a, a) with a = sqrt(6 / fan_in).
KILN_API Tensor he_uniform(const Shape& shape, Rng& rng, DType dtype = DType::f32);
/// All zeros / all ones (the Rng is not used).
KILN_API Tensor zeros(const Shape& shape, Rng& rng, DType dtype = DType::f32);
KILN_API Tensor ones(const Shape& shape, Rng& rng, DType dtype = DType::f32);
/// N(mean, stddev^2); stddev >= 0.
KILN_API Initializer normal(double stddev, double mean = 0.0);
/// U(lo, hi); lo <= hi.
KILN_API Initializer uniform(double lo, double hi);
/// Every element equal to value.
KILN_API Initializer constant(double value);

// ---------------------------------------------------------------------------------------------
// Activations

/// The activation a layer applies to its output: one of the built-in kinds, a Kiln op
/// taking (Value, name) such as kiln::relu, or any callable Value(Value).
class KILN_API Activation {
 public:
  enum Kind : std::uint8_t { none, relu, leaky_relu, sigmoid, tanh, gelu, softmax };

  Activation() = default;
  Activation(Kind kind) : kind_(kind) {}  // NOLINT: implicit on purpose
  Activation(Value (*op)(Value, std::string));
  template <class F>
  requires(std::invocable<const F&, Value> && !std::convertible_to<F, Kind> &&
           !std::same_as<std::remove_cvref_t<F>, Activation>)
      Activation(F fn)  // NOLINT: implicit on purpose
      : fn_(std::move(fn)) {}

  /// Applies the activation (identity for none), in the current scope (inside a layer).
  Value operator()(Value x) const;
  /// As a layer of its own (in a Sequential): in a scope "activation_<k>".
  Value operator()(Graph& graph, Value x) const;
  /// False for none.
  bool is_identity() const { return !fn_ && kind_ == none; }

 private:
  Kind kind_ = none;
  std::function<Value(Value)> fn_;
};

// ---------------------------------------------------------------------------------------------
// Layers

/// Where a layer's initial values come from: `rng` if set, otherwise a generator
/// seeded by hash(seed, parameter name), so graphs built the same way start the same.
inline constexpr std::uint64_t default_seed = 0x6b696c6e2d6e6eULL;

struct DenseOptions {
  Activation activation = {};
  bool use_bias = true;
  Initializer weight_init = glorot_uniform;
  Initializer bias_init = zeros;
  /// Prefix of the parameter names; empty: "dense_<k>", the first free k.
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// Fully connected layer: x [..., in] -> activation(x @ weight + bias) [..., units], with
/// parameters "<name>.weight" [in, units] and "<name>.bias" [units]. x must be floating
/// with a static last dim; parameters take x's dtype.
KILN_API Value dense(Value x, std::int64_t units, const DenseOptions& options = {});
KILN_API Value dense(Graph& graph, Value x, std::int64_t units, const DenseOptions& options = {});

struct EmbeddingOptions {
  /// PyTorch's default: N(0, 1).
  Initializer init = normal(1.0);
  DType dtype = DType::f32;
  /// Empty: "embedding_<k>".
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// Lookup table "<name>.weight" [num, dim]: integer indices [S...] -> [S..., dim].
/// An index outside [0, num) raises ValueError when the graph runs.
KILN_API Value embedding(Value indices, std::int64_t num, std::int64_t dim,
                         const EmbeddingOptions& options = {});
KILN_API Value embedding(Graph& graph, Value indices, std::int64_t num, std::int64_t dim,
                         const EmbeddingOptions& options = {});

struct LayerNormOptions {
  /// Held by the fused op as a float (as batch_norm's eps).
  double eps = 1e-5;
  /// Learnable "<name>.weight" (ones) and "<name>.bias" (zeros) of the last dim's size.
  bool elementwise_affine = true;
  /// Empty: "layer_norm_<k>".
  std::string name = {};
};

/// Layer normalisation over the last axis: (x - mean) / sqrt(var + eps) * weight + bias,
/// with the biased variance (as PyTorch). x must be floating with a static last dim. One
/// fused node (kiln::layer_norm) in the layer's scope.
KILN_API Value layer_norm(Value x, const LayerNormOptions& options = {});
KILN_API Value layer_norm(Graph& graph, Value x, const LayerNormOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Convolutional layers (NCHW)

struct Conv2dLayerOptions {
  Pair stride{1, 1};
  Pair padding{0, 0};
  Pair dilation{1, 1};
  /// Input and output channels must divide into the groups; groups == input channels ==
  /// output channels is a depthwise convolution.
  std::int64_t groups = 1;
  Activation activation = {};
  bool use_bias = true;
  /// Default: He/Kaiming normal, N(0, 2 / fan_in) with fan_in = (C / groups) * kh * kw,
  /// as torch.nn.init.kaiming_normal_(mode="fan_in", nonlinearity="relu"); PyTorch's
  /// Conv2d default differs (uniform with a = sqrt(5)). The initialiser is called with the
  /// kernel in Keras's [kh, kw, C / groups, O] layout, so fans() of it gives the receptive
  /// field; the result is transposed to the op's [O, C / groups, kh, kw].
  Initializer weight_init = he_normal;
  /// Default zeros (as Keras; PyTorch draws the bias uniformly).
  Initializer bias_init = zeros;
  /// Prefix of the parameter names; empty: "conv2d_<k>", the first free k.
  std::string name = {};
  Rng* rng = nullptr;
  std::uint64_t seed = default_seed;
};

/// 2-D convolution x [N, C, H, W] -> activation(conv2d(x, weight) + bias) [N, out_channels,
/// Ho, Wo] with parameters "<name>.weight" [out_channels, C / groups, kh, kw] and
/// "<name>.bias" [out_channels]. The input channels C are taken from x (static); the
/// parameters take x's dtype.
KILN_API Value conv2d(Value x, std::int64_t out_channels, Pair kernel,
                      const Conv2dLayerOptions& options = {});
KILN_API Value conv2d(Graph& graph, Value x, std::int64_t out_channels, Pair kernel,
                      const Conv2dLayerOptions& options = {});

struct BatchNormLayerOptions {
  double eps = 1e-5;
  /// Weight of the new batch statistic in the running averages (PyTorch's convention).
  double momentum = 0.1;
  /// Learnable per-channel scale "<name>.weight" (ones) and shift "<name>.bias" (zeros);
  /// false: fixed 1 and 0.
  bool affine = true;
  /// Empty: "batch_norm_<k>".
  std::string name = {};
};

/// Batch normalisation of x [N, C, H, W] (or [N, C]) per channel: trainable
/// "<name>.weight" and "<name>.bias" [C], and buffers (non-trainable parameters, see
/// Graph::buffers) "<name>.running_mean" (zeros) and "<name>.running_var" (ones) [C].
/// Training executables use the batch statistics and update the buffers in place;
/// evaluation executables use the buffers (see the top of this file).
KILN_API Value batch_norm(Value x, const BatchNormLayerOptions& options = {});
KILN_API Value batch_norm(Graph& graph, Value x, const BatchNormLayerOptions& options = {});

/// Max / average pooling over windows of `kernel` (stride defaults to the kernel), in a
/// scope "max_pool2d_<k>" / "avg_pool2d_<k>".
KILN_API Value max_pool2d(Value x, Pair kernel, Pool2dOptions options = {});
KILN_API Value avg_pool2d(Value x, Pair kernel, Pool2dOptions options = {});
KILN_API Value max_pool2d(Graph& graph, Value x, Pair kernel, Pool2dOptions options = {});
KILN_API Value avg_pool2d(Graph& graph, Value x, Pair kernel, Pool2dOptions options = {});

struct DropoutOptions {
  /// Mixed with the layer's name into the op's seed, so two dropout layers of one graph
  /// draw different masks.
  std::uint64_t seed = default_seed;
  /// Empty: "dropout_<k>".
  std::string name = {};
};

/// Inverted dropout with probability p in [0, 1): active in training executables only,
/// the identity in evaluation executables.
KILN_API Value dropout(Value x, double p, const DropoutOptions& options = {});
KILN_API Value dropout(Graph& graph, Value x, double p, const DropoutOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Composition

/// A layer: adds its fragment to the graph of its input and returns its output. Made from
/// a layer object or any callable Value(Value) or Value(Graph&, Value), e.g. a lambda.
class KILN_API Layer {
 public:
  Layer() = default;
  template <class F>
  requires(!std::same_as<std::remove_cvref_t<F>, Layer> &&
           (std::invocable<const F&, Graph&, Value> || std::invocable<const F&, Value>))
      Layer(F fn)  // NOLINT: implicit on purpose
      : fn_(wrap(std::move(fn))) {}

  /// Applies the layer to x (in x's graph); ValueError if empty.
  Value operator()(Value x) const;
  /// The same, checking that x belongs to `graph`.
  Value operator()(Graph& graph, Value x) const;
  explicit operator bool() const { return static_cast<bool>(fn_); }

 private:
  template <class F>
  static std::function<Value(Graph&, Value)> wrap(F fn) {
    if constexpr (std::invocable<const F&, Graph&, Value>) {
      return [fn = std::move(fn)](Graph& graph, Value x) -> Value { return fn(graph, x); };
    } else {
      return [fn = std::move(fn)](Graph&, Value x) -> Value { return fn(x); };
    }
  }

  std::function<Value(Graph&, Value)> fn_;
};

/// Layers applied in order: mlp(x). Calling it twice on one graph creates new parameters
/// (auto-named layers) or raises NameError (explicitly named ones). A named Sequential
/// opens a scope of its name around its layers (see the top of this file).
class KILN_API Sequential {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<Layer> layers) : layers_(layers) {}
  explicit Sequential(std::vector<Layer> layers) : layers_(std::move(layers)) {}
  /// Sequential("encoder", {nn::Dense(64), nn::Dense(8)}).
  Sequential(std::string name, std::vector<Layer> layers)
      : name_(std::move(name)), layers_(std::move(layers)) {}

  /// Appends a layer; returns *this to chain.
  Sequential& add(Layer layer);
  Value operator()(Value x) const;
  /// The same, checking that x belongs to `graph`.
  Value operator()(Graph& graph, Value x) const;
  std::size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  /// The scope it opens ("" for none).
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<Layer> layers_;
};

/// nn::dense as a layer object: Dense(128, Activation::relu) or Dense(10, {.name = "out"}).
class KILN_API Dense {
 public:
  explicit Dense(std::int64_t units, Activation activation = {});
  Dense(std::int64_t units, DenseOptions options);
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  std::int64_t units_;
  DenseOptions options_;
};

/// nn::embedding as a layer object.
class KILN_API Embedding {
 public:
  Embedding(std::int64_t num, std::int64_t dim, EmbeddingOptions options = {});
  Value operator()(Value indices) const;
  Value operator()(Graph& graph, Value indices) const;

 private:
  std::int64_t num_;
  std::int64_t dim_;
  EmbeddingOptions options_;
};

/// nn::layer_norm as a layer object.
class KILN_API LayerNorm {
 public:
  explicit LayerNorm(LayerNormOptions options = {}) : options_(std::move(options)) {}
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  LayerNormOptions options_;
};

/// nn::conv2d as a layer object: Conv2d(16, {3, 3}, {.padding = {1, 1}}).
class KILN_API Conv2d {
 public:
  Conv2d(std::int64_t out_channels, Pair kernel, Conv2dLayerOptions options = {});
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  std::int64_t out_channels_;
  Pair kernel_;
  Conv2dLayerOptions options_;
};

/// nn::batch_norm as a layer object (channels taken from the input).
class KILN_API BatchNorm2d {
 public:
  explicit BatchNorm2d(BatchNormLayerOptions options = {}) : options_(std::move(options)) {}
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  BatchNormLayerOptions options_;
};

/// Max pooling as a layer object: MaxPool2d({2, 2}).
class KILN_API MaxPool2d {
 public:
  explicit MaxPool2d(Pair kernel, Pool2dOptions options = {});
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  Pool2dOptions options_;
};

/// Average pooling as a layer object: AvgPool2d({2, 2}).
class KILN_API AvgPool2d {
 public:
  explicit AvgPool2d(Pair kernel, Pool2dOptions options = {});
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  Pool2dOptions options_;
};

/// Mean over H and W: [N, C, H, W] -> [N, C, 1, 1] (follow with Flatten for [N, C]), in a
/// scope "global_avg_pool2d_<k>".
class KILN_API GlobalAvgPool2d {
 public:
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;
};

/// [N, d1, d2, ...] -> [N, d1 * d2 * ...], in a scope "flatten_<k>".
class KILN_API Flatten {
 public:
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;
};

/// nn::dropout as a layer object: Dropout(0.5).
class KILN_API Dropout {
 public:
  explicit Dropout(double p, DropoutOptions options = {});
  Value operator()(Value x) const;
  Value operator()(Graph& graph, Value x) const;

 private:
  double p_;
  DropoutOptions options_;
};

/// The stored tensors of the graph's parameters, in creation order (the order of
/// Graph::parameters(), and so of kiln::grad(loss, graph.parameters())). They share
/// storage with the graph: an optimizer updating them updates the model.
KILN_API std::vector<Tensor> parameter_tensors(Graph& graph);
/// The same with their names ("fc1.weight", ...): an optimizer made from them keys its
/// state by parameter name, so checkpoints survive a reordering of the parameters.
KILN_API std::vector<std::pair<std::string, Tensor>> named_parameters(Graph& graph);

}  // namespace kiln::nn
