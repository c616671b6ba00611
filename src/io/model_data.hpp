// Internal: a model file decoded into a graph plus its signatures and metadata; the
// bridge between the format (src/io) and the runtime (src/infer, bindings/c).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "internal/internal_api.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/io/model_file.hpp"

namespace kiln::internal {

struct ModelData {
  std::unique_ptr<Graph> graph;          ///< inputs, parameters/buffers/constants, ops
  std::vector<std::int32_t> input_ids;   ///< graph node ids, in signature order
  std::vector<std::int32_t> output_ids;  ///< graph node ids, in signature order
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  ModelMetadata metadata;
  std::uint32_t format_version = 0;
  /// User sections (v2), in file order.
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> sections;
  /// The content hash (v2), "" for v1.
  std::string content_hash;
};

/// Decodes and validates a model file's bytes (envelope, hash, every size, index, shape and
/// attribute before allocating). Throws FormatError whose message starts with `source`.
KILN_INTERNAL_API ModelData decode_model(std::span<const std::uint8_t> bytes,
                                         const std::string& source);

/// Reads a whole file with a size check; throws IoError naming it.
KILN_INTERNAL_API std::vector<std::uint8_t> read_file(const std::string& path);

/// Writes bytes to path atomically (temp file "<path>.tmp.<pid>.<n>" in the same folder,
/// fsync, rename, fsync of the folder); throws IoError naming the file. First removes the temp
/// files of `path` whose process no longer exists (saves killed mid-way).
KILN_INTERNAL_API void write_file_atomically(const std::string& path,
                                             std::span<const std::uint8_t> bytes);

/// Removes the temp files "<target>.tmp.<pid>.<n>" in `folder` whose process no longer
/// exists, for the targets `of_target` accepts (a name without its folder). Best effort:
/// errors are ignored. write_file_atomically does it for its own target; writers of
/// changing names (the trainer's step-stamped pairs) call it for theirs.
KILN_INTERNAL_API void remove_stale_temp_files(
    const std::string& folder, const std::function<bool(std::string_view target)>& of_target);

}  // namespace kiln::internal
