// The reference profile of a model's training data: what the drift monitor compares live
// inputs and predictions with. Built once at training time from tensors (kiln train and
// kiln::train::train_from_spec do it for you) and stored in the model file as the optional
// section "kiln.profile" (docs/mlops.md has its byte layout), so the model file alone is
// enough to monitor the model wherever it runs — this header is part of kiln_infer.
//
//   kiln::monitor::Profile p = kiln::monitor::build_profile(
//       {.input = "pixels", .features = train_x, .predictions = holdout_probs,
//        .predicted = kiln::monitor::PredictionKind::classes, .labels = {"0", ..., "9"}});
//   save.sections[kiln::monitor::profile_section] = p.to_bytes();
//   ...
//   auto profile = kiln::monitor::Profile::from_model(model);   // infer::Model
//
// What it holds, per feature (one per element of the input's row, flattened; a one-hot or
// index-coded categorical column is one categorical feature):
//  - numeric: count, non-finite count, min, max, mean, std, and a quantile histogram:
//    bin edges at the reference quantiles (duplicates removed, so a feature with few
//    distinct values gets one bin per value) and the reference count in each bin;
//  - categorical: the category names and the reference count of each.
// and the model's predictions on held-out data: classes (count per predicted class) or
// values (a quantile histogram, as a numeric feature).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"

namespace kiln::infer {
class Model;
}

namespace kiln::monitor {

/// The model file section holding a Profile (bytes: Profile::to_bytes()).
inline constexpr const char* profile_section = "kiln.profile";

enum class FeatureKind : std::uint8_t { numeric = 0, categorical = 1 };
enum class PredictionKind : std::uint8_t { none = 0, classes = 1, values = 2 };

/// Bins of a numeric distribution: bin i holds values v with edges[i-1] < v <= edges[i]
/// (bin 0: v <= edges[0]; the last bin, counts.size() - 1 = edges.size(): v > edges.back()).
struct Histogram {
  std::vector<double> edges;
  std::vector<std::uint64_t> counts;  ///< edges.size() + 1 entries
  /// The bin of v (binary search; a NaN has no bin: returns counts.size()).
  std::size_t bin(double v) const;
  friend bool operator==(const Histogram&, const Histogram&) = default;
};

struct FeatureProfile {
  std::string name;  ///< "petal_length", "color" (categorical), "pixels[12]" without names
  FeatureKind kind = FeatureKind::numeric;
  /// Where the feature's values are in the input row (flattened): numeric and index-coded
  /// categorical features take 1 element, a one-hot categorical one per category.
  std::int64_t offset = 0;
  std::int64_t width = 1;
  bool one_hot = false;         ///< categorical: one-hot (width == categories) or an index
  std::uint64_t count = 0;      ///< reference rows
  std::uint64_t nonfinite = 0;  ///< reference NaN/Inf values (numeric)
  double min = 0, max = 0, mean = 0, std = 0;  ///< over the finite reference values
  Histogram histogram;                         ///< numeric
  std::vector<std::string> categories;         ///< categorical
  std::vector<std::uint64_t> category_counts;  ///< categorical, per category
  friend bool operator==(const FeatureProfile&, const FeatureProfile&) = default;
};

struct Profile {
  std::string input;  ///< the model input the features describe
  std::vector<FeatureProfile> features;
  PredictionKind predicted = PredictionKind::none;
  std::string output;                       ///< the model output the predictions are read from
  std::vector<std::string> labels;          ///< classes: names by class index
  std::vector<std::uint64_t> class_counts;  ///< classes: reference count per class
  Histogram prediction_histogram;           ///< values
  std::uint64_t prediction_count = 0;       ///< rows the prediction profile was built on
  /// The model's recorded metrics on the held-out data, e.g. {"accuracy", 0.97}: what the
  /// decay alarm compares live metrics with.
  std::vector<std::pair<std::string, double>> metrics;

  /// Portable bytes (docs/mlops.md); from_bytes(to_bytes()) == *this.
  KILN_API std::vector<std::uint8_t> to_bytes() const;
  /// Throws FormatError naming `source` and what is malformed; never allocates more than
  /// the bytes hold.
  KILN_API static Profile from_bytes(std::span<const std::uint8_t> bytes,
                                     const std::string& source = "<memory>");
  /// The profile stored in a model file; throws NameError naming the model when it has none.
  KILN_API static Profile from_model(const infer::Model& model);
  friend bool operator==(const Profile&, const Profile&) = default;
};

/// A categorical column inside the input row (from the CSV schema: one-hot or index).
struct CategoricalColumn {
  std::string name;
  std::int64_t offset = 0;  ///< first element in the row
  std::vector<std::string> categories;
  bool one_hot = true;  ///< one element per category; false: one element holding the index
};

struct ProfileInputs {
  std::string input;  ///< the model input name
  /// Reference rows [N, ...] f32 as the app will feed them to infer::Model::run with the
  /// model's preprocessing applied by the runtime, i.e. raw (unscaled) values.
  Tensor features;
  /// Feature names for the flattened row (empty: "<input>[i]"); one per element, one-hot
  /// elements included (their names are ignored: the categorical column names them).
  std::vector<std::string> feature_names = {};
  std::vector<CategoricalColumn> categorical = {};
  /// The model's outputs on held-out rows: probabilities [M, C] (classes; [M, 1] or [M] for
  /// a binary P(class 1)) or values [M] / [M, 1]; empty: no prediction profile.
  Tensor predictions = {};
  PredictionKind predicted = PredictionKind::none;
  std::string output = {};
  std::vector<std::string> labels = {};
  std::vector<std::pair<std::string, double>> metrics = {};
  /// Quantile bins per numeric feature (at most; fewer when values repeat).
  int bins = 20;
};

/// Builds a profile; throws ValueError / ShapeError naming what does not fit.
KILN_API Profile build_profile(const ProfileInputs& inputs);

}  // namespace kiln::monitor
