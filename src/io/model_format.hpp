// Internal: the v1 model payload's record layouts, shared by the writer and the reader.
//
// Payload (a cereal portable binary archive):
//   u32 node count, nodes:    u16 op, name, u32 input count, i32 inputs, attrs, u8 dtype,
//                             dims (u32 rank, i64 each), u8 trainable
//   u32 inputs, signatures:   name, i32 node id, dims, u8 dtype
//   u32 outputs, signatures:  same
//   metadata:                 name, version, description, labels, preprocessing, metrics,
//                             extra, created, library_version
//   u32 tensor count, tensors: name, u8 dtype, dims, u64 byte length, data
// Strings are a u64 length and the bytes. Parameters and constants take their values from
// the tensor of the same name.
#pragma once

#include <cstddef>
#include <string>

#include "io/archive.hpp"
#include "kiln/graph/op.hpp"

namespace kiln::internal {

/// Smallest encoded sizes, used to bound counts by the bytes left.
inline constexpr std::size_t min_node_bytes = 160;
inline constexpr std::size_t min_signature_bytes = 8 + 4 + 4 + 1;
inline constexpr std::size_t min_tensor_bytes = min_tensor_record_bytes;

void write_attrs(ArchiveWriter& w, const Attrs& a);
/// Reads and range-checks attributes (bools, enums, finite floats, bounded integers).
Attrs read_attrs(ArchiveReader& r, const std::string& node);

/// Training-only ops, refused in model files.
bool is_training_only(Op op);

}  // namespace kiln::internal
