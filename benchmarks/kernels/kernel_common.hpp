// Helpers shared by the kernel benchmarks: deterministic inputs, FLOP-rate and peak-memory
// counters. Each benchmark builds its graph and Executable (or optimizer) with the public
// API, as a user would, so the figures include Kiln's per-run overhead.
#pragma once

#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln_kbench {

/// A tensor of uniform values in [-1, 1), the same for every run of a benchmark.
inline kiln::Tensor random_tensor(const kiln::Shape& shape, std::uint64_t seed) {
  kiln::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (float& x : v) x = static_cast<float>(rng.uniform() * 2.0 - 1.0);
  return kiln::Tensor::from(v, shape);
}

/// Resets the process's peak-RSS mark (Linux: /proc/self/clear_refs "5") so that the
/// peak_rss_MiB counter of each benchmark reflects its own working set as far as the kernel
/// allows; where the file cannot be written the counter is the process peak so far.
inline void reset_peak_rss() {
  if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

/// Peak resident memory (getrusage ru_maxrss) in MiB.
inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// Sets the "GFLOP" rate counter (printed as GFLOP/s: counted FLOPs over real time) and peak
/// memory.
inline void report(benchmark::State& state, double flops_per_iteration) {
  if (flops_per_iteration > 0.0)
    state.counters["GFLOP"] =
        benchmark::Counter(flops_per_iteration * static_cast<double>(state.iterations()) * 1e-9,
                           benchmark::Counter::kIsRate);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

}  // namespace kiln_kbench
