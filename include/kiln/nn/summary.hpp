// A model summary in the manner of Keras's model.summary(): one row per layer (per scope,
// see Graph::scope) with its type, output shape and parameter count, then the totals.
//
//   std::cout << kiln::nn::summary(g, {logits});
//
//   Layer (type)    Output shape  Param #
//   =====================================
//   pixels (Input)  [batch, 64]         0
//   fc1 (Dense)     [batch, 128]    8,320
//   fc2 (Dense)     [batch, 10]     1,290
//   =====================================
//   Total params: 9,610 (37.5 KiB)
//   Trainable params: 9,610 (37.5 KiB)
//   Non-trainable params: 0 (0 B)
//
// With outputs, only what they depend on is summarised (leaving out a loss and the
// gradient nodes a TrainStep appended); without, every node of the graph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::nn {

/// One row: a graph input, a layer (the nodes of one scope), or a parameter created
/// outside any scope.
struct LayerSummary {
  std::string name;  ///< the scope ("fc1", "encoder/fc1"), input or parameter name
  /// "Input", "Dense", "Conv2d", "BatchNorm", "LayerNorm", "Embedding", "MaxPool2d",
  /// "AvgPool2d", "GlobalAvgPool2d", "Flatten", "Dropout", "Activation", "Parameter", or
  /// else the op name of the layer's output node.
  std::string type;
  Shape output_shape;  ///< of the layer's last node that is used outside it (or an output)
  DType dtype = DType::f32;
  std::int64_t trainable = 0;      ///< elements of its trainable parameters
  std::int64_t non_trainable = 0;  ///< elements of its buffers (e.g. running statistics)
  std::int64_t params() const { return trainable + non_trainable; }
};

struct ModelSummary {
  std::vector<LayerSummary> layers;  ///< in the order of their first node
  std::int64_t trainable = 0;
  std::int64_t non_trainable = 0;
  std::int64_t trainable_bytes = 0;
  std::int64_t non_trainable_bytes = 0;
  std::int64_t total() const { return trainable + non_trainable; }
  /// The table shown at the top of this file.
  std::string str() const;
};

/// The layers of `graph` that `outputs` depend on (all nodes when empty). Throws
/// ValueError for an output that is empty or from another graph.
KILN_API ModelSummary summarize(const Graph& graph, const std::vector<Value>& outputs = {});
/// summarize(graph, outputs).str().
KILN_API std::string summary(const Graph& graph, const std::vector<Value>& outputs = {});

}  // namespace kiln::nn
