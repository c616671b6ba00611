// Internal: a model file made by train_from_spec opened with its spec and CSV schema, and
// evaluated on an encoded dataset; shared by train_from_spec (test metrics), evaluate_csv,
// predict_csv and kiln::report's permutation importance, so all read files and report
// numbers the same way.
#pragma once

#include <string>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln::train::internal {

/// A model file made by train_from_spec: the model (loaded with its preprocessing applied
/// in run()), its spec ("kiln.spec") and the CSV schema ("kiln.data").
struct SpecModel {
  infer::Model model;
  ModelSpec spec;
  data::CsvSchema schema;
};

/// Throws IoError / FormatError naming the file, and FormatError for a model without the
/// spec or data section.
SpecModel load_spec_model(const std::string& path);

/// The model's output 0 for every row of `data`'s "features" (batched).
Tensor run_model(const infer::Model& model, const data::Dataset& data);

/// [N, 1] probabilities of class 1 (a binary model's output) -> [N, 2] (p0, p1) and the
/// classes (p1 > 0.5) as i32 [N].
void binary_outputs(const Tensor& p1, Tensor& probs, Tensor& classes);

/// Metrics of `model` on `data` (features and the target as the CSV reader makes them:
/// i32 [N] classes or f32 [N, 1] values), with the spec's task and metric names.
Evaluation evaluate_dataset(const infer::Model& model, const data::Dataset& data,
                            const ModelSpec& spec, const std::vector<std::string>& labels);

}  // namespace kiln::train::internal
