// Internal: liveness-based placement of values in one arena.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::internal {

/// A value produced at step `first` and last read at step `last` (inclusive).
struct Lifetime {
  std::int64_t first;
  std::int64_t last;
  std::size_t bytes;
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  ///< per lifetime, 64-byte aligned
  std::size_t arena_bytes = 0;
};

/// Places each value so that no two values alive at the same step overlap
/// (greedy by size, best offset first).
MemoryPlan plan_memory(const std::vector<Lifetime>& values);

}  // namespace kiln::internal
