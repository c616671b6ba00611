// build_model: the graph a ModelSpec describes, made with kiln::nn layers and kiln ops, with
// the task's output and loss (class weights and the Huber loss composed from ops).
#include <map>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/losses.hpp"
#include "kiln/train/spec.hpp"

namespace kiln::train {
namespace {

nn::Activation activation_of(const std::string& name) {
  if (name == "relu") return nn::Activation::relu;
  if (name == "leaky_relu") return nn::Activation::leaky_relu;
  if (name == "sigmoid") return nn::Activation::sigmoid;
  if (name == "tanh") return nn::Activation::tanh;
  if (name == "gelu") return nn::Activation::gelu;
  if (name == "softmax") return nn::Activation::softmax;
  return nn::Activation::none;
}

struct Builder {
  const ModelSpec& spec;
  const BuildOptions& options;
  Graph& g;
  std::uint64_t seed;

  std::int64_t output_units() const {
    if (spec.task.type != Task::classification) return 1;
    if (options.classes < 2)
      throw ValueError(options.source +
                       ": the last layer's units are \"auto\", but the number "
                       "of classes is not known (BuildOptions::classes)");
    return options.classes;
  }

  Value layer(const LayerSpec& l, const std::vector<Value>& xs) {
    const Value x = xs.at(0);
    const std::string& t = l.type;
    if (t == "dense") {
      const std::int64_t units = l.units == auto_size ? output_units() : l.units;
      return nn::dense(x, units,
                       {.activation = activation_of(l.activation), .name = l.name, .seed = seed});
    }
    if (t == "conv2d")
      return nn::conv2d(x, l.filters, l.kernel,
                        {.stride = l.stride,
                         .padding = l.padding,
                         .activation = activation_of(l.activation),
                         .name = l.name,
                         .seed = seed});
    if (t == "max_pool2d" || t == "avg_pool2d") {
      Pool2dOptions p;
      p.kernel = l.kernel;
      p.stride = l.stride;
      p.padding = l.padding;
      return scoped(l, t.c_str(), [&] {
        return t == "max_pool2d" ? kiln::max_pool2d(x, p) : kiln::avg_pool2d(x, p);
      });
    }
    if (t == "dropout") return nn::dropout(x, l.rate, {.seed = seed, .name = l.name});
    if (t == "batch_norm") return nn::batch_norm(x, {.name = l.name});
    if (t == "layer_norm") return nn::layer_norm(x, {.name = l.name});
    if (t == "flatten") return scoped(l, "flatten", [&] { return kiln::flatten(x); });
    if (t == "global_avg_pool2d")
      return scoped(l, "global_avg_pool2d",
                    [&] { return kiln::flatten(kiln::global_avg_pool2d(x)); });
    if (t == "activation")
      return scoped(l, "activation", [&] { return activation_of(l.activation)(x); });
    if (t == "add")
      return scoped(l, "add", [&] {
        Value sum = xs[0];
        for (std::size_t i = 1; i < xs.size(); ++i) sum = kiln::add(sum, xs[i]);
        return sum;
      });
    if (t == "concat") return scoped(l, "concat", [&] { return kiln::concat(xs, l.axis); });
    return sequence_layer(l, x);
  }

  /// x must be [batch, steps, features] with static steps and features.
  static void require_sequence(const Value& x, const std::string& t) {
    const Shape& s = x.shape();
    if (s.rank() != 3 || s[1] <= 0 || s[2] <= 0)
      throw ShapeError("'" + t + "' takes a sequence [batch, steps, features], got " + s.str() +
                       (s.rank() == 2 ? " (view the features as steps with a \"reshape\" layer, "
                                        "e.g. \"shape\": [8, 8])"
                                      : ""));
  }

