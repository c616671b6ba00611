// Layer builders (dense, embedding, layer norm, conv2d, batch norm, pooling, dropout),
// activations, Sequential and the layer objects.
#include "kiln/nn/layers.hpp"

#include <string>
#include <string_view>

#include "internal/conv_geometry.hpp"
#include "internal/fnv1a.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"
#include "nn/layer_util.hpp"

namespace kiln::nn {
// The helpers every layer family uses (declared in nn/layer_util.hpp; the sequence layers
// in src/nn/recurrent.cpp share them).
namespace detail {

using internal::fnv1a;

void check_input(Graph& graph, Value x, const char* layer, const char* what) {
  if (!x.valid()) {
    throw ValueError(std::string("nn::") + layer + ": " + what + " is an empty Value");
  }
  if (&x.graph() != &graph) {
    throw ValueError(std::string("nn::") + layer + ": " + what + " '" + x.name() +
                     "' belongs to another graph");
  }
}

// The graph of a layer's input; ValueError naming the layer if x is empty.
Graph& graph_of(Value x, const char* layer, const char* what) {
  if (!x.valid()) {
    throw ValueError(std::string("nn::") + layer + ": " + what + " is an empty Value");
  }
  return x.graph();
}

// True if `prefix` is one of the "/"-separated parts of `scope`.
bool scope_has(const std::string& scope, const std::string& prefix) {
  std::size_t begin = 0;
  while (begin <= scope.size()) {
    std::size_t end = scope.find('/', begin);
    if (end == std::string::npos) end = scope.size();
    if (scope.compare(begin, end - begin, prefix) == 0) return true;
    begin = end + 1;
  }
  return false;
}

// A node named `prefix` or "<prefix>.<anything>", or in a scope `prefix`.
const Node* node_with_prefix(const Graph& graph, const std::string& prefix) {
  for (const Node& n : graph.nodes()) {
    if (n.name == prefix ||
        (n.name.size() > prefix.size() && n.name.compare(0, prefix.size(), prefix) == 0 &&
         n.name[prefix.size()] == '.') ||
        (!n.scope.empty() && scope_has(n.scope, prefix))) {
      return &n;
    }
  }
  return nullptr;
}

// The name prefix of a new layer: the requested one (which must be free) or kind_<k>.
std::string layer_prefix(const Graph& graph, const std::string& requested, const char* kind) {
  if (!requested.empty()) {
    if (const Node* n = node_with_prefix(graph, requested)) {
      throw NameError(std::string("nn::") + kind + ": layer name '" + requested +
                      "' is already used in the graph (node '" + n->name + "')");
    }
    return requested;
  }
  for (int k = 0;; ++k) {
    std::string candidate = std::string(kind) + "_" + std::to_string(k);
    if (node_with_prefix(graph, candidate) == nullptr) return candidate;
  }
}

// Runs an initialiser and checks that it made what was asked for.
Tensor initial_value(const Initializer& init, const Shape& shape, DType dtype, Rng* rng,
                     std::uint64_t seed, const std::string& param_name) {
  if (!init) throw ValueError("nn: no initialiser given for parameter '" + param_name + "'");
  Rng local(hash_bits(seed, fnv1a(param_name)));
  Tensor t = init(shape, rng != nullptr ? *rng : local, dtype);
  if (!t.defined() || t.shape() != shape || t.dtype() != dtype) {
    throw ValueError("nn: the initialiser of parameter '" + param_name + "' returned " +
                     (t.defined() ? t.str() : std::string("an empty tensor")) + ", expected " +
                     std::string(to_string(dtype)) + " " + shape.str());
  }
  return t;
}

// The static, positive size of x's last dimension.
std::int64_t last_dim(Value x, const char* layer) {
  if (!is_floating(x.dtype())) {
    throw DTypeError(std::string("nn::") + layer + ": input '" + x.name() +
                     "' must be f32 or f64, got " + std::string(to_string(x.dtype())));
  }
  const Shape& s = x.shape();
  if (s.rank() == 0 || s[s.rank() - 1] <= 0) {
    throw ShapeError(std::string("nn::") + layer + ": input '" + x.name() + "' has shape " +
                     s.str() + "; expected [..., features] with a static last dimension");
  }
  return s[s.rank() - 1];
}

// x must be a floating [N, C, H, W] value with a static channel count; returns C.
std::int64_t nchw_channels(Value x, const char* layer) {
  if (!is_floating(x.dtype())) {
    throw DTypeError(std::string("nn::") + layer + ": input '" + x.name() +
                     "' must be f32 or f64, got " + std::string(to_string(x.dtype())));
  }
  const Shape& s = x.shape();
  if (s.rank() != 4 || s[1] <= 0) {
    throw ShapeError(std::string("nn::") + layer + ": input '" + x.name() + "' has shape " +
                     s.str() + "; expected [N, C, H, W] with a static channel count");
  }
  return s[1];
}

}  // namespace detail

using namespace detail;  // NOLINT: this file's own helpers
using internal::pair_str;

// ---------------------------------------------------------------------------------------------
// Activation

Activation::Activation(Value (*op)(Value, std::string)) {
  if (op != nullptr) fn_ = [op](Value x) { return op(x, std::string()); };
}

Value Activation::operator()(Value x) const {
  if (fn_) return fn_(x);
  switch (kind_) {
    case none:
      return x;
    case relu:
      return kiln::relu(x);
    case leaky_relu:
      return kiln::leaky_relu(x);
    case sigmoid:
      return kiln::sigmoid(x);
    case tanh:
      return kiln::tanh(x);
    case gelu:
      return kiln::gelu(x);
    case softmax:
      return kiln::softmax(x, -1);
  }
  throw ValueError("nn::Activation: unknown kind " + std::to_string(static_cast<int>(kind_)));
}

Value Activation::operator()(Graph& graph, Value x) const {
  check_input(graph, x, "Activation", "input");
  if (is_identity()) return x;
  ScopeGuard layer = graph.scope(layer_prefix(graph, "", "activation"));
  return (*this)(x);
}

// ---------------------------------------------------------------------------------------------
// Layers

Value dense(Value x, std::int64_t units, const DenseOptions& options) {
  Graph& graph = graph_of(x, "dense", "input");
  const std::int64_t in = last_dim(x, "dense");
  if (units <= 0) {
    throw ValueError("nn::dense: units must be > 0, got " + std::to_string(units) +
                     (options.name.empty() ? std::string() : " (layer '" + options.name + "')"));
  }
  const std::string prefix = layer_prefix(graph, options.name, "dense");
  ScopeGuard layer = graph.scope(prefix);
  const DType dtype = x.dtype();

  const std::string weight_name = prefix + ".weight";
  Value weight =
      graph.parameter(weight_name, initial_value(options.weight_init, Shape{in, units}, dtype,
                                                 options.rng, options.seed, weight_name));
  Value bias;
  if (options.use_bias) {
    const std::string bias_name = prefix + ".bias";
    bias = graph.parameter(bias_name, initial_value(options.bias_init, Shape{units}, dtype,
                                                    options.rng, options.seed, bias_name));
  }

  Value h;
  if (x.shape().rank() == 1) {
    h = kiln::matmul(kiln::reshape(x, Shape{1, in}), weight, {}, prefix + ".matmul");
    h = kiln::reshape(h, Shape{units});
  } else {
    h = kiln::matmul(x, weight, {}, prefix + ".matmul");
  }
  if (options.use_bias) h = kiln::add(h, bias, prefix + ".add");
  return options.activation(h);
}

Value embedding(Value indices, std::int64_t num, std::int64_t dim,
                const EmbeddingOptions& options) {
  Graph& graph = graph_of(indices, "embedding", "indices");
  if (!is_integer(indices.dtype())) {
    throw DTypeError("nn::embedding: indices '" + indices.name() + "' must be i32 or i64, got " +
                     std::string(to_string(indices.dtype())));
  }
  if (num <= 0 || dim <= 0) {
    throw ValueError("nn::embedding: num and dim must be > 0, got num=" + std::to_string(num) +
                     ", dim=" + std::to_string(dim));
  }
  if (!is_floating(options.dtype)) {
    throw DTypeError("nn::embedding: the table must be f32 or f64, got " +
                     std::string(to_string(options.dtype)));
  }
  const std::string prefix = layer_prefix(graph, options.name, "embedding");
  ScopeGuard layer = graph.scope(prefix);
  const std::string weight_name = prefix + ".weight";
  Value table =
      graph.parameter(weight_name, initial_value(options.init, Shape{num, dim}, options.dtype,
                                                 options.rng, options.seed, weight_name));
  return kiln::gather(table, indices, prefix + ".gather");
}

Value layer_norm(Value x, const LayerNormOptions& options) {
  Graph& graph = graph_of(x, "layer_norm", "input");
  const std::int64_t features = last_dim(x, "layer_norm");
  if (!(options.eps >= 0.0)) {
    throw ValueError("nn::layer_norm: eps must be >= 0, got " + std::to_string(options.eps));
  }
  const std::string prefix = layer_prefix(graph, options.name, "layer_norm");
  ScopeGuard layer = graph.scope(prefix);
  // One fused node (Op::layer_norm); the parameters keep their names for checkpoints.
  Value gamma, beta;
  if (options.elementwise_affine) {
    Rng unused;
    gamma = graph.parameter(prefix + ".weight", ones(Shape{features}, unused, x.dtype()));
    beta = graph.parameter(prefix + ".bias", zeros(Shape{features}, unused, x.dtype()));
  }
  return kiln::layer_norm(x, gamma, beta, static_cast<float>(options.eps), prefix + ".norm");
}

Value conv2d(Value x, std::int64_t out_channels, Pair kernel, const Conv2dLayerOptions& options) {
  Graph& graph = graph_of(x, "conv2d", "input");
  const std::int64_t in = nchw_channels(x, "conv2d");
  const std::string where =
      options.name.empty() ? std::string() : " (layer '" + options.name + "')";
  if (out_channels <= 0) {
    throw ValueError("nn::conv2d: out_channels must be > 0, got " + std::to_string(out_channels) +
                     where);
  }
  if (kernel[0] <= 0 || kernel[1] <= 0) {
    throw ValueError("nn::conv2d: kernel " + pair_str(kernel) + " must be positive" + where);
  }
  const std::int64_t groups = options.groups;
  if (groups <= 0 || in % groups != 0 || out_channels % groups != 0) {
    throw ValueError("nn::conv2d: groups = " + std::to_string(groups) +
                     " must be positive and divide the input channels (" + std::to_string(in) +
                     ") and the output channels (" + std::to_string(out_channels) + ")" + where);
  }
  const std::string prefix = layer_prefix(graph, options.name, "conv2d");
  ScopeGuard layer = graph.scope(prefix);
  const DType dtype = x.dtype();

  // The initialiser sees the kernel as [kh, kw, C/groups, O] (Keras), so fans() is right.
  const std::string weight_name = prefix + ".weight";
  const Tensor hwio =
      initial_value(options.weight_init, Shape{kernel[0], kernel[1], in / groups, out_channels},
                    dtype, options.rng, options.seed, weight_name);
  Value weight = graph.parameter(weight_name, hwio.permute({3, 2, 0, 1}).contiguous());
  Value bias;
  if (options.use_bias) {
    const std::string bias_name = prefix + ".bias";
    bias = graph.parameter(bias_name, initial_value(options.bias_init, Shape{out_channels}, dtype,
                                                    options.rng, options.seed, bias_name));
  }
  Value y = kiln::conv2d(x, weight, bias,
                         {.stride = options.stride,
                          .padding = options.padding,
                          .dilation = options.dilation,
                          .groups = groups},
                         prefix + ".conv");
  return options.activation(y);
}

Value batch_norm(Value x, const BatchNormLayerOptions& options) {
  Graph& graph = graph_of(x, "batch_norm", "input");
  if (!is_floating(x.dtype())) {
    throw DTypeError("nn::batch_norm: input '" + x.name() + "' must be f32 or f64, got " +
                     std::string(to_string(x.dtype())));
  }
  const Shape& s = x.shape();
  if ((s.rank() != 2 && s.rank() != 4) || s[1] <= 0) {
    throw ShapeError("nn::batch_norm: input '" + x.name() + "' has shape " + s.str() +
                     "; expected [N, C, H, W] or [N, C] with a static channel count");
  }
  if (!(options.eps > 0.0)) {
    throw ValueError("nn::batch_norm: eps must be > 0, got " + std::to_string(options.eps));
  }
  if (!(options.momentum >= 0.0 && options.momentum <= 1.0)) {
    throw ValueError("nn::batch_norm: momentum must be in [0, 1], got " +
                     std::to_string(options.momentum));
  }
  const std::int64_t channels = s[1];
  const std::string prefix = layer_prefix(graph, options.name, "batch_norm");
  ScopeGuard layer = graph.scope(prefix);
  const DType dtype = x.dtype();
  const Shape shape{channels};

  Value gamma;
  Value beta;
  if (options.affine) {
    gamma = graph.parameter(prefix + ".weight", Tensor::full(shape, 1.0, dtype));
    beta = graph.parameter(prefix + ".bias", Tensor::zeros(shape, dtype));
  } else {
    gamma = graph.constant(Tensor::full(shape, 1.0, dtype), prefix + ".weight");
    beta = graph.constant(Tensor::zeros(shape, dtype), prefix + ".bias");
  }
  Value running_mean =
      graph.parameter(prefix + ".running_mean", Tensor::zeros(shape, dtype), /*trainable=*/false);
  Value running_var =
      graph.parameter(prefix + ".running_var", Tensor::full(shape, 1.0, dtype), false);
  return kiln::batch_norm(
      x, gamma, beta, running_mean, running_var,
      {.eps = static_cast<float>(options.eps), .momentum = static_cast<float>(options.momentum)},
      prefix + ".normalise");
}

Value max_pool2d(Value x, Pair kernel, Pool2dOptions options) {
  Graph& graph = graph_of(x, "max_pool2d", "input");
  ScopeGuard layer = graph.scope(layer_prefix(graph, "", "max_pool2d"));
  options.kernel = kernel;
  return kiln::max_pool2d(x, options);
}

Value avg_pool2d(Value x, Pair kernel, Pool2dOptions options) {
  Graph& graph = graph_of(x, "avg_pool2d", "input");
  ScopeGuard layer = graph.scope(layer_prefix(graph, "", "avg_pool2d"));
  options.kernel = kernel;
  return kiln::avg_pool2d(x, options);
}

Value dropout(Value x, double p, const DropoutOptions& options) {
  Graph& graph = graph_of(x, "dropout", "input");
  if (!(p >= 0.0 && p < 1.0)) {
    throw ValueError("nn::dropout: p must be in [0, 1), got " + std::to_string(p));
  }
  const std::string prefix = layer_prefix(graph, options.name, "dropout");
  ScopeGuard layer = graph.scope(prefix);
  return kiln::dropout(x, static_cast<float>(p), hash_bits(options.seed, fnv1a(prefix)), prefix);
}

// The overloads with a graph: check that x belongs to it, then the same.

Value dense(Graph& graph, Value x, std::int64_t units, const DenseOptions& options) {
  check_input(graph, x, "dense", "input");
  return dense(x, units, options);
}

Value embedding(Graph& graph, Value indices, std::int64_t num, std::int64_t dim,
                const EmbeddingOptions& options) {
  check_input(graph, indices, "embedding", "indices");
  return embedding(indices, num, dim, options);
}

Value layer_norm(Graph& graph, Value x, const LayerNormOptions& options) {
  check_input(graph, x, "layer_norm", "input");
  return layer_norm(x, options);
}

Value conv2d(Graph& graph, Value x, std::int64_t out_channels, Pair kernel,
             const Conv2dLayerOptions& options) {
  check_input(graph, x, "conv2d", "input");
  return conv2d(x, out_channels, kernel, options);
}

Value batch_norm(Graph& graph, Value x, const BatchNormLayerOptions& options) {
  check_input(graph, x, "batch_norm", "input");
  return batch_norm(x, options);
}

Value max_pool2d(Graph& graph, Value x, Pair kernel, Pool2dOptions options) {
  check_input(graph, x, "max_pool2d", "input");
  return max_pool2d(x, kernel, options);
}

Value avg_pool2d(Graph& graph, Value x, Pair kernel, Pool2dOptions options) {
  check_input(graph, x, "avg_pool2d", "input");
  return avg_pool2d(x, kernel, options);
}

Value dropout(Graph& graph, Value x, double p, const DropoutOptions& options) {
  check_input(graph, x, "dropout", "input");
  return dropout(x, p, options);
}

// ---------------------------------------------------------------------------------------------
// Composition

Value Layer::operator()(Value x) const {
  if (!fn_) throw ValueError("nn::Layer: the layer is empty");
  return fn_(graph_of(x, "Layer", "input"), x);
}

Value Layer::operator()(Graph& graph, Value x) const {
  check_input(graph, x, "Layer", "input");
  if (!fn_) throw ValueError("nn::Layer: the layer is empty");
  return fn_(graph, x);
}

Sequential& Sequential::add(Layer layer) {
  if (!layer) throw ValueError("nn::Sequential::add: empty layer");
  layers_.push_back(std::move(layer));
  return *this;
}

Value Sequential::operator()(Value x) const {
  Graph& graph = graph_of(x, "Sequential", "input");
  ScopeGuard scope;
  if (!name_.empty()) scope = graph.scope(name_);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]) throw ValueError("nn::Sequential: layer " + std::to_string(i) + " is empty");
    x = layers_[i](graph, x);
  }
  return x;
}

