// Internal: undoing the nodes appended by a call that failed, so functions that add
// several nodes (kiln::grad, TrainStep) leave the graph unchanged when they throw.
#pragma once

#include <cstddef>

#include "kiln/graph/graph.hpp"

namespace kiln::internal {

struct GraphEditor {
  /// Removes the nodes from index `size` on (their Values become invalid).
  static void truncate(Graph& graph, std::size_t size) {
    while (graph.nodes_.size() > size) {
      graph.names_.erase(graph.nodes_.back().name);
      graph.nodes_.pop_back();
    }
  }
  /// The anchor that follows the graph's nodes through moves (what Values point to).
  static GraphAnchor* anchor(Graph& graph) { return graph.anchor(); }
  /// Marks the nodes from index `from` on as part of a gradient (Node::gradient).
  static void mark_gradient(Graph& graph, std::size_t from) {
    for (std::size_t i = from; i < graph.nodes_.size(); ++i) graph.nodes_[i].gradient = true;
  }
};

/// Restores a graph's size when it goes out of scope, unless released (commit).
class GraphRollback {
 public:
  explicit GraphRollback(Graph& graph) : graph_(&graph), size_(graph.size()) {}
  GraphRollback(const GraphRollback&) = delete;
  GraphRollback& operator=(const GraphRollback&) = delete;
  ~GraphRollback() {
    if (graph_) GraphEditor::truncate(*graph_, size_);
  }
  void commit() { graph_ = nullptr; }

 private:
  Graph* graph_;
  std::size_t size_;
};

}  // namespace kiln::internal
