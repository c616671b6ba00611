// Permutation feature importance of a model file made by train_from_spec, and the
// explanations.json object of a run folder (docs/run-format.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/report/explain.hpp"
#include "kiln/train/metrics.hpp"
#include "train/spec_eval.hpp"

namespace kiln::report {
namespace {

using json = nlohmann::json;

bool lower_is_better(const std::string& metric) {
  return metric == "mse" || metric == "mae" || metric == "log_loss";
}

// A data column and the feature columns (one-hot: several) it became.
struct ColumnGroup {
  std::string name;
  std::int64_t begin = 0, end = 0;
};

std::vector<ColumnGroup> column_groups(const data::CsvSchema& schema, std::int64_t features,
                                       const std::string& model_path) {
  std::vector<ColumnGroup> groups;
  std::int64_t at = 0;
  for (const data::CsvColumn& c : schema.features) {
    if (c.kind == data::ColumnKind::image)
      throw ValueError("permutation_importance: " + model_path + " reads images (column '" +
                       c.name + "'); permutation importance is for tabular models");
    const bool one_hot = c.kind == data::ColumnKind::categorical &&
                         schema.encoding == data::CategoryEncoding::one_hot;
    const auto width = one_hot ? static_cast<std::int64_t>(c.categories.size()) : 1;
    groups.push_back({c.name, at, at + width});
    at += width;
  }
  if (at != features)
    throw ValueError("permutation_importance: the dataset has " + std::to_string(features) +
                     " feature values per row but the schema of " + model_path + " makes " +
                     std::to_string(at) + " (read it with kiln::train::read_csv_for_model)");
  return groups;
}

// The metric of the model's output on `features` against `target`, as evaluate_csv scores it.
double score(const train::internal::SpecModel& sm, const Tensor& features, const Tensor& target,
             const std::string& metric) {
  const data::Dataset d({{"features", features}});
  const Tensor out = train::internal::run_model(sm.model, d);
  if (sm.spec.task.type != train::Task::binary) return metrics::compute(metric, out, target);
  Tensor probs, classes;
  train::internal::binary_outputs(out, probs, classes);
  return metrics::compute(metric, probs, target);
}

json importance_object(const PermutationImportance& p) {
  json features = json::array();
  for (const FeatureImportance& f : p.features)
    features.push_back({{"name", f.name}, {"importance", f.importance}, {"std", f.std}});
  return {{"metric", p.metric},
          {"repeats", p.repeats},
          {"rows", p.rows},
          {"baseline", p.baseline},
          {"features", features}};
}

json float_array(const Tensor& t) {
  json a = json::array();
  if (!t.defined()) return a;
  for (float v : t.to(DType::f32).contiguous().to_vector<float>()) a.push_back(v);
  return a;
}

json attribution_object(const Attribution& a, std::int64_t row, const Explainer& explainer) {
  json j;
  j["row"] = row;
  j["method"] = a.method;
  const std::string name = explainer.class_name(a.target_class);
  j["class"] = name.empty() ? json(nullptr) : json(name);
  j["class_index"] = a.target_class;
  j["output"] = a.output;
  j["baseline_output"] = a.baseline_output;
  j["steps"] = a.steps;
  j["input"] = a.input;
  j["shape"] =
      a.attributions.defined() ? a.attributions.shape().dims() : std::vector<std::int64_t>{};
  if (!explainer.feature_names().empty()) j["features"] = explainer.feature_names();
  j["values"] = float_array(a.values);
  j["attributions"] = float_array(a.attributions);
  return j;
}

}  // namespace

PermutationImportance permutation_importance(const std::string& model_path,
                                             const data::Dataset& data,
                                             const PermutationOptions& options) {
  const train::internal::SpecModel sm = train::internal::load_spec_model(model_path);
  if (options.repeats < 1)
    throw ValueError("permutation_importance: repeats must be at least 1, not " +
                     std::to_string(options.repeats));
  if (data.empty()) throw ValueError("permutation_importance: the dataset has no rows");
  if (!data.contains("features") || !data.contains("target"))
    throw ValueError(
        "permutation_importance: the dataset needs 'features' and 'target' (a labelled file "
        "read with kiln::train::read_csv_for_model)");
  const Tensor x = data["features"].to(DType::f32).contiguous();
  const Tensor& target = data["target"];
  if (x.rank() != 2)
    throw ValueError("permutation_importance: the features have shape " + x.shape().str() +
                     "; permutation importance is for tabular models ([rows, features])");
  const std::vector<ColumnGroup> groups = column_groups(sm.schema, x.dim(1), model_path);

  PermutationImportance result;
  result.metric = options.metric.empty()
                      ? (sm.spec.task.type == train::Task::regression ? "r2" : "accuracy")
                      : options.metric;
  result.repeats = options.repeats;
  result.rows = data.size();
  result.baseline = score(sm, x, target, result.metric);
  const double sign = lower_is_better(result.metric) ? -1.0 : 1.0;

  const std::int64_t n = x.dim(0), f = x.dim(1);
  const float* src = x.data<float>();
  Rng rng(options.seed);
  std::vector<std::vector<double>> drops(groups.size());
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < options.repeats; ++r) {
    for (std::size_t g = 0; g < groups.size(); ++g) {
      std::iota(perm.begin(), perm.end(), std::int64_t{0});
      for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates, the same on every platform
        std::swap(perm[static_cast<std::size_t>(i)],
                  perm[rng.below(static_cast<std::uint64_t>(i + 1))]);
      Tensor shuffled = x.clone();
      float* dst = shuffled.data<float>();
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t c = groups[g].begin; c < groups[g].end; ++c)
          dst[i * f + c] = src[perm[static_cast<std::size_t>(i)] * f + c];
      drops[g].push_back(sign * (result.baseline - score(sm, shuffled, target, result.metric)));
    }
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const double k = static_cast<double>(drops[g].size());
    double mean = 0.0, var = 0.0;
    for (double v : drops[g]) mean += v / k;
    for (double v : drops[g]) var += (v - mean) * (v - mean) / k;
    result.features.push_back({groups[g].name, mean, std::sqrt(var)});
  }
  std::stable_sort(result.features.begin(), result.features.end(),
                   [](const FeatureImportance& a, const FeatureImportance& b) {
                     return a.importance > b.importance;
                   });
  return result;
}

std::string attribution_json(const Attribution& attribution, std::int64_t row,
                             const Explainer& explainer) {
  return attribution_object(attribution, row, explainer).dump();
}

std::string importance_json(const PermutationImportance& importance) {
  return importance_object(importance).dump();
}

std::string explanations_json(const std::string& model_path, const data::Dataset& test,
                              std::span<const std::int64_t> rows,
                              const ExplanationsOptions& options) {
  Explainer explainer = Explainer::from_file(model_path);
  json j = json::object();
  if (explainer.input_shape().rank() == 1)
    j["permutation_importance"] =
        importance_object(permutation_importance(model_path, test, options.importance));
  json attributions = json::array();
  const Tensor& x = test["features"];
  for (std::int64_t row : rows) {
    if (row < 0 || row >= test.size())
      throw ValueError("explanations_json: row " + std::to_string(row) + " is outside the " +
                       std::to_string(test.size()) + " rows of the test set");
    const Attribution a =
        explainer.integrated_gradients(x.rows(row, row + 1), {.steps = options.steps});
    attributions.push_back(attribution_object(a, row, explainer));
  }
  j["attributions"] = attributions;
  return j.dump();
}

}  // namespace kiln::report
