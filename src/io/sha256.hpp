// Internal: SHA-256 (FIPS 180-4), small and dependency-free, for the file envelope.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

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

}  // namespace kiln::internal
