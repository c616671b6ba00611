// Model files (.kiln): one file with everything needed to run and to audit a model —
// graph, weights, input/output signatures, preprocessing, label names, semantic version,
// creation time, library version, free-form metadata and training metrics.
//
// Layout (docs/model_format.md has the byte-level description): a fixed envelope Kiln
// checks itself (magic "KILN", format version, payload length, SHA-256 of the payload),
// then the payload. In format v2 the payload is a table of named, length-prefixed
// sections. Kiln's own sections are named "kiln.*": kiln.graph (ops by name, attributes as
// tagged key/value pairs, each node's scope), kiln.signatures, kiln.metadata, kiln.weights
// and kiln.provenance (creation time, library version). Any other name is a user section
// (SaveOptions::sections): opaque bytes that readers keep and never interpret, so a reader
// skips the sections it does not know. Three optional Kiln sections travel the same way
// (SaveOptions::sections accepts these three "kiln." names): kiln.spec (the model spec,
// JSON), kiln.data (the data schema of the CSV reader, JSON) and kiln.profile (the drift
// monitor's reference profile, kiln/monitor/profile.hpp). A section flagged "required" that
// a reader does not know makes it refuse the file; user sections are never flagged.
//
// The content hash (model_content_hash, infer::Model::content_hash) is the SHA-256 of every
// section but kiln.provenance: two saves of the same graph, weights, signatures, metadata
// and user sections have the same content hash, whenever and by whichever run they were
// written. Version 1 files have none ("").
//
// Files are written atomically (temp file in the same folder, fsync, rename, fsync of the
// folder). Every earlier format version stays loadable. A bad file raises kiln::FormatError
// naming the file and what is wrong, and never allocates more than the file holds.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln {

/// The newest format version this library writes (it reads every version up to it).
inline constexpr std::uint32_t model_format_version = 2;

/// Name, shape (the first dim may be kiln::batch) and dtype of a model input or output.
struct TensorSpec {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  friend bool operator==(const TensorSpec&, const TensorSpec&) = default;
};

/// Per-feature normalisation of a model input: x' = (x - mean) / stddev along the last axis
/// of `input`. kiln::infer::Model applies it in run() when loaded with
/// LoadOptions::apply_preprocessing; otherwise (the default) the caller applies it.
struct Normalization {
  std::string input;
  std::vector<float> mean;
  std::vector<float> stddev;
  friend bool operator==(const Normalization&, const Normalization&) = default;
};

/// (x - mean) / stddev along the last axis of x, in a new tensor of x's float type: what
/// infer::Model applies with LoadOptions::apply_preprocessing, and what kiln::data scales
/// datasets with. Throws ValueError for a normalization whose means and deviations differ in
/// count, DTypeError for an integer x, ShapeError when x's last dimension is not the
/// feature count.
KILN_API Tensor apply_normalization(const Tensor& x, const Normalization& normalization);

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
  /// Extra named sections (name -> bytes), stored as they are and returned by
  /// infer::Model::section. Names must not be empty or start with "kiln." (reserved).
  std::map<std::string, std::vector<std::uint8_t>> sections = {};
  /// The creation time stored in the file (ModelMetadata::created), UTC as
  /// "YYYY-MM-DDTHH:MM:SSZ"; empty: now. Fixing it makes two saves of the same graph,
  /// weights and options byte-identical. Another form is a ValueError.
  std::string creation_time = {};
  /// Parameters and buffers holding a NaN or infinity are refused (NonFiniteError naming
  /// the parameter and element) unless this is set. Constants are not checked: they are the
  /// model's definition, not trained, and may hold infinities on purpose (masks).
  bool allow_nonfinite = false;
};

/// The model file's bytes: the part of `graph` the outputs need, with current parameter
/// and buffer values. Throws ValueError for missing/foreign values or training-only ops,
/// NonFiniteError for a non-finite parameter (see SaveOptions::allow_nonfinite).
KILN_API std::vector<std::uint8_t> serialize_model(const Graph& graph, const SaveOptions& options);
/// Writes serialize_model(...) to `path` atomically; throws IoError naming the file.
KILN_API void save_model(const std::string& path, const Graph& graph, const SaveOptions& options);

/// The content hash (lowercase hex SHA-256, see above) of a model file's bytes, after
/// checking the envelope and section table; "" for a version 1 file. Throws FormatError
/// naming `source`.
KILN_API std::string model_content_hash(std::span<const std::uint8_t> bytes,
                                        const std::string& source = "<memory>");
/// The same for a file; throws IoError / FormatError naming it.
KILN_API std::string model_content_hash(const std::string& path);

}  // namespace kiln
