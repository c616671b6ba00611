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
  /// Restrict kernels to one backend ("reference", "eigen", "onednn"); empty: best. With a
  /// backend named, load compiles the model for batch size 1 and fails (ValueError naming
  /// the node) when that backend cannot run it, instead of failing at the first run.
  std::string backend = {};
  /// Refuse floating-point inputs holding NaN or infinity (a ValueError naming the input
  /// and the element); costs one pass over every input.
  bool check_finite_feeds = false;
  /// Compiled plans kept per executable (one per batch size) and the arena bytes they may
  /// hold together; see CompileOptions. A model keeps up to max(4, hardware threads)
  /// executables (one per concurrent run), so its plans hold at most that many times
  /// plan_cache_bytes, plus the arena of runs in flight.
  std::size_t plan_cache_size = 8;
  std::size_t plan_cache_bytes = std::size_t{512} << 20;
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

  /// Runs with named inputs (any batch size, 0 included; compiled plans are cached per
  /// set of input shapes, see LoadOptions), after the recorded preprocessing if
  /// LoadOptions::apply_preprocessing. Safe to call from many threads at once. A run
  /// shares ownership of the model: destroying the last Model handle while runs are in
  /// flight on other threads is safe, the memory goes when the last run returns.
  std::vector<Tensor> run(const Feeds& feeds) const;
  /// Runs into the caller's tensors (I/O binding, like ONNX Runtime's): `outputs[i]` is a
  /// contiguous tensor of outputs()[i]'s dtype and of this run's shape (e.g. a
  /// Tensor::borrow of an app's buffer, bound once and reused). Nothing is allocated for
  /// the outputs: see Executable::run_into for which are written in place and which copied.
  /// Errors name the output, before anything runs. Safe from many threads at once, each
  /// with its own output tensors.
  void run_into(const Feeds& feeds, std::span<Tensor> outputs) const;

 private:
  struct Impl;
  explicit Model(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace kiln::infer
