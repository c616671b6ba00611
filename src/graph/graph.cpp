#include "kiln/graph/graph.hpp"

#include <memory>
#include <string>
#include <utility>

#include "internal/op_info.hpp"
#include "kiln/core/error.hpp"

namespace kiln {

Value::Value(Graph* graph, std::int32_t id)
    : anchor_(graph != nullptr ? graph->anchor() : nullptr), id_(id) {}

Graph& Value::graph() const {
  if (!anchor_) throw ValueError("use of an empty Value");
  return *anchor_->graph;
}

const Node& Value::node() const {
  if (!anchor_) throw ValueError("use of an empty Value");
  return anchor_->graph->node(id_);
}

// ---------------------------------------------------------------------------------------------
// Moves and scopes

Graph::~Graph() = default;

Graph::Graph(Graph&& other) noexcept
    : anchor_(std::move(other.anchor_)),
      nodes_(std::move(other.nodes_)),
      names_(std::move(other.names_)),
      scope_(std::move(other.scope_)) {
  if (anchor_) anchor_->graph = this;
  other.nodes_.clear();
  other.names_.clear();
  other.scope_.clear();
}

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this == &other) return *this;
  anchor_ = std::move(other.anchor_);
  nodes_ = std::move(other.nodes_);
  names_ = std::move(other.names_);
  scope_ = std::move(other.scope_);
  if (anchor_) anchor_->graph = this;
  other.nodes_.clear();
  other.names_.clear();
  other.scope_.clear();
  return *this;
}

internal::GraphAnchor* Graph::anchor() {
  if (!anchor_) {
    anchor_ = std::make_unique<internal::GraphAnchor>();
    anchor_->graph = this;
  }
  return anchor_.get();
}

ScopeGuard Graph::scope(std::string_view name) {
  if (name.empty()) throw ValueError("Graph::scope: a scope needs a non-empty name");
  std::string path = scope_.empty() ? std::string(name) : scope_ + "/" + std::string(name);
  return set_scope(std::move(path));
}

ScopeGuard Graph::set_scope(std::string path) {
  std::string previous = std::exchange(scope_, std::move(path));
  return ScopeGuard(anchor(), std::move(previous));
}

ScopeGuard::ScopeGuard(ScopeGuard&& other) noexcept
    : anchor_(std::exchange(other.anchor_, nullptr)), previous_(std::move(other.previous_)) {}

ScopeGuard& ScopeGuard::operator=(ScopeGuard&& other) noexcept {
  if (this != &other) {
    close();
    anchor_ = std::exchange(other.anchor_, nullptr);
    previous_ = std::move(other.previous_);
  }
  return *this;
}

ScopeGuard::~ScopeGuard() { close(); }

void ScopeGuard::close() {
  if (!anchor_) return;
  anchor_->graph->scope_ = std::move(previous_);
  anchor_ = nullptr;
}

// ---------------------------------------------------------------------------------------------
// Nodes

std::string Graph::unique_name(std::string name, Op op) {
  if (name.empty()) {
    // Generated names: "<op>_<node id>", made unique if a user took it.
    std::string base = std::string(op_name(op)) + "_" + std::to_string(nodes_.size());
    name = base;
    for (int k = 1; names_.count(name); ++k) name = base + "_" + std::to_string(k);
    return name;
  }
  if (names_.count(name))
    throw NameError("a node named '" + name + "' already exists in the graph");
  return name;
}

Value Graph::append(Node node) {
  const auto id = static_cast<std::int32_t>(nodes_.size());
  node.scope = scope_;
  names_.emplace(node.name, id);
  nodes_.push_back(std::move(node));
  return Value(anchor(), id);
}

