// Internal: the byte-level layer of Kiln files (models and checkpoints).
//
// An envelope Kiln checks itself: 4-byte magic, u32 format version, u64 payload length and
// the SHA-256 of the payload (all little-endian), then the payload. The payload is a cereal
// portable binary archive; ArchiveWriter / ArchiveReader are the only code that touches
// cereal. The reader never trusts a size prefix: every string, count and tensor is checked
// against the bytes actually left before anything is allocated, and every failure is a
// FormatError whose message starts with the source name.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"

namespace kiln::internal {

inline constexpr std::size_t envelope_size = 48;
using Magic = std::array<char, 4>;
inline constexpr Magic model_magic = {'K', 'I', 'L', 'N'};
inline constexpr Magic checkpoint_magic = {'K', 'C', 'K', 'P'};

/// Envelope + payload.
std::vector<std::uint8_t> wrap_envelope(const Magic& magic, std::uint32_t version,
                                        std::span<const std::uint8_t> payload);

struct Envelope {
  std::uint32_t version = 0;
  std::span<const std::uint8_t> payload;
};
/// Checks magic, version (1..max_version), length and hash; `kind` names the file type in
/// messages ("model", "checkpoint").
Envelope open_envelope(std::span<const std::uint8_t> bytes, const Magic& magic,
                       std::uint32_t max_version, const std::string& source, const char* kind);

/// The dtype codes of Kiln files (part of the format's contract, whatever DType's layout):
/// 0 f32, 1 i32, 2 i64, 3 f64.
std::uint8_t dtype_code(DType t);

class ArchiveWriter {
 public:
  ArchiveWriter();
  ~ArchiveWriter();
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  void u8(std::uint8_t v);
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void i32(std::int32_t v);
  void i64(std::int64_t v);
  void f32(float v);
  void f64(double v);
  void boolean(bool v) { u8(v ? 1 : 0); }
  /// u64 length, then the bytes.
  void string(const std::string& s);
  /// u32 rank, then i64 dims.
  void dims(const std::vector<std::int64_t>& dims);
  /// The dtype's code (dtype_code).
  void dtype(DType t) { u8(dtype_code(t)); }
  /// The bytes as they are (no length prefix).
  void raw(std::span<const std::uint8_t> bytes);
  /// name, u8 dtype, dims, u64 byte length, then the elements (little-endian).
  void tensor(const std::string& name, const Tensor& t);
  /// The payload written so far.
  std::vector<std::uint8_t> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Bounds on what a reader accepts.
inline constexpr std::uint32_t max_rank = 16;
inline constexpr std::int64_t max_dim = 0x7fffffff;
/// Smallest encoded tensor record: name length, dtype, rank, byte length.
inline constexpr std::size_t min_tensor_record_bytes = 8 + 1 + 4 + 8;

class ArchiveReader {
 public:
  ArchiveReader(std::span<const std::uint8_t> payload, std::string source);
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  std::uint8_t u8(const char* what);
  std::uint16_t u16(const char* what);
  std::uint32_t u32(const char* what);
  std::uint64_t u64(const char* what);
  std::int32_t i32(const char* what);
  std::int64_t i64(const char* what);
  float f32(const char* what);
  double f64(const char* what);
  /// 0 or 1, anything else is an error.
  bool boolean(const char* what);
  std::string string(const char* what);
  /// A non-empty name.
  std::string name(const char* what);
  /// A u32 element count; each element takes at least min_bytes_each in the file.
  std::size_t count(const char* what, std::size_t min_bytes_each);
  /// Rank <= max_rank, dims in [-1, max_dim] (-1 only if allow_batch, first dim only
  /// unless batch_anywhere), and a product (times elem_size) that fits in int64.
  /// batch_anywhere: computed values may carry the batch elsewhere (an LSTM's h_n is
  /// [layers, B, H]); inputs, parameters and signatures may not.
  std::vector<std::int64_t> dims(const std::string& what, bool allow_batch,
                                 std::size_t elem_size = 1, bool batch_anywhere = false);
  /// A dtype code (dtype_code); an unknown code is an error.
  DType dtype(const std::string& what);
  /// The next `n` bytes, without a copy (they stay in the payload); checked against the
  /// bytes left.
  std::span<const std::uint8_t> raw(std::uint64_t n, const char* what);
  /// A tensor record written by ArchiveWriter::tensor; the byte length is checked against
  /// the shape and the bytes left before the storage is allocated.
  std::pair<std::string, Tensor> tensor(const char* what);

  std::size_t remaining() const;
  /// Throws unless the whole payload was read.
  void expect_end();
  [[noreturn]] void fail(const std::string& what) const;
  const std::string& source() const { return source_; }

 private:
  void need(std::size_t bytes, const char* what);
  template <class T>
  T primitive(const char* what);  // defined and used in archive.cpp only

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_;
};

/// "<source>: <what>" as a FormatError.
[[noreturn]] void format_error(const std::string& source, const std::string& what);

}  // namespace kiln::internal
