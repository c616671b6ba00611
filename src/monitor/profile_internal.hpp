// Internal: helpers the profile builder and the monitor share (one rule each).
#pragma once

#include <cstdint>
#include <span>

#include "kiln/monitor/profile.hpp"

namespace kiln::monitor::internal {

/// Quantile bins of sorted finite values (profile.hpp: one bin per distinct value when there
/// are at most `bins` of them, else quantile edges; the last edge is the maximum).
Histogram quantile_histogram(std::span<const double> sorted, int bins);
/// The category of a categorical feature in a row (one-hot: the element equal to 1, the
/// others 0; index: an integer in range); -1 when the row holds none.
std::int64_t category_of(const FeatureProfile& feature, const float* row);
/// The predicted class of an output row of `cols` values (argmax; one column: P(class 1)
/// > 0.5).
std::int64_t predicted_class(const float* row, std::int64_t cols);
/// Values per input row the profile's features cover.
std::int64_t row_width(const Profile& profile);

}  // namespace kiln::monitor::internal