Value Graph::input(std::string name, Shape shape, DType dtype) {
  if (name.empty()) throw NameError("graph inputs need a name");
  for (std::size_t i = 0; i < shape.rank(); ++i) {
    if (shape[i] < -1 || (shape[i] == -1 && i != 0))
      throw ShapeError("input '" + name + "': shape " + shape.str() +
                       " may be dynamic (kiln::batch) in its first dimension only");
  }
  Node n;
  n.op = Op::input;
  n.name = unique_name(std::move(name), Op::input);
  n.shape = std::move(shape);
  n.dtype = dtype;
  return append(std::move(n));
}

Value Graph::parameter(std::string name, Tensor init, bool trainable) {
  if (name.empty()) throw NameError("parameters need a name");
  if (!init.defined()) throw ValueError("parameter '" + name + "': initial value is empty");
  if (!is_floating(init.dtype()))
    throw DTypeError("parameter '" + name + "': must be f32 or f64, not " +
                     std::string(to_string(init.dtype())));
  Node n;
  n.op = Op::parameter;
  n.trainable = trainable;
  n.name = unique_name(std::move(name), Op::parameter);
  n.shape = init.shape();
  n.dtype = init.dtype();
  n.value = init.contiguous();
  return append(std::move(n));
}

Value Graph::constant(Tensor value, std::string name) {
  if (!value.defined()) throw ValueError("constant '" + name + "': value is empty");
  Node n;
  n.op = Op::constant;
  n.name = unique_name(std::move(name), Op::constant);
  n.shape = value.shape();
  n.dtype = value.dtype();
  n.value = value.contiguous();
  return append(std::move(n));
}

Value Graph::add(Op op, const std::vector<Value>& inputs, Attrs attrs, std::string name) {
  if (op == Op::input || op == Op::parameter || op == Op::constant)
    throw ValueError("Graph::add: use input(), parameter() or constant() for leaf nodes");
  std::vector<internal::TensorDesc> descs;
  Node n;
  n.op = op;
  for (const Value& v : inputs) {
    if (!v.valid() || &v.graph() != this)
      throw ValueError("op '" + std::string(op_name(op)) +
                       "': an input is empty or from another graph");
    descs.push_back({v.shape(), v.dtype()});
    n.inputs.push_back(v.id());
  }
  n.name = unique_name(std::move(name), op);
  const auto out = internal::infer(op, attrs, descs, n.name);
  n.attrs = std::move(attrs);
  n.shape = out.shape;
  n.dtype = out.dtype;
  return append(std::move(n));
}

Value Graph::find(std::string_view name) {
  auto it = names_.find(std::string(name));
  if (it == names_.end()) throw NameError("no node named '" + std::string(name) + "' in the graph");
  return Value(anchor(), it->second);
}

bool Graph::contains(std::string_view name) const { return names_.count(std::string(name)) > 0; }

std::vector<Value> Graph::inputs() {
  std::vector<Value> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == Op::input) out.push_back(Value(anchor(), static_cast<std::int32_t>(i)));
  return out;
}

std::vector<Value> Graph::parameters() {
  std::vector<Value> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == Op::parameter && nodes_[i].trainable)
      out.push_back(Value(anchor(), static_cast<std::int32_t>(i)));
  return out;
}

std::vector<Value> Graph::buffers() {
  std::vector<Value> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == Op::parameter && !nodes_[i].trainable)
      out.push_back(Value(anchor(), static_cast<std::int32_t>(i)));
  return out;
}

Tensor& Graph::tensor(Value v) {
  if (!v.valid() || &v.graph() != this) throw ValueError("Graph::tensor: value of another graph");
  Node& n = nodes_[static_cast<std::size_t>(v.id())];
  if (n.op != Op::parameter && n.op != Op::constant)
    throw ValueError("Graph::tensor: '" + n.name + "' is not a parameter or constant");
  return n.value;
}

void Graph::assign_scope(Value v, std::string scope) {
  if (!v.valid() || &v.graph() != this)
    throw ValueError("Graph::assign_scope: value of another graph");
  nodes_[static_cast<std::size_t>(v.id())].scope = std::move(scope);
}

}  // namespace kiln
