// RunObserver and Capture: seeing the values inside a run without copying the rest.
#include <algorithm>

#include "kiln/core/error.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln {

RunObserver::~RunObserver() = default;

Capture& Capture::node(const Value& v) {
  if (!v.valid()) throw ValueError("Capture::node: empty Value");
  if (std::find(node_ids_.begin(), node_ids_.end(), v.id()) == node_ids_.end())
    node_ids_.push_back(v.id());
  return *this;
}

Capture& Capture::layer(std::string scope) {
  if (scope.empty()) throw ValueError("Capture::layer: empty layer name");
  if (std::find(scopes_.begin(), scopes_.end(), scope) == scopes_.end())
    scopes_.push_back(std::move(scope));
  return *this;
}

void Capture::on_step(const ObservedStep& step) {
  if (step.index == 0) {
    nodes_.clear();
    layers_.clear();
    fused_.clear();
  }
  for (const std::int32_t id : step.covers) {
    if (std::find(node_ids_.begin(), node_ids_.end(), id) == node_ids_.end()) continue;
    if (id == step.id)
      nodes_.emplace_back(id, step.value.clone());
    else
      fused_.emplace_back(id, step.node.name);
  }
  // A layer's output is its last forward step: later steps of the scope replace earlier.
  const Node& n = step.node;
  if (n.gradient || n.scope.empty()) return;
  if (std::find(scopes_.begin(), scopes_.end(), n.scope) == scopes_.end()) return;
  auto it = std::find_if(layers_.begin(), layers_.end(),
                         [&](const auto& l) { return l.first == n.scope; });
  if (it == layers_.end())
    layers_.emplace_back(n.scope, step.value.clone());
  else
    it->second = step.value.clone();
}

const Tensor& Capture::node_value(const Value& v) const {
  for (const auto& [id, t] : nodes_)
    if (id == v.id()) return t;
  const std::string name = v.valid() ? v.name() : std::string("<empty>");
  for (const auto& [id, into] : fused_)
    if (id == v.id())
      throw NameError("Capture: node '" + name + "' was fused into step '" + into +
                      "' and has no value of its own (compile with fuse = false to see it)");
  if (std::find(node_ids_.begin(), node_ids_.end(), v.id()) == node_ids_.end())
    throw NameError("Capture: node '" + name + "' was not asked for (Capture::node)");
  throw NameError("Capture: node '" + name + "' was not computed by the latest run");
}

const Tensor& Capture::layer_value(const std::string& scope) const {
  for (const auto& [s, t] : layers_)
    if (s == scope) return t;
  if (std::find(scopes_.begin(), scopes_.end(), scope) == scopes_.end())
    throw NameError("Capture: layer '" + scope + "' was not asked for (Capture::layer)");
  throw NameError("Capture: layer '" + scope + "' was not computed by the latest run");
}

std::vector<std::string> Capture::layers() const {
  std::vector<std::string> out;
  for (const auto& l : layers_) out.push_back(l.first);
  return out;
}

}  // namespace kiln
