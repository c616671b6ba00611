// Internal: FNV-1a, 64 bits: a short, stable, non-cryptographic hash (parameter seeds by
// name, a run folder's listing, the parameter checksum of data-parallel training).
// Cryptographic hashes (content hashes, file envelopes) use io/sha256.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kiln::internal {

class Fnv1a {
 public:
  Fnv1a& add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
      hash_ ^= p[i];
      hash_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  Fnv1a& add(std::string_view s) { return add(s.data(), s.size()); }
  /// The 8 bytes of `v`, least significant first (the same on every machine).
  Fnv1a& add_u64(std::uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    return add(b, 8);
  }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

/// FNV-1a of a string.
inline std::uint64_t fnv1a(std::string_view s) { return Fnv1a().add(s).value(); }

}  // namespace kiln::internal
