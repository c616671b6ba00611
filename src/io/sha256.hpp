// Internal: SHA-256 (FIPS 180-4), small and dependency-free: the file envelope, content
// hashes, and the hashes of data and model files that run records and the registry keep.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace kiln::internal {

using Sha256Digest = std::array<std::uint8_t, 32>;

/// Incremental SHA-256: update() any number of times, then finish() once.
class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::uint8_t> bytes);
  Sha256Digest finish();

 private:
  void compress(const std::uint8_t* block);

  std::array<std::uint32_t, 8> h_{};
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

/// SHA-256 of a whole buffer.
Sha256Digest sha256(std::span<const std::uint8_t> bytes);

/// A digest as 64 lowercase hex digits.
std::string to_hex(const Sha256Digest& digest);

/// The lowercase hex SHA-256 of a file, read in 1 MiB pieces (data files may be large);
/// IoError naming the file when it cannot be opened or read.
std::string sha256_file_hex(const std::string& path);

}  // namespace kiln::internal