  Value sequence_layer(const LayerSpec& l, const Value& x) {
    const std::string& t = l.type;
    if (t == "reshape") {
      std::int64_t have = 1, want = 1;
      for (std::size_t i = 1; i < x.shape().rank(); ++i) have *= x.shape()[i];
      for (const std::int64_t d : l.shape) {
        if (d <= 0) throw ValueError("shape: dims must be positive");
        want *= d;
      }
      if (l.shape.empty() || have != want)
        throw ShapeError("shape: " + Shape(l.shape).str() + " holds " + std::to_string(want) +
                         " elements per row, the input " + x.shape().str() + " has " +
                         std::to_string(have));
      std::vector<std::int64_t> dims = {-1};
      dims.insert(dims.end(), l.shape.begin(), l.shape.end());
      return scoped(l, "reshape", [&] { return kiln::reshape(x, Shape(dims)); });
    }
    if (t == "lstm" || t == "gru") {
      require_sequence(x, t);
      if (l.hidden <= 0) throw ValueError("hidden: must be a positive integer");
      if (l.num_layers <= 0) throw ValueError("layers: must be a positive integer");
      if (l.returns != "sequence" && l.returns != "last")
        throw ValueError("return: expected sequence or last, got '" + l.returns + "'");
      const nn::RecurrentLayerOptions o{.hidden = l.hidden,
                                        .layers = l.num_layers,
                                        .bidirectional = l.bidirectional,
                                        .name = l.name,
                                        .seed = seed};
      const nn::RecurrentOutput r = t == "lstm" ? nn::lstm(x, o) : nn::gru(x, o);
      if (l.returns == "sequence") return r.sequence;
      // The last layer's final state of each direction, [batch, directions * H] (without
      // lengths: step T-1 of the forward and step 0 of the reverse direction), in the
      // layer's scope.
      const std::string layer = r.h_n.scope();
      auto scope = g.set_scope(layer);
      const std::int64_t dirs = l.bidirectional ? 2 : 1;
      Value last = kiln::slice(r.h_n, 0, (l.num_layers - 1) * dirs, l.num_layers * dirs);
      if (dirs == 2) last = kiln::transpose(last, {1, 0, 2});
      return kiln::reshape(last, Shape{-1, dirs * l.hidden}, layer.empty() ? "" : layer + ".last");
    }
    if (t == "attention") {
      require_sequence(x, t);
      check_heads(l, x);
      return nn::multi_head_attention(
          x, x, x, {.heads = l.heads, .causal = l.causal, .name = l.name, .seed = seed});
    }
    if (t == "transformer_encoder") {
      require_sequence(x, t);
      check_heads(l, x);
      if (l.feedforward <= 0) throw ValueError("feedforward: must be a positive integer");
      if (l.activation != "none" && l.activation != "relu" && l.activation != "gelu")
        throw ValueError("activation: expected relu or gelu, got '" + l.activation + "'");
      return nn::transformer_encoder_layer(
          x, {.heads = l.heads,
              .feedforward = l.feedforward,
              .activation = l.activation == "gelu" ? nn::Activation::gelu : nn::Activation::relu,
              .norm_first = l.norm_first,
              .causal = l.causal,
              .name = l.name,
              .seed = seed});
    }
    if (t == "positional_encoding") {
      require_sequence(x, t);
      return nn::positional_encoding(x, {.learned = l.learned, .name = l.name, .seed = seed});
    }
    if (t == "last_step") {
      require_sequence(x, t);
      return scoped(l, "last_step", [&] {
        const std::int64_t steps = x.shape()[1];
        return kiln::reshape(kiln::slice(x, 1, steps - 1, steps), Shape{-1, x.shape()[2]});
      });
    }
    if (t == "mean_steps") {
      require_sequence(x, t);
      return scoped(l, "mean_steps", [&] { return kiln::mean(x, {1}); });
    }
    throw ValueError(options.source + ": unknown layer type '" + t + "'");
  }

  static void check_heads(const LayerSpec& l, const Value& x) {
    if (l.heads <= 0) throw ValueError("heads: must be a positive integer");
    if (x.shape()[2] % l.heads != 0)
      throw ShapeError("heads: " + std::to_string(l.heads) + " heads do not divide the " +
                       std::to_string(x.shape()[2]) + " features of " + x.shape().str());
  }

  template <class F>
  Value scoped(const LayerSpec& l, const char* kind, F f) {
    if (l.name.empty()) {
      // The nn layers' naming: the first free "<kind>_<k>".
      for (int k = 0;; ++k) {
        const std::string name = std::string(kind) + "_" + std::to_string(k);
        bool used = false;
        for (const Node& n : g.nodes()) used = used || n.scope == name;
        if (!used) {
          auto scope = g.scope(name);
          return f();
        }
      }
    }
    auto scope = g.scope(l.name);
    return f();
  }

