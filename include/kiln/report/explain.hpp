// Explanations: which inputs a model's output depends on, from autodiff.
//
//   kiln::report::Explainer ex(graph, input, probabilities);    // or Explainer::from_file
//   kiln::report::Attribution a = ex.integrated_gradients(row, {.target_class = 2});
//   // a.attributions has the input's shape; their sum is a.output - a.baseline_output
//   kiln::report::Attribution s = ex.saliency(row);           // |d output / d input|
//
//   // A model file made by kiln train, and a CSV read as its training file was:
//   auto test = kiln::train::read_csv_for_model("iris.kiln", "iris_test.csv");
//   auto ex2 = kiln::report::Explainer::from_file("iris.kiln");  // applies its preprocessing
//   auto a2 = ex2.integrated_gradients(test["features"].rows(0, 1));  // the predicted class
//   auto imp = kiln::report::permutation_importance("iris.kiln", test,
//                                                   {.metric = "accuracy", .repeats = 5});
//   // imp.features: one entry per data column, most important first
//
// Integrated gradients (Sundararajan et al., 2017) average the gradient along the straight
// path from a baseline (default zeros in the model-input space, i.e. after the file's
// preprocessing: the training mean for standardised features, the minimum for min-max
// scaled ones) to the input, with `steps` points (trapezoid rule) evaluated as one batch,
// times (input - baseline). Saliency is the gradient's absolute value at the input.
// Attributions, values and baselines are in the model-input space.
//
// The explained output element is selected by a one-hot mask fed beside the input: the
// Explainer appends  sum(output * mask)  and its gradient with respect to the input to the
// graph (kiln::grad), so every integration point is one row of one batch. The trapezoid
// rule's error shrinks with `steps`; completeness_error() says how far the sum misses (on a
// trained iris MLP at most 1.1% at 64 steps, 0.4% at the default 256).
//
// explanations_json renders the "explanations.json" object of docs/run-format.md for a
// model file made by kiln train / train_from_spec and a labelled test set.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
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
  std::int64_t steps = 256;
  /// The baseline input (its shape without the batch), in the model-input space (after
  /// the file's preprocessing); empty: zeros.
  Tensor baseline = {};
};

struct Attribution {
  std::string method;  ///< "integrated_gradients" or "saliency"
  std::string input;   ///< the graph input explained
  std::int64_t target_class = 0;
  std::int64_t steps = 0;        ///< integration points (integrated gradients; 1: saliency)
  Tensor attributions;           ///< f32, the input's shape without the batch dimension
  Tensor values;                 ///< f32, the explained input in the model-input space
  Tensor baseline;               ///< f32, the baseline (integrated gradients; else undefined)
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

  /// `x` is one example without the batch dimension (or with a batch of 1), as the model
  /// file's user gives it (from_file applies the file's preprocessing). ValueError naming
  /// the shapes for one that does not fit, or a target class out of range; steps >= 2.
  Attribution integrated_gradients(const Tensor& x, const AttributionOptions& options = {});
  Attribution saliency(const Tensor& x, const AttributionOptions& options = {});
  /// The model output for a batch (rows first, preprocessing applied as above).
  Tensor predict(const Tensor& batch);
  /// `x` in the model-input space (the file's preprocessing applied), without the batch.
  Tensor preprocess(const Tensor& x) const;
  const std::string& input_name() const;
  /// The input's shape without the batch dimension.
  const Shape& input_shape() const;
  /// Output elements per row (the number of classes of a softmax classifier; 1 for a
  /// regression value or a binary model's P(class 1)).
  std::int64_t outputs() const;
  /// Class names from the model file's labels (empty otherwise).
  const std::vector<std::string>& labels() const;
  /// One name per input element from the model file's CSV schema (kiln.data) for tabular
  /// inputs (e.g. "color=red"); empty otherwise.
  const std::vector<std::string>& feature_names() const;
  /// The output element a class name or index names: an index in [0, outputs()) or a label
  /// of labels(); for a single-output binary model (two labels) only class 1, by name or as
  /// "1" (the output is its probability). ValueError listing the classes for any other.
  std::int64_t class_index(const std::string& name_or_index) const;
  /// The class name of output element `index` ("" when unknown).
  std::string class_name(std::int64_t index) const;

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

/// Permutation feature importance of a model file made by train_from_spec over a labelled
/// dataset read as the model was trained (kiln::train::read_csv_for_model, i.e.
/// kiln::data::read_csv_with_schema of its "kiln.data" schema; raw features). Each data
/// column is permuted in turn (the one-hot columns of a categorical column together) with
/// `repeats` seeded shuffles; the score is the metric of the model's output. FormatError for
/// a model without its spec and schema, ValueError for an unknown metric, no rows, image
/// features or a dataset whose features do not match the schema.
KILN_API PermutationImportance permutation_importance(const std::string& model_path,
                                                      const data::Dataset& data,
                                                      const PermutationOptions& options = {});

/// One attribution made by `explainer` as an entry of explanations.json's "attributions"
/// (docs/run-format.md): row, method, class (the explainer's class_name, null when
/// unknown), class_index, output, baseline_output, steps, input, shape, features (when the
/// explainer knows feature_names), values and attributions. JSON text.
KILN_API std::string attribution_json(const Attribution& attribution, std::int64_t row,
                                      const Explainer& explainer);
/// explanations.json's "permutation_importance" object. JSON text.
KILN_API std::string importance_json(const PermutationImportance& importance);

struct ExplanationsOptions {
  /// Options of the permutation importance (tabular models only: image models get none).
  PermutationOptions importance = {};
  /// Integrated gradients of each row's predicted class with this many points.
  std::int64_t steps = 256;
};

/// The explanations.json object (docs/run-format.md) of a model file made by
/// train_from_spec: permutation importance over `test` (labelled, read with the model's
/// schema; tabular models) and integrated gradients of the predicted class for each of
/// `rows` of `test`. JSON text; throws what permutation_importance and Explainer throw, and
/// ValueError for a row outside the test set.
KILN_API std::string explanations_json(const std::string& model_path, const data::Dataset& test,
                                       std::span<const std::int64_t> rows,
                                       const ExplanationsOptions& options = {});

/// A self-contained HTML page (no scripts, fonts or network) showing an image input and
/// the heat map of its attributions side by side as two inline SVG images; `title` heads
/// it. ValueError for an attribution that is not an image ([C, H, W] with C 1 or 3).
KILN_API std::string attribution_html(const Attribution& attribution, const std::string& title);
/// attribution_html written to `path` atomically; IoError naming the file.
KILN_API void write_attribution_html(const std::string& path, const Attribution& attribution,
                                     const std::string& title);

}  // namespace kiln::report
