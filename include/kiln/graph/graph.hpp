// Graph: a static dataflow graph of primitive ops; Value: a handle to a node's output.
//
// Nodes are appended in order, so every node's inputs come before it. Shapes are
// inferred and checked when a node is added; a shape may start with kiln::batch.
#pragma once

#include <cstdint>
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

/// One node: an op, its inputs (node ids), attributes, a unique name, and its output.
struct Node {
  Op op = Op::input;
  std::vector<std::int32_t> inputs;
  Attrs attrs;
  std::string name;
  /// The layer the node belongs to ("fc1", "conv2"; empty outside layers). Set from the
  /// graph's current scope when the node is added; kept by fusion and by autodiff, whose
  /// gradient nodes carry the scope of the node they differentiate.
  std::string scope;
  Shape shape;
  DType dtype = DType::f32;
  Tensor value;            ///< parameters and constants only
  bool trainable = false;  ///< parameters that optimizers update (not buffers)
};

/// A handle to the output of a node; cheap to copy, valid while its Graph lives.
class KILN_API Value {
 public:
  Value() = default;
  Value(Graph* graph, std::int32_t id) : graph_(graph), id_(id) {}

  bool valid() const { return graph_ != nullptr; }
  Graph& graph() const { return *graph_; }
  std::int32_t id() const { return id_; }
  const Node& node() const;
  const Shape& shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  const std::string& name() const { return node().name; }

  friend bool operator==(const Value& a, const Value& b) {
    return a.graph_ == b.graph_ && a.id_ == b.id_;
  }

 private:
  Graph* graph_ = nullptr;
  std::int32_t id_ = -1;
};

class KILN_API Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

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

  std::size_t size() const { return nodes_.size(); }
  const Node& node(std::int32_t id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  const std::vector<Node>& nodes() const { return nodes_; }
  Value value(std::int32_t id) { return Value(this, id); }

  /// The node with this name; throws NameError if there is none.
  Value find(std::string_view name);
  bool contains(std::string_view name) const;
  /// Inputs, trainable parameters and buffers (non-trainable parameters), in creation order.
  std::vector<Value> inputs();
  std::vector<Value> parameters();
  std::vector<Value> buffers();
  /// The stored tensor of a parameter or constant (shares storage).
  Tensor& tensor(Value v);
  /// Sets the layer a node belongs to (loaders and rewrites that rebuild a graph).
  void set_scope(Value v, std::string scope);

  /// Graphviz DOT text of the graph (ops, names, shapes).
  std::string to_dot() const;

 private:
  std::string unique_name(std::string name, Op op);
  Value append(Node node);

  std::vector<Node> nodes_;
  std::unordered_map<std::string, std::int32_t> names_;
};

}  // namespace kiln
