#include "runtime/memory_plan.hpp"

#include <algorithm>
#include <numeric>

namespace kiln::internal {

MemoryPlan plan_memory(const std::vector<Lifetime>& values) {
  constexpr std::size_t kAlign = 64;
  MemoryPlan plan;
  plan.offsets.assign(values.size(), 0);
  // Largest first: big blocks get placed before small ones fragment the arena.
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return values[a].bytes > values[b].bytes; });
  struct Placed {
    std::size_t offset, size;
    std::int64_t first, last;
  };
  std::vector<Placed> placed;
  for (auto v : order) {
    const auto& lt = values[v];
    const std::size_t size = (lt.bytes + kAlign - 1) / kAlign * kAlign;
    // Blocks in use during this value's lifetime, by offset.
    std::vector<Placed> busy;
    for (const auto& p : placed)
      if (p.first <= lt.last && lt.first <= p.last) busy.push_back(p);
    std::sort(busy.begin(), busy.end(),
              [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    // Smallest gap that fits, else after the last busy block.
    std::size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (const auto& b : busy) {
      if (b.offset >= cursor + size && b.offset - cursor < best_gap) {
        best = cursor;
        best_gap = b.offset - cursor;
      }
      cursor = std::max(cursor, b.offset + b.size);
    }
    if (best == SIZE_MAX) best = cursor;
    plan.offsets[v] = best;
    placed.push_back({best, size, lt.first, lt.last});
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
  }
  return plan;
}

}  // namespace kiln::internal
