// Graph: a static dataflow graph of primitive ops; Value: a handle to a node's output.
//
// Nodes are appended in order, so every node's inputs come before it. Shapes are
// inferred and checked when a node is added; a shape may start with kiln::batch.
//
// Scopes name the layer a node belongs to. While the guard g.scope("fc1") lives, every
// node added to g gets Node::scope "fc1"; scopes nest, joined with "/" ("encoder/fc1").
// The nn layers open one named by their layer prefix, and kiln::grad gives each gradient
// node the scope of the node it differentiates:
//
//   {
//     auto layer = g.scope("fc1");
//     auto h = kiln::relu(kiln::matmul(x, w));   // both nodes have scope "fc1"
//   }
//
// A Graph is movable (not copyable), so a function can build and return one. Values keep
// working after a move: they refer to the graph's nodes, which the moved-to graph now owns.
// The moved-from graph is empty and usable. Executables and TrainSteps compiled before the
// move follow the nodes too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/op.hpp"

namespace kiln {

class Graph;

namespace internal {
/// Where a graph's Values point: it follows the nodes when the Graph is moved.
struct GraphAnchor {
  Graph* graph = nullptr;
};
struct GraphEditor;  // src/graph/graph_editor.hpp: undoing appends on error
}  // namespace internal

/// One node: an op, its inputs (node ids), attributes, a unique name, and its output.
struct Node {
  Op op = Op::input;
  std::vector<std::int32_t> inputs;
  Attrs attrs;
  std::string name;
  /// The layer the node belongs to ("fc1", "conv2"; empty outside layers). Set from the
  /// graph's current scope when the node is added; kept by fusion (a max pooling folded
  /// into a convolution brings its own) and by autodiff, whose gradient nodes carry the
  /// scope of the node they differentiate.
  std::string scope;
  /// True for the nodes kiln::grad appends (the backward pass); observers use it to tell a
  /// layer's output from its gradients.
  bool gradient = false;
  Shape shape;
  DType dtype = DType::f32;
  Tensor value;            ///< parameters and constants only
  bool trainable = false;  ///< parameters that optimizers update (not buffers)
};

/// A handle to the output of a node; cheap to copy, valid while its graph's nodes live
/// (across moves of the Graph, see the top of this file).
class KILN_API Value {
 public:
  Value() = default;
  /// The node `id` of `graph` (see Graph::value).
  Value(Graph* graph, std::int32_t id);

  bool valid() const { return anchor_ != nullptr; }
  /// The graph that owns the node now (after a move: the moved-to graph).
  Graph& graph() const;
  std::int32_t id() const { return id_; }
  const Node& node() const;
  const Shape& shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  const std::string& name() const { return node().name; }
  /// The layer the node belongs to (Node::scope).
  const std::string& scope() const { return node().scope; }

  friend bool operator==(const Value& a, const Value& b) {
    return a.anchor_ == b.anchor_ && a.id_ == b.id_;
  }

 private:
  friend class Graph;
  Value(internal::GraphAnchor* anchor, std::int32_t id) : anchor_(anchor), id_(id) {}

  internal::GraphAnchor* anchor_ = nullptr;
  std::int32_t id_ = -1;
};

/// Keeps a scope open on a graph until it is destroyed (see Graph::scope); move-only.
/// Guards must end in the reverse order of their creation, as local variables do.
class KILN_API ScopeGuard {
 public:
  ScopeGuard() = default;
  ScopeGuard(ScopeGuard&& other) noexcept;
  ScopeGuard& operator=(ScopeGuard&& other) noexcept;
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard();
  /// Restores the scope that was current when the guard was made (idempotent).
  void close();

 private:
  friend class Graph;
  ScopeGuard(internal::GraphAnchor* anchor, std::string previous)
      : anchor_(anchor), previous_(std::move(previous)) {}

  internal::GraphAnchor* anchor_ = nullptr;
  std::string previous_;
};

class KILN_API Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  /// Moves the nodes; Values made before keep working with this graph, and `other` is
  /// left empty and usable.
  Graph(Graph&& other) noexcept;
  /// Moves the nodes (this graph's own nodes are destroyed, and their Values with them).
  Graph& operator=(Graph&& other) noexcept;

  /// A named input fed at run time; dims may include kiln::batch (first dim only).
  Value input(std::string name, Shape shape, DType dtype = DType::f32);
  /// A parameter with its initial value; its storage is updated in place (by optimizers if
  /// trainable, or by ops such as batch_norm's running statistics if not: a buffer).
  Value parameter(std::string name, Tensor init, bool trainable = true);
  /// A constant (not trained). An empty name gets a generated one.
  Value constant(Tensor value, std::string name = "");
  /// Adds a node after running the op's shape rule; throws ShapeError / DTypeError
  /// naming the op, the node and the shapes. An empty name gets a generated one.
  Value add(Op op, const std::vector<Value>& inputs, Attrs attrs = {}, std::string name = "");

  /// Opens a scope: until the guard ends, nodes added to this graph get the current scope
  /// joined with `name` by "/" ("fc1" at the top level, "encoder/fc1" inside "encoder").
  /// `name` must be non-empty; ValueError otherwise.
  [[nodiscard]] ScopeGuard scope(std::string_view name);
  /// Replaces the current scope (not joined; empty: no scope) until the guard ends. For
  /// code that adds nodes on behalf of others, as kiln::grad does for gradient nodes.
  [[nodiscard]] ScopeGuard set_scope(std::string path);
  /// The scope new nodes get ("" outside any scope).
  const std::string& current_scope() const { return scope_; }

  std::size_t size() const { return nodes_.size(); }
  const Node& node(std::int32_t id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  const std::vector<Node>& nodes() const { return nodes_; }
  Value value(std::int32_t id) { return Value(anchor(), id); }

  /// The node with this name; throws NameError if there is none.
  Value find(std::string_view name);
  bool contains(std::string_view name) const;
  /// Inputs, trainable parameters and buffers (non-trainable parameters), in creation order.
  std::vector<Value> inputs();
  std::vector<Value> parameters();
  std::vector<Value> buffers();
  /// The stored tensor of a parameter or constant (shares storage).
  Tensor& tensor(Value v);
  /// Moves an existing node into a layer (for loaders and rewrites that rebuild a graph).
  void assign_scope(Value v, std::string scope);

  /// Graphviz DOT text of the graph (ops, names, shapes); the nodes of each scope are
  /// drawn in one box (a cluster) labelled with the scope.
  std::string to_dot() const;

 private:
  friend class Value;
  friend class ScopeGuard;
  friend struct internal::GraphEditor;
  std::string unique_name(std::string name, Op op);
  Value append(Node node);
  /// The anchor Values point to, made when the first one is.
  internal::GraphAnchor* anchor();

  std::unique_ptr<internal::GraphAnchor> anchor_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, std::int32_t> names_;
  std::string scope_;
};

}  // namespace kiln
