// Datasets: named tensors with the same number of rows, kept in memory, and what is known
// about their columns (feature names, class names of the target, the file they came from).
//
//   kiln::data::Dataset d({{"features", x}, {"target", y}});   // x [N, F], y [N] i32
//   auto [train, test] = kiln::data::split(d, {.test_fraction = 0.2, .seed = 42,
//                                               .stratify = true});
//   kiln::data::Batch b = train.gather(std::vector<std::int64_t>{0, 5, 7});
//
// A dataset's tensor names are the graph input names they feed: a batch is a Feeds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"

namespace kiln::data {

/// Named tensors of a batch, in the dataset's order (the same type as kiln::Feeds).
using Batch = std::vector<std::pair<std::string, Tensor>>;

/// What a dataset knows about its columns.
struct DatasetInfo {
  /// Where the rows came from (a file path, or "" for tensors made in memory).
  std::string source = {};
  /// The tensor holding the features ("features" for readers) and the target ("" if none).
  std::string features = "features";
  std::string target = "target";
  /// One name per feature element after encoding (e.g. "sepal_length", "color=red").
  std::vector<std::string> feature_names = {};
  /// The target's class names by class index (string targets keep their names; integer
  /// targets get "0", "1", ...); empty for regression targets.
  std::vector<std::string> labels = {};
  friend bool operator==(const DatasetInfo&, const DatasetInfo&) = default;
};

class KILN_API Dataset {
 public:
  Dataset() = default;
  /// Throws ValueError for no tensors, an empty or repeated name, an undefined or rank-0
  /// tensor, or tensors whose first dimensions differ (naming them).
  explicit Dataset(Batch tensors, DatasetInfo info = {});

  /// Number of rows (the first dimension of every tensor).
  std::int64_t size() const { return rows_; }
  bool empty() const { return rows_ == 0; }
  const Batch& tensors() const { return tensors_; }
  bool contains(std::string_view name) const;
  /// The tensor named `name`; NameError (listing the names there are) if there is none.
  const Tensor& operator[](std::string_view name) const;
  const DatasetInfo& info() const { return info_; }
  DatasetInfo& info() { return info_; }

  /// The given rows of every tensor, copied into new contiguous tensors, in that order.
  /// Throws ValueError for a row outside [0, size()).
  Batch gather(std::span<const std::int64_t> rows) const;
  /// A dataset of the given rows (copied), with the same info.
  Dataset subset(std::span<const std::int64_t> rows) const;
  /// Rows [begin, end) as views sharing storage (no copy).
  Dataset rows(std::int64_t begin, std::int64_t end) const;
  /// A dataset with only the named tensors (views), e.g. the features for predict.
  Dataset select(const std::vector<std::string>& names) const;

 private:
  Batch tensors_;
  DatasetInfo info_;
  std::int64_t rows_ = 0;
};

struct SplitOptions {
  /// Share of the rows in the second part, in (0, 1).
  double test_fraction = 0.2;
  std::uint64_t seed = 0;
  /// Keep the class balance of info().target (an integer tensor) in both parts.
  bool stratify = false;
};

/// A seeded random split into (train, test); the same seed gives the same split on every
/// machine. Throws ValueError for a fraction outside (0, 1) or a part that would be empty,
/// DataError when stratifying a target that has one class.
KILN_API std::pair<Dataset, Dataset> split(const Dataset& dataset,
                                           const SplitOptions& options = {});

}  // namespace kiln::data
