// Rng: a seeded, reproducible random number generator (xoshiro256**).
#pragma once

#include <array>
#include <cstdint>

#include "kiln/export.hpp"

namespace kiln {

class KILN_API Rng {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Rng(std::uint64_t seed = 0x6b696c6eULL);

  std::uint64_t next_u64();
  /// Uniform in [0, 1).
  double uniform();
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller), scaled.
  double normal(double mean = 0.0, double stddev = 1.0);
  /// Uniform integer in [0, n); n must be > 0.
  std::uint64_t below(std::uint64_t n);

  /// The full generator state, to save and restore (e.g. in checkpoints).
  State state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  State s_{};
};

/// A counter-based hash of (seed, counter) to 64 random bits: the same inputs give
/// the same bits on every machine and thread count.
KILN_API std::uint64_t hash_bits(std::uint64_t seed, std::uint64_t counter);

}  // namespace kiln
