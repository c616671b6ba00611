// Loss functions with class and sample weights, for tabular training: softmax
// cross-entropy, binary cross-entropy with logits, MSE and Huber. Each builds a scalar
// loss from existing ops (differentiable, any float dtype), with PyTorch's definitions:
//
//   auto loss = kiln::train::cross_entropy(logits, labels,
//                                          {.class_weights = {1.0, 5.0, 2.0},
//                                           .sample_weights = g.input("w", {kiln::batch})});
//   auto bce = kiln::train::binary_cross_entropy_with_logits(logit, target,
//                                                            {.pos_weight = {3.0}});
//   auto reg = kiln::train::huber(prediction, target, {.delta = 0.5});
//
// Weighted means. Sample i's loss l_i (for [N, K] outputs: the mean over its K elements)
// counts with its weight: loss = sum_i s_i l_i / sum_i s_i, where s_i is the sample
// weight (sklearn's sample_weight; a batch whose weights sum to 0 gives NaN). Cross-entropy
// class weights follow torch.nn.CrossEntropyLoss(weight=w): loss = sum_i w[y_i] l_i /
// sum_i w[y_i]; with sample weights too, the weight of sample i is s_i w[y_i]. Without
// weights every loss is the plain mean (the fused ops of kiln/ops.hpp are used then).
// binary_cross_entropy_with_logits' pos_weight is torch's: it multiplies the positive
// term, l = -(p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))). (torch's own `weight`
// argument is not normalised by the weights' sum; these sample weights are.)
//
// Bad arguments raise ValueError (weights of the wrong count, negative or non-finite
// weights, delta <= 0), ShapeError or DTypeError, naming the loss and the values.
#pragma once

#include <string>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::train {

struct CrossEntropyOptions {
  /// One weight per class (logits' last dim); empty: every class weighs 1.
  std::vector<double> class_weights = {};
  /// Per-sample weights [N] (e.g. a graph input fed with each batch); empty: all 1.
  Value sample_weights = {};
  std::string name = {};
};

/// Weighted mean of -log softmax(logits [N, C])[i, labels[i]] over the batch; labels are
/// integer class indices [N].
KILN_API Value cross_entropy(Value logits, Value labels, const CrossEntropyOptions& options = {});

struct BinaryCrossEntropyOptions {
  /// Weight of the positive term: one value, or one per output (logits' last dim).
  std::vector<double> pos_weight = {};
  /// Per-sample weights [N]; empty: all 1.
  Value sample_weights = {};
  std::string name = {};
};

/// Weighted mean binary cross-entropy of sigmoid(logits) against targets in [0, 1] of the
/// same shape ([N] or [N, K]), computed stably from the logits.
KILN_API Value binary_cross_entropy_with_logits(Value logits, Value targets,
                                                const BinaryCrossEntropyOptions& options = {});

struct RegressionLossOptions {
  /// Per-sample weights [N]; empty: all 1.
  Value sample_weights = {};
  std::string name = {};
};

/// Weighted mean of (prediction - target)^2; prediction and target of the same shape.
KILN_API Value mse(Value prediction, Value target, const RegressionLossOptions& options = {});

struct HuberOptions {
  /// Where the loss turns from quadratic to linear (torch.nn.HuberLoss's delta), > 0.
  double delta = 1.0;
  Value sample_weights = {};
  std::string name = {};
};

/// Weighted mean Huber loss: 0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta),
/// d = prediction - target (same shape).
KILN_API Value huber(Value prediction, Value target, const HuberOptions& options = {});

}  // namespace kiln::train
