// Model summary: layers by scope, output shapes, parameter counts.
#include "kiln/nn/summary.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "kiln/core/error.hpp"

namespace kiln::nn {
namespace {

// "1,234,567".
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// "37.5 KiB".
std::string bytes_str(std::int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

// The layer type from the ops of its nodes; `output` is the node whose shape is shown,
// `holds_tensors` whether the layer has parameters or constants of its own.
std::string layer_type(const std::set<Op>& ops, const Graph& graph, const Node& output,
                       bool holds_tensors) {
  auto has = [&](Op op) { return ops.count(op) > 0; };
  auto only = [&](std::initializer_list<Op> allowed) {
    for (const Op op : ops)
      if (std::find(allowed.begin(), allowed.end(), op) == allowed.end()) return false;
    return true;
  };
  // Sequence layers (docs/sequence.md): recurrent layers keep their type whatever reads
  // their states out; the transformer block is found by its attention sub-layer.
  if (has(Op::lstm)) return "LSTM";
  if (has(Op::gru)) return "GRU";
  if (has(Op::attention)) return "MultiHeadAttention";
  // A table of its own added to the input (broadcast over the batch).
  if (has(Op::add) && only({Op::add, Op::reshape, Op::expand}) && holds_tensors)
    return "PositionalEncoding";
  if (has(Op::slice) && only({Op::slice, Op::reshape})) return "LastStep";
  if (ops == std::set<Op>{Op::mean} && !output.inputs.empty() &&
      graph.node(output.inputs[0]).shape.rank() == 3)
    return "MeanSteps";
  if (ops == std::set<Op>{Op::reshape} && output.shape.rank() != 2) return "Reshape";
  if (has(Op::conv2d)) return "Conv2d";
  if (has(Op::conv_transpose2d)) return "ConvTranspose2d";
  if (has(Op::batch_norm)) return "BatchNorm";
  if (has(Op::gather)) return "Embedding";
  if (has(Op::matmul)) return "Dense";
  if (has(Op::max_pool2d)) return "MaxPool2d";
  if (has(Op::avg_pool2d)) return "AvgPool2d";
  if (has(Op::dropout_mask)) return "Dropout";
  if (has(Op::layer_norm) || (has(Op::mean) && has(Op::sqrt))) return "LayerNorm";
  if (ops == std::set<Op>{Op::mean}) return "GlobalAvgPool2d";
  if (ops == std::set<Op>{Op::reshape}) return "Flatten";
  if (ops.size() == 1) {
    switch (*ops.begin()) {
      case Op::relu:
      case Op::leaky_relu:
      case Op::sigmoid:
      case Op::tanh:
      case Op::softmax:
        return "Activation";
      default:
        break;
    }
  }
  return std::string(op_name(output.op));
}

struct Group {
  LayerSummary row;
  std::set<Op> ops;            // non-leaf ops
  std::int32_t output = -1;    // the node whose shape is shown
  std::int32_t last = -1;      // the last node of the scope
  bool holds_tensors = false;  // parameters or constants in the scope
};

}  // namespace

ModelSummary summarize(const Graph& graph, const std::vector<Value>& outputs) {
  const auto n = static_cast<std::int32_t>(graph.size());
  // The nodes to summarise: what the outputs depend on, or everything.
  std::vector<bool> live(static_cast<std::size_t>(n), outputs.empty());
  std::vector<bool> is_output(static_cast<std::size_t>(n), false);
  for (const Value& v : outputs) {
    if (!v.valid() || &v.graph() != &graph)
      throw ValueError("nn::summarize: an output is empty or belongs to another graph");
    live[static_cast<std::size_t>(v.id())] = true;
    is_output[static_cast<std::size_t>(v.id())] = true;
  }
  if (!outputs.empty()) {
    for (std::int32_t id = n; id-- > 0;)
      if (live[static_cast<std::size_t>(id)])
        for (auto i : graph.node(id).inputs) live[static_cast<std::size_t>(i)] = true;
  }
  // A node is a layer's output if a live node of another scope (or no scope) uses it.
  std::vector<bool> used_outside(static_cast<std::size_t>(n), false);
  for (std::int32_t id = 0; id < n; ++id) {
    if (!live[static_cast<std::size_t>(id)]) continue;
    const Node& node = graph.node(id);
    for (auto i : node.inputs)
      if (graph.node(i).scope != node.scope) used_outside[static_cast<std::size_t>(i)] = true;
  }

  ModelSummary out;
  std::vector<Group> groups;
  std::map<std::string, std::size_t> by_scope;
  for (std::int32_t id = 0; id < n; ++id) {
    if (!live[static_cast<std::size_t>(id)]) continue;
    const Node& node = graph.node(id);
    std::int64_t count = 0;
    if (node.op == Op::parameter) {
      count = node.shape.numel();
      const auto bytes = count * static_cast<std::int64_t>(size_of(node.dtype));
      (node.trainable ? out.trainable : out.non_trainable) += count;
      (node.trainable ? out.trainable_bytes : out.non_trainable_bytes) += bytes;
    }
    Group* g = nullptr;
    if (node.op == Op::input) {
      groups.push_back({{node.name, "Input", node.shape, node.dtype, 0, 0}, {}, id, id});
      continue;
    }
    if (node.scope.empty()) {
      if (node.op != Op::parameter) continue;  // ops outside layers (a loss, softmax) are not rows
      groups.push_back({{node.name, "Parameter", node.shape, node.dtype, 0, 0}, {}, id, id});
      g = &groups.back();
    } else {
      auto [it, fresh] = by_scope.try_emplace(node.scope, groups.size());
      if (fresh) groups.push_back({{node.scope, "", {}, node.dtype, 0, 0}, {}, -1, -1});
      g = &groups[it->second];
      if (node.op == Op::parameter || node.op == Op::constant) g->holds_tensors = true;
      if (node.op != Op::parameter && node.op != Op::constant) {
        g->ops.insert(node.op);
        g->last = id;
        if (used_outside[static_cast<std::size_t>(id)] || is_output[static_cast<std::size_t>(id)])
          g->output = id;
      }
    }
    if (node.op == Op::parameter)
      (node.trainable ? g->row.trainable : g->row.non_trainable) += count;
  }
  for (Group& g : groups) {
    if (g.row.type.empty()) {
      const std::int32_t shown = g.output >= 0 ? g.output : g.last;
      if (shown >= 0) {
        g.row.output_shape = graph.node(shown).shape;
        g.row.dtype = graph.node(shown).dtype;
        g.row.type = layer_type(g.ops, graph, graph.node(shown), g.holds_tensors);
      } else {
        g.row.type = "Parameter";  // a scope holding parameters only
      }
    }
  }
  // A transformer encoder block: a scope whose nested scopes hold its self-attention.
  for (Group& g : groups) {
    const std::string nested = g.row.name + "/";
    for (const Group& inner : groups)
      if (inner.row.type == "MultiHeadAttention" && inner.row.name.rfind(nested, 0) == 0 &&
          by_scope.count(g.row.name) && g.row.type != "MultiHeadAttention")
        g.row.type = "TransformerEncoder";
  }
  for (Group& g : groups) out.layers.push_back(std::move(g.row));
  return out;
}

std::string ModelSummary::str() const {
  std::vector<std::array<std::string, 3>> rows;
  for (const LayerSummary& l : layers)
    rows.push_back({l.name + " (" + l.type + ")", l.output_shape.str(), grouped(l.params())});
  std::array<std::size_t, 3> width{std::string("Layer (type)").size(),
                                   std::string("Output shape").size(),
                                   std::string("Param #").size()};
  for (const auto& r : rows)
    for (std::size_t c = 0; c < 3; ++c) width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::string& a, const std::string& b, const std::string& c) {
    std::string s = a + std::string(width[0] - a.size() + 2, ' ') + b +
                    std::string(width[1] - b.size() + 2, ' ') +
                    std::string(width[2] - c.size(), ' ') + c;
    return s + "\n";
  };
  const std::string rule(width[0] + width[1] + width[2] + 4, '=');
  std::string s = line("Layer (type)", "Output shape", "Param #") + rule + "\n";
  for (const auto& r : rows) s += line(r[0], r[1], r[2]);
  s += rule + "\n";
  s += "Total params: " + grouped(total()) + " (" +
       bytes_str(trainable_bytes + non_trainable_bytes) + ")\n";
  s += "Trainable params: " + grouped(trainable) + " (" + bytes_str(trainable_bytes) + ")\n";
  s += "Non-trainable params: " + grouped(non_trainable) + " (" + bytes_str(non_trainable_bytes) +
       ")\n";
  return s;
}

std::string summary(const Graph& graph, const std::vector<Value>& outputs) {
  return summarize(graph, outputs).str();
}

}  // namespace kiln::nn
