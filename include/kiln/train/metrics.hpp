// Metrics of classifiers and regressors, computed eagerly from predictions and targets
// (tensors, any float or integer dtype), with scikit-learn's definitions:
//
//   double acc = kiln::metrics::accuracy(logits, labels);        // scores [N, C] or classes [N]
//   auto cm = kiln::metrics::confusion_matrix(logits, labels, 3); // cm.counts[true][pred]
//   auto prf = kiln::metrics::precision_recall_f1(cm);            // per class, macro, micro
//   double r2 = kiln::metrics::r2(prediction, target);
//
// Scores are logits or probabilities [N, C] (the class is the argmax) or, for binary
// models, one column [N] / [N, 1] of logits (class 1 when > 0) — see the notes per
// function. A mismatch of row counts is a ShapeError, a label outside [0, C) a ValueError.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"

namespace kiln::metrics {

/// Share of rows whose predicted class equals the label. `predictions`: scores [N, C]
/// (argmax), or classes [N] (integer dtype).
KILN_API double accuracy(const Tensor& predictions, const Tensor& labels);
/// Share of rows whose label is among the k highest scores of [N, C]. Ties rank the higher
/// class index first, as sklearn's top_k_accuracy_score does (so top-1 may differ from
/// accuracy(), whose argmax takes the lower index, on tied rows). k >= C: 1.0. One binary
/// logit column: k = 1 is accuracy(), k >= 2 is 1.0. k < 1 is a ValueError.
KILN_API double top_k_accuracy(const Tensor& scores, const Tensor& labels, std::int64_t k);

struct ConfusionMatrix {
  std::int64_t classes = 0;
  /// counts[t * classes + p]: rows of true class t predicted as p.
  std::vector<std::int64_t> counts;
  std::int64_t at(std::int64_t true_class, std::int64_t predicted) const {
    return counts[static_cast<std::size_t>(true_class * classes + predicted)];
  }
};
/// `predictions` as in accuracy(). `classes` 0: the score columns (2 for one binary logit
/// column), or more if a label or predicted class is larger (one more than the largest).
KILN_API ConfusionMatrix confusion_matrix(const Tensor& predictions, const Tensor& labels,
                                          std::int64_t classes = 0);

struct ClassScores {
  std::vector<double> precision, recall, f1;  ///< per class (0 where undefined, as sklearn's
                                              ///< zero_division=0)
  std::vector<std::int64_t> support;          ///< true rows per class
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  double weighted_f1 = 0;
};
/// Over every class of the matrix, present or not (sklearn's labels=range(C)): macro is the
/// unweighted mean over classes, weighted_f1 weighs by support, micro pools all classes.
KILN_API ClassScores precision_recall_f1(const ConfusionMatrix& cm);

/// Mean negative log-likelihood of the labels. `probabilities` [N, C] must be
/// probabilities (clipped to [1e-15, 1 - 1e-15], then each row divided by its sum, as
/// sklearn's log_loss with eps=1e-15); [N] / [N, 1] are P(class 1) of a binary model.
/// Values outside [0, 1] are a ValueError.
KILN_API double log_loss(const Tensor& probabilities, const Tensor& labels);

/// Regression: prediction and target of the same numel (e.g. [N] and [N, 1]). Equal
/// [N, D] shapes are D outputs averaged uniformly (sklearn's multioutput="uniform_average").
/// Non-finite values are a ValueError.
KILN_API double mse(const Tensor& prediction, const Tensor& target);
KILN_API double mae(const Tensor& prediction, const Tensor& target);
/// Coefficient of determination, 1 - SS_res / SS_tot; for a constant target 1.0 when the
/// prediction is exact and 0.0 otherwise (sklearn's force_finite); NaN for one row.
KILN_API double r2(const Tensor& prediction, const Tensor& target);

/// Names accepted by compute(): "accuracy", "top<k>_accuracy" (e.g. "top3_accuracy"),
/// "precision_macro", "recall_macro", "f1_macro", "precision_micro", "recall_micro",
/// "f1_micro", "f1_weighted", "log_loss", "mse", "mae", "r2". log_loss takes scores: [N, C]
/// is used as probabilities when every row is (entries in [0, 1], sums within 1e-6 of 1),
/// else softmax is applied to every row; one column is a logit (sigmoid is applied).
/// Throws ValueError naming an unknown metric.
KILN_API double compute(const std::string& name, const Tensor& predictions, const Tensor& targets);

}  // namespace kiln::metrics