Value Sequential::operator()(Graph& graph, Value x) const {
  check_input(graph, x, "Sequential", "input");
  return (*this)(x);
}

Dense::Dense(std::int64_t units, Activation activation) : units_(units) {
  options_.activation = std::move(activation);
}

Dense::Dense(std::int64_t units, DenseOptions options)
    : units_(units), options_(std::move(options)) {}

Value Dense::operator()(Value x) const { return dense(x, units_, options_); }
Value Dense::operator()(Graph& graph, Value x) const { return dense(graph, x, units_, options_); }

Embedding::Embedding(std::int64_t num, std::int64_t dim, EmbeddingOptions options)
    : num_(num), dim_(dim), options_(std::move(options)) {}

Value Embedding::operator()(Value indices) const {
  return embedding(indices, num_, dim_, options_);
}
Value Embedding::operator()(Graph& graph, Value indices) const {
  return embedding(graph, indices, num_, dim_, options_);
}

Value LayerNorm::operator()(Value x) const { return layer_norm(x, options_); }
Value LayerNorm::operator()(Graph& graph, Value x) const { return layer_norm(graph, x, options_); }

Conv2d::Conv2d(std::int64_t out_channels, Pair kernel, Conv2dLayerOptions options)
    : out_channels_(out_channels), kernel_(kernel), options_(std::move(options)) {}

