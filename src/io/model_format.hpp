// Internal: the model payload's record layouts (format v1 and v2), shared by the writer and
// the reader. docs/model_format.md describes the same layouts for people.
//
// v1 payload (a cereal portable binary archive):
//   u32 node count, nodes:    u16 op (its position in Kiln 0.1's Op enum, read through the
//                             frozen v1_op_names table of model_reader.cpp), name,
//                             u32 input count, i32 inputs, attrs (every field, fixed order),
//                             u8 dtype, dims (u32 rank, i64 each), u8 trainable
//   u32 inputs, signatures:   name, i32 node id, dims, u8 dtype
//   u32 outputs, signatures:  same
//   metadata:                 name, version, description, labels, preprocessing, metrics,
//                             extra, created, library_version
//   u32 tensor count, tensors: name, u8 dtype, dims, u64 byte length, data
//
// v2 payload (a cereal portable binary archive): a section table.
//   u32 section count, then per section: name, u8 flags, u64 byte length, the bytes.
//   Section names are unique. Flag bit 0 ("required"): a reader that does not know the
//   section must refuse the file; other bits are zero. Sections named "kiln.*" are
//   reserved for Kiln; every other name is a user section, always written without the
//   required flag, kept as bytes and never interpreted. A core section's bytes are a
//   cereal portable binary archive of their own:
//   kiln.graph       u32 node count, nodes: op name, node name, scope, u32 input count,
//                    i32 inputs, u32 attribute count, attributes (key, u8 tag, value; only
//                    values that differ from Attrs{}), u8 dtype, dims, u8 trainable
//   kiln.signatures  u32 inputs, signatures; u32 outputs, signatures (as v1)
//   kiln.metadata    name, version, description, labels, preprocessing, metrics, extra
//   kiln.weights     u32 tensor count, tensors (as v1)
//   kiln.provenance  created, library_version: run-dependent, outside the content hash
//   kiln.spec        optional, UTF-8 JSON: the model spec the model was built from
//   kiln.data        optional, UTF-8 JSON: the data schema (column encodings) of its CSV
//   kiln.profile     optional, a portable archive: the drift monitor's reference profile
// Strings are a u64 length and the bytes. dtype codes: 0 f32, 1 i32, 2 i64, 3 f64.
// Parameters and constants take their values from the tensor of the same name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/archive.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/op.hpp"

namespace kiln::internal {

/// Smallest encoded sizes, used to bound counts by the bytes left.
inline constexpr std::size_t min_node_bytes = 160;  // v1: attributes take 130 bytes
inline constexpr std::size_t min_signature_bytes = 8 + 4 + 4 + 1;
inline constexpr std::size_t min_tensor_bytes = min_tensor_record_bytes;
/// v2 node: op name (1+ chars), node name (1+), scope, input count, attribute count, dtype,
/// rank, trainable.
inline constexpr std::size_t min_node_bytes_v2 = 9 + 9 + 8 + 4 + 4 + 1 + 4 + 1;
/// v2 attribute: key (1+ chars), tag, and the smallest value (a bool).
inline constexpr std::size_t min_attr_bytes_v2 = 9 + 1 + 1;
/// v2 section record: name (1+ chars), flags, byte length.
inline constexpr std::size_t min_section_bytes = 9 + 1 + 8;

/// Core section names (v2).
inline constexpr const char* section_graph = "kiln.graph";
inline constexpr const char* section_signatures = "kiln.signatures";
inline constexpr const char* section_metadata = "kiln.metadata";
inline constexpr const char* section_weights = "kiln.weights";
inline constexpr const char* section_provenance = "kiln.provenance";
/// Kiln-owned optional sections a caller passes through SaveOptions::sections (opaque to
/// the model reader, which keeps them like user sections): the model spec (JSON, see
/// kiln/train/spec.hpp) and the data schema of the CSV reader (JSON, see kiln/data).
inline constexpr const char* section_spec = "kiln.spec";
inline constexpr const char* section_data = "kiln.data";
/// The reference profile of the drift monitor (kiln/monitor/profile.hpp, docs/mlops.md).
inline constexpr const char* section_profile = "kiln.profile";
/// Section flag bit: readers that do not know the section must refuse the file.
inline constexpr std::uint8_t section_required = 1;

/// True for names reserved for Kiln's own sections ("kiln." prefix).
bool is_reserved_section_name(const std::string& name);
/// True for the reserved names callers may write through SaveOptions::sections
/// (section_spec, section_data, section_profile): optional, kept by readers as bytes.
bool is_passthrough_section_name(const std::string& name);

/// One section of a v2 payload; `bytes` points into the payload.
struct SectionView {
  std::string name;
  std::uint8_t flags = 0;
  std::span<const std::uint8_t> bytes;
};

/// The section table of a v2 payload: names unique and non-empty, flags known, lengths
/// within the payload. Throws FormatError starting with `source`.
std::vector<SectionView> read_sections(std::span<const std::uint8_t> payload,
                                       const std::string& source);
/// A v2 payload from sections, in the given order.
std::vector<std::uint8_t> write_sections(std::span<const SectionView> sections);

/// The content hash (lowercase hex SHA-256) of a v2 payload's sections: every section but
/// kiln.provenance, sorted by name, each as (name, flags, length, bytes).
std::string content_hash_of(std::span<const SectionView> sections);

/// v1 attributes: every field in a fixed order.
void write_attrs(ArchiveWriter& w, const Attrs& a);
/// Reads and range-checks v1 attributes (bools, enums, finite floats, bounded integers).
Attrs read_attrs(ArchiveReader& r, const std::string& node);

/// v2 attributes: the count, then (key, tag, value) for each field that differs from
/// Attrs{}; keys in a fixed order.
void write_attrs_v2(ArchiveWriter& w, const Attrs& a);
/// Reads v2 attributes with the same range checks as v1; an unknown key, a key given
/// twice or a tag that is not the key's type is a FormatError naming the node.
Attrs read_attrs_v2(ArchiveReader& r, const std::string& node);

/// Training-only ops, refused in model files.
bool is_training_only(Op op);

/// The op with this name (op_name), if any.
bool op_from_name(const std::string& name, Op& out);

}  // namespace kiln::internal
