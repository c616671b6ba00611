// Explanations: which inputs a model's output depends on, from autodiff.
//
//   kiln::report::Explainer ex(graph, input, probabilities);    // or Explainer::from_file
//   kiln::report::Attribution a = ex.integrated_gradients(row, {.target_class = 2});
//   // a.attributions has the input's shape; their sum is a.output - a.baseline_output
//   kiln::report::Attribution s = ex.saliency(row);           // |d output / d input|
//
//   auto imp = kiln::report::permutation_importance("iris.kiln", test_csv_dataset,
//                                                   {.metric = "accuracy", .repeats = 5});
//
// Integrated gradients (Sundararajan et al., 2017) average the gradient along the straight
// path from a baseline (default zeros, i.e. the training mean for standardised features)
// to the input, with `steps` points (trapezoid rule) evaluated as one batch, times
// (input - baseline). Saliency is the gradient's absolute value at the input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::report {

struct AttributionOptions {
  /// The output element explained: a class index; -1: the predicted (arg max) class. For
  /// a single-output model (regression, binary logit) it must be -1 or 0.
  std::int64_t target_class = -1;
  /// Integration points (integrated gradients only).
  std::int64_t steps = 64;
  /// The baseline input (its shape without the batch); empty: zeros.
  Tensor baseline = {};
};

struct Attribution {
  std::string method;  ///< "integrated_gradients" or "saliency"
  std::string input;   ///< the graph input explained
  std::int64_t target_class = 0;
  Tensor attributions;           ///< the input's shape without the batch dimension
  double output = 0.0;           ///< the explained output at the input
  double baseline_output = 0.0;  ///< and at the baseline (integrated gradients)
  /// |sum(attributions) - (output - baseline_output)| / max(|output - baseline_output|,
  /// 1e-12) (integrated gradients; 0 for saliency).
  double completeness_error() const;
};

class KILN_API Explainer {
 public:
  /// Explains `output` (logits, probabilities or a regression value: [batch, classes] or
  /// [batch]) with respect to graph input `input`; appends gradient nodes to the graph.
  Explainer(Graph& graph, Value input, Value output);
  /// The model file's graph (kiln::load_graph), its first input and first output; with
  /// the file's preprocessing applied to the rows given to the explain calls.
  static Explainer from_file(const std::string& model_path);
  ~Explainer();
  Explainer(Explainer&&) noexcept;
  Explainer& operator=(Explainer&&) noexcept;

  /// `x` is one example without the batch dimension (or with a batch of 1). ValueError
  /// naming the shapes for one that does not fit.
  Attribution integrated_gradients(const Tensor& x, const AttributionOptions& options = {});
  Attribution saliency(const Tensor& x, const AttributionOptions& options = {});
  /// The model output for a batch (rows first), e.g. to pick a class.
  Tensor predict(const Tensor& batch);
  const std::string& input_name() const;
  /// Class names from the model file's labels (empty otherwise).
  const std::vector<std::string>& labels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PermutationOptions {
  /// A metric name (kiln::metrics::compute): "accuracy" for classifiers, "mse" or "r2"
  /// for regression, ...; empty: accuracy or r2 by task.
  std::string metric = {};
  std::int64_t repeats = 5;
  std::uint64_t seed = 0;
};

struct FeatureImportance {
  std::string name;         ///< a data column (one-hot columns of a category are permuted together)
  double importance = 0.0;  ///< mean of (baseline score - permuted score), sign-adjusted so
                            ///< that larger always means more important
  double std = 0.0;
};

struct PermutationImportance {
  std::string metric;
  double baseline = 0.0;
  std::int64_t repeats = 0;
  std::int64_t rows = 0;
  std::vector<FeatureImportance> features;  ///< most important first
};

/// Permutation feature importance of a model file over a labelled dataset read as the
/// model was trained (kiln::data::read_csv_with_schema of its "kiln.data" schema).
KILN_API PermutationImportance permutation_importance(const std::string& model_path,
                                                      const data::Dataset& data,
                                                      const PermutationOptions& options = {});

}  // namespace kiln::report
