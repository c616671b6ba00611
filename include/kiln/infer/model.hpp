// kiln::infer::Model — the slim runtime: load a .kiln file (from a path or memory),
// inspect its signatures and metadata, and run it with named inputs at any batch size.
// This and the headers it includes are all an inference-only app needs (Kiln::kiln_infer).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln::infer {

struct LoadOptions {
  /// Restrict kernels to one backend ("reference", "eigen", "onednn"); empty: best.
  std::string backend = {};
  /// Refuse floating-point inputs holding NaN or infinity (a ValueError naming the input
  /// and the element); costs one pass over every input.
  bool check_finite_feeds = false;
  /// Apply the preprocessing the file records (ModelMetadata::preprocessing) in run():
  /// x' = (x - mean) / stddev along the last axis of each named input, before the graph
  /// sees it. Off by default: the caller feeds preprocessed inputs. When on, load checks
  /// that each entry names a floating-point input whose last dimension matches.
  bool apply_preprocessing = false;
};

class KILN_API Model {
 public:
  /// Loads and validates a model file; throws FormatError / IoError naming the file.
  static Model load(const std::string& path, LoadOptions options = {});
  /// Loads from bytes in memory; `source` names them in error messages.
  static Model load(std::span<const std::uint8_t> bytes, const std::string& source = "<memory>",
                    LoadOptions options = {});

  const std::vector<TensorSpec>& inputs() const;
  const std::vector<TensorSpec>& outputs() const;
  const ModelMetadata& metadata() const;
  /// The format version the file was written in.
  std::uint32_t format_version() const;
  /// The content hash (hex SHA-256 of everything but the creation time and library
  /// version; see io/model_file.hpp); "" for a version 1 file.
  const std::string& content_hash() const;
  /// The names of the file's user sections (SaveOptions::sections), in file order.
  std::vector<std::string> section_names() const;
  bool has_section(const std::string& name) const;
  /// A user section's bytes (live as long as the model); throws NameError if absent.
  std::span<const std::uint8_t> section(const std::string& name) const;

  /// Runs with named inputs (any batch size; one compiled plan per set of input shapes is
  /// cached), after the recorded preprocessing if LoadOptions::apply_preprocessing. Safe
  /// to call from many threads at once.
  std::vector<Tensor> run(const Feeds& feeds) const;

 private:
  struct Impl;
  explicit Model(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace kiln::infer
