// Model files (.kiln): one file with everything needed to run and to audit a model —
// graph, weights, input/output signatures, preprocessing, label names, semantic version,
// creation time, library version, free-form metadata and training metrics.
//
// Layout: a fixed envelope Kiln checks itself (magic "KILN", format version, payload
// length, SHA-256 of the payload), then the payload. Files are written atomically (temp
// file in the same folder, fsync, rename, fsync of the folder). Every earlier format
// version stays loadable. A bad file raises kiln::FormatError naming the file and what is
// wrong, and never allocates more than the file holds.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln {

/// The newest format version this library writes (it reads every version up to it).
inline constexpr std::uint32_t model_format_version = 1;

/// Name, shape (the first dim may be kiln::batch) and dtype of a model input or output.
struct TensorSpec {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  friend bool operator==(const TensorSpec&, const TensorSpec&) = default;
};

/// Per-feature normalisation that the caller applies before running (kiln::infer::Model
/// reports it in metadata() but does not apply it):
/// x' = (x - mean) / stddev along the last axis of `input`.
struct Normalization {
  std::string input;
  std::vector<float> mean;
  std::vector<float> stddev;
  friend bool operator==(const Normalization&, const Normalization&) = default;
};

/// What a model file says about the model besides its graph and weights.
struct ModelMetadata {
  std::string name;
  std::string version = "0.0.0";  ///< the model's semantic version
  std::string description;
  std::vector<std::string> labels;  ///< class names, by output index
  std::vector<Normalization> preprocessing;
  std::vector<std::pair<std::string, double>> metrics;     ///< e.g. {"test_accuracy", 0.98}
  std::vector<std::pair<std::string, std::string>> extra;  ///< free-form key/value pairs
  std::string created;                                     ///< set on save: UTC, ISO 8601
  std::string library_version;  ///< set on save: the Kiln version that wrote the file
  friend bool operator==(const ModelMetadata&, const ModelMetadata&) = default;
};

struct SaveOptions {
  /// Graph inputs the model takes, in order (they become the input signature).
  std::vector<Value> inputs;
  /// Values the model returns, in order; names default to the values' node names.
  std::vector<Value> outputs;
  std::vector<std::string> output_names = {};
  ModelMetadata metadata = {};
};

/// The model file's bytes: the part of `graph` the outputs need, with current parameter
/// and buffer values. Throws ValueError for missing/foreign values or training-only ops.
KILN_API std::vector<std::uint8_t> serialize_model(const Graph& graph, const SaveOptions& options);
/// Writes serialize_model(...) to `path` atomically; throws IoError naming the file.
KILN_API void save_model(const std::string& path, const Graph& graph, const SaveOptions& options);

}  // namespace kiln