  Value layer_at(const LayerSpec& l, const std::vector<Value>& xs, const std::string& path) {
    try {
      return layer(l, xs);
    } catch (const ShapeError& e) {
      throw ShapeError(options.source + ": " + path + " (" + l.type + "): " + e.what());
    } catch (const DTypeError& e) {
      throw DTypeError(options.source + ": " + path + " (" + l.type + "): " + e.what());
    } catch (const NameError& e) {
      throw NameError(options.source + ": " + path + " (" + l.type + "): " + e.what());
    } catch (const ValueError& e) {
      throw ValueError(options.source + ": " + path + " (" + l.type + "): " + e.what());
    }
  }
};

}  // namespace

BuiltModel build_model(const ModelSpec& spec, const BuildOptions& options) {
  BuiltModel m;
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  Builder b{spec, options, g, nn::default_seed + spec.training.seed};

  // Inputs, with the sizes the data decides.
  std::map<std::string, Value> values;
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const InputSpec& in = spec.inputs[i];
    const std::vector<std::int64_t>* given = nullptr;
    for (const auto& [name, shape] : options.input_shapes)
      if (name == in.name) given = &shape;
    std::vector<std::int64_t> dims = {kiln::batch};
    for (std::size_t d = 0; d < in.shape.size(); ++d) {
      std::int64_t dim = in.shape[d];
      const std::string path = "inputs[" + std::to_string(i) + "].shape";
      if (given && given->size() != in.shape.size())
        throw ValueError(options.source + ": " + path + ": the spec gives " +
                         std::to_string(in.shape.size()) + " dims, the data has " +
                         std::to_string(given->size()) + " for input '" + in.name + "'");
      if (dim == auto_size) {
        if (!given)
          throw ValueError(options.source + ": " + path +
                           ": \"auto\" needs the data's shape of "
                           "input '" +
                           in.name + "'");
        dim = (*given)[d];
      } else if (given && (*given)[d] != dim) {
        throw ValueError(options.source + ": " + path + "[" + std::to_string(d) +
                         "]: the spec says " + std::to_string(dim) + ", the data of input '" +
                         in.name + "' has " + std::to_string((*given)[d]));
      }
      dims.push_back(dim);
    }
    Value v = g.input(in.name, Shape(dims), in.dtype);
    values[in.name] = v;
    m.inputs.push_back(v);
  }

  // The body.
  Value out;
  if (spec.nodes.empty()) {
    out = m.inputs.at(0);
    for (std::size_t i = 0; i < spec.layers.size(); ++i)
      out = b.layer_at(spec.layers[i], {out}, "layers[" + std::to_string(i) + "]");
  } else {
    for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
      const LayerSpec& l = spec.nodes[i];
      std::vector<Value> xs;
      for (const std::string& name : l.inputs) {
        auto it = values.find(name);
        if (it == values.end())
          throw ValueError(options.source + ": graph.nodes[" + std::to_string(i) +
                           "]: unknown input '" + name + "'");
        xs.push_back(it->second);
      }
      values[l.name] = b.layer_at(l, xs, "graph.nodes[" + std::to_string(i) + "]");
    }
    out = values.at(spec.output);
  }

  // The task's head and loss.
  const Shape& os = out.shape();
  const std::string where =
      spec.nodes.empty() ? "the last layer" : "the output node '" + spec.output + "'";
  const TaskSpec& task = spec.task;
  if (os.rank() != 2)
    throw ShapeError(options.source + ": " + where + " gives " + os.str() +
                     "; the task needs [batch, units] (add a flatten and a dense layer)");
  if (task.type == Task::classification) {
    const std::int64_t classes = options.classes > 0 ? options.classes : os[1];
    if (os[1] != classes)
      throw ShapeError(options.source + ": " + where + " has " + std::to_string(os[1]) +
                       " units, the data has " + std::to_string(classes) +
                       " classes (use \"units\": \"auto\")");
    if (!task.class_weights.empty() &&
        static_cast<std::int64_t>(task.class_weights.size()) != classes)
      throw ValueError(options.source +
                       ": task.class_weights: " + std::to_string(task.class_weights.size()) +
                       " weights for " + std::to_string(classes) + " classes");
    m.target = g.input(options.target, {kiln::batch}, DType::i32);
    m.predictions = out;
    m.output = kiln::softmax(out, -1, "probs");
    m.output_name = "probs";
    m.loss = cross_entropy(out, m.target, {.class_weights = task.class_weights, .name = "loss"});
    return m;
  }
  if (os[1] != 1)
    throw ShapeError(options.source + ": " + where + " has " + std::to_string(os[1]) +
                     " units; a " + std::string(task_name(task.type)) +
                     " task needs 1 (use \"units\": \"auto\")");
  Value y = out;
  m.target = g.input(options.target, {kiln::batch, 1}, out.dtype());
  m.predictions = y;
  if (task.type == Task::binary) {
    m.output = kiln::sigmoid(y, "probability");
    m.output_name = "probability";
    // Class weights as sample weights w0 + (w1 - w0) * t: the weighted mean of the
    // cross-entropy's definition (sum w[y_i] l_i / sum w[y_i]).
    Value weights;
    if (!task.class_weights.empty()) {
      const double w0 = task.class_weights[0], w1 = task.class_weights[1];
      weights = kiln::sum(kiln::add(kiln::mul(m.target, w1 - w0), w0), {1});
    }
    m.loss =
        binary_cross_entropy_with_logits(y, m.target, {.sample_weights = weights, .name = "loss"});
    return m;
  }
  m.output = y;
  m.output_name = "prediction";
  m.loss = task.loss == "huber" ? huber(y, m.target, {.delta = task.huber_delta, .name = "loss"})
                                : kiln::mse(y, m.target, "loss");
  return m;
}

}  // namespace kiln::train
