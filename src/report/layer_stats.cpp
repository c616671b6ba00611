// The recorder's observer (layer outputs, the plan's ops and kernels per layer) and
// graph.json (layers from kiln::nn::summarize, the edges between them, the plan).
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "internal/step_label.hpp"
#include "kiln/nn/summary.hpp"
#include "report/record_impl.hpp"

namespace kiln::report::internal {
namespace {

template <typename T, typename Key>
T& find_or_add(std::vector<T>& v, const Key& key, auto&& get_key) {
  for (T& x : v)
    if (get_key(x) == key) return x;
  v.emplace_back();
  return v.back();
}

}  // namespace

std::string kernel_backend(std::string_view kernel) {
  const auto cut = kernel.find('_');
  return std::string(kernel.substr(0, cut));
}

void LayerObserver::begin(const Graph* graph, bool activations, bool with_plan) {
  graph_ = graph;
  activations_ = activations;
  plan_ = with_plan && !plan_complete;
  for (ActivationSlot& s : slots) s.seen = false;
}

void LayerObserver::on_step(const ObservedStep& step) {
  const Node& n = step.node;
  if (plan_) {
    if (step.index == 0) {
      plan.clear();
      backend_steps.clear();
    }
    ++backend_steps[kernel_backend(step.kernel)];
    if (!n.gradient && !n.scope.empty()) {
      auto& entry = find_or_add(plan, n.scope, [](const auto& p) { return p.first; });
      entry.first = n.scope;
      entry.second.ops.push_back(kiln::internal::step_op_label(n));
      auto& k = entry.second.kernels;
      if (std::find(k.begin(), k.end(), step.kernel) == k.end()) k.emplace_back(step.kernel);
    }
    if (step.index + 1 == step.count) {
      plan_complete = true;
      plan_ = false;
    }
  }
  if (!activations_ || n.gradient || n.scope.empty()) return;
  const DType dt = step.value.dtype();
  if (dt != DType::f32 && dt != DType::f64) return;
  ActivationSlot& slot = find_or_add(slots, n.scope, [](const auto& s) { return s.scope; });
  if (slot.scope.empty()) slot.scope = n.scope;
  // The op of the graph node whose value this is (the relu of a fused matmul+bias+relu).
  if (graph_ && step.id >= 0 && static_cast<std::size_t>(step.id) < graph_->size())
    slot.op = op_name(graph_->node(step.id).op);
  else
    slot.op = n.attrs.post_op == PostOp::relu_max_pool ? "max_pool2d"
              : n.attrs.post_op == PostOp::relu        ? "relu"
                                                       : std::string(op_name(n.op));
  if (slot.buffer.defined() && slot.buffer.shape() == step.value.shape() &&
      slot.buffer.dtype() == dt)
    slot.buffer.copy_from(step.value);
  else
    slot.buffer = step.value.clone();
  slot.seen = true;
}

Json graph_json(const Graph& graph, const std::vector<Value>& outputs,
                const std::vector<std::pair<std::string, LayerPlan>>& plan) {
  const nn::ModelSummary summary = nn::summarize(graph, outputs);
  const auto n = graph.size();
  // The summary row each node belongs to: inputs and unscoped parameters are rows of
  // their own, scoped nodes their scope's; unscoped ops (a reshape between layers) pass on
  // the rows they read.
  std::vector<std::set<std::string>> source(n);
  std::map<std::string, std::set<std::string>> reads;
  for (std::size_t id = 0; id < n; ++id) {
    const Node& node = graph.node(static_cast<std::int32_t>(id));
    if (node.gradient) continue;
    if (node.op == Op::input || (node.scope.empty() && node.op == Op::parameter)) {
      source[id] = {node.name};
    } else if (!node.scope.empty()) {
      source[id] = {node.scope};
      for (const std::int32_t i : node.inputs)
        for (const std::string& s : source[static_cast<std::size_t>(i)])
          if (s != node.scope) reads[node.scope].insert(s);
    } else if (node.op != Op::constant) {
      for (const std::int32_t i : node.inputs)
        source[id].insert(source[static_cast<std::size_t>(i)].begin(),
                          source[static_cast<std::size_t>(i)].end());
    }
  }
  std::map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < summary.layers.size(); ++i) position[summary.layers[i].name] = i;
  auto ordered = [&](const std::set<std::string>& names) {
    std::vector<std::string> v;
    for (const std::string& s : names)
      if (position.count(s)) v.push_back(s);
    std::sort(v.begin(), v.end(), [&](const std::string& a, const std::string& b) {
      return position[a] < position[b];
    });
    return v;
  };

  Json layers = Json::array();
  for (const nn::LayerSummary& l : summary.layers) {
    Json row;
    row["name"] = l.name;
    row["type"] = l.type;
    row["output_shape"] = l.output_shape.dims();
    row["dtype"] = std::string(to_string(l.dtype));
    row["trainable"] = l.trainable;
    row["non_trainable"] = l.non_trainable;
    auto it = reads.find(l.name);
    row["inputs"] = it == reads.end() ? std::vector<std::string>{} : ordered(it->second);
    Json ops = Json::array(), kernels = Json::array();
    for (const auto& [scope, p] : plan)
      if (scope == l.name) {
        ops = p.ops;
        kernels = p.kernels;
      }
    row["ops"] = ops;
    row["kernels"] = kernels;
    layers.push_back(std::move(row));
  }
  std::set<std::string> outs;
  for (const Value& v : outputs)
    outs.insert(source[static_cast<std::size_t>(v.id())].begin(),
                source[static_cast<std::size_t>(v.id())].end());
  Json j;
  j["layers"] = std::move(layers);
  j["outputs"] = ordered(outs);
  j["trainable"] = summary.trainable;
  j["non_trainable"] = summary.non_trainable;
  return j;
}

}  // namespace kiln::report::internal
