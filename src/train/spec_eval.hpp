// Internal: evaluating a model file made by train_from_spec on an encoded dataset, shared by
// train_from_spec (test metrics) and evaluate_csv, so both report the same numbers.
#pragma once

#include <string>
#include <vector>

#include "kiln/data/dataset.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln::train::internal {

/// The model's output 0 for every row of `data`'s "features" (batched).
Tensor run_model(const infer::Model& model, const data::Dataset& data);

/// Metrics of `model` on `data` (features and the target as the CSV reader makes them:
/// i32 [N] classes or f32 [N, 1] values), with the spec's task and metric names.
Evaluation evaluate_dataset(const infer::Model& model, const data::Dataset& data,
                            const ModelSpec& spec, const std::vector<std::string>& labels);

}  // namespace kiln::train::internal
