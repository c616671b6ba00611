// Feature scaling fitted on the training split and stored with the model as its
// preprocessing, so kiln_infer applies the same scaling to raw inputs at run time.
//
//   auto [train, test] = kiln::data::split(data, {.test_fraction = 0.2, .seed = 1});
//   kiln::Normalization norm = kiln::data::fit_standardization(train);   // train only
//   train = kiln::data::apply_normalization(train, norm);
//   test = kiln::data::apply_normalization(test, norm);
//   save_options.metadata.preprocessing.push_back(norm);   // infer applies it on request
//
// A Normalization maps x to (x - mean) / stddev per feature along the last axis (of [N, F]
// features: per column), computed in double and rounded to the tensor's type, exactly as
// kiln::infer::Model does with LoadOptions::apply_preprocessing. Standardisation uses the
// mean and the population standard deviation (as scikit-learn's StandardScaler); min-max
// scaling uses mean = min and stddev = max - min, mapping the training range to [0, 1]. A
// constant feature gets stddev 1 (it is only shifted).
#pragma once

#include <cstdint>

#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"
#include "kiln/io/model_file.hpp"

namespace kiln::data {

enum class Scaling : std::uint8_t { none, standardize, min_max };

/// Mean and population standard deviation of each feature of dataset[info().features]
/// (a floating-point tensor of rank >= 2; statistics over every axis but the last).
/// Normalization::input is that tensor's name. Throws NameError if there is no such tensor,
/// ValueError for an integer or rank-1 tensor, no rows, or a non-finite value (naming the
/// feature).
KILN_API Normalization fit_standardization(const Dataset& train);
/// Minimum and range of each feature, as a Normalization (mean = min, stddev = max - min).
KILN_API Normalization fit_min_max(const Dataset& train);
/// fit_standardization or fit_min_max; ValueError for Scaling::none.
KILN_API Normalization fit_scaling(const Dataset& train, Scaling method);

/// (x - mean) / stddev along the last axis, in a new tensor of x's type: the function
/// kiln_infer applies preprocessing with (kiln/io/model_file.hpp). ShapeError when the last
/// dimension is not the normalization's feature count, DTypeError for integers.
using kiln::apply_normalization;
/// The dataset with its tensor named normalization.input scaled (the others shared).
KILN_API Dataset apply_normalization(const Dataset& data, const Normalization& normalization);

}  // namespace kiln::data