Value Conv2d::operator()(Value x) const { return conv2d(x, out_channels_, kernel_, options_); }
Value Conv2d::operator()(Graph& graph, Value x) const {
  return conv2d(graph, x, out_channels_, kernel_, options_);
}

Value BatchNorm2d::operator()(Value x) const { return batch_norm(x, options_); }
Value BatchNorm2d::operator()(Graph& graph, Value x) const {
  return batch_norm(graph, x, options_);
}

MaxPool2d::MaxPool2d(Pair kernel, Pool2dOptions options) : options_(options) {
  options_.kernel = kernel;
}

Value MaxPool2d::operator()(Value x) const { return max_pool2d(x, options_.kernel, options_); }
Value MaxPool2d::operator()(Graph& graph, Value x) const {
  return max_pool2d(graph, x, options_.kernel, options_);
}

AvgPool2d::AvgPool2d(Pair kernel, Pool2dOptions options) : options_(options) {
  options_.kernel = kernel;
}

Value AvgPool2d::operator()(Value x) const { return avg_pool2d(x, options_.kernel, options_); }
Value AvgPool2d::operator()(Graph& graph, Value x) const {
  return avg_pool2d(graph, x, options_.kernel, options_);
}

Value GlobalAvgPool2d::operator()(Value x) const {
  Graph& graph = graph_of(x, "GlobalAvgPool2d", "input");
  ScopeGuard layer = graph.scope(layer_prefix(graph, "", "global_avg_pool2d"));
  return kiln::global_avg_pool2d(x);
}
Value GlobalAvgPool2d::operator()(Graph& graph, Value x) const {
  check_input(graph, x, "GlobalAvgPool2d", "input");
  return (*this)(x);
}

Value Flatten::operator()(Value x) const {
  Graph& graph = graph_of(x, "Flatten", "input");
  ScopeGuard layer = graph.scope(layer_prefix(graph, "", "flatten"));
  return kiln::flatten(x);
}
Value Flatten::operator()(Graph& graph, Value x) const {
  check_input(graph, x, "Flatten", "input");
  return (*this)(x);
}

Dropout::Dropout(double p, DropoutOptions options) : p_(p), options_(std::move(options)) {}

Value Dropout::operator()(Value x) const { return dropout(x, p_, options_); }
Value Dropout::operator()(Graph& graph, Value x) const { return dropout(graph, x, p_, options_); }

std::vector<Tensor> parameter_tensors(Graph& graph) {
  std::vector<Tensor> out;
  for (Value v : graph.parameters()) out.push_back(graph.tensor(v));
  return out;
}

std::vector<std::pair<std::string, Tensor>> named_parameters(Graph& graph) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (Value v : graph.parameters()) out.emplace_back(v.name(), graph.tensor(v));
  return out;
}

}  // namespace kiln::nn
