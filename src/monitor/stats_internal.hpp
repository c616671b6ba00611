// Internal: the KS p-value shared by ks_2samp, ks_binned and the monitor.
#pragma once

#include <cstdint>

#include "kiln/monitor/stats.hpp"

namespace kiln::monitor::internal {

/// Largest cost (columns x window of the lattice recursion) ks_binned spends on an exact
/// p-value; above it, the asymptotic distribution (as SciPy uses for large samples).
inline constexpr std::uint64_t ks_exact_max_cost = 200'000;

/// D and its two-sided p-value for samples of n1 and n2 values, as SciPy's ks_2samp
/// method="auto" (exact when max(n1, n2) <= 10000 and, if max_cost > 0, the exact
/// recursion costs at most max_cost; asymptotic otherwise). The exact method rounds D to
/// h / lcm(n1, n2) as SciPy does.
TestResult ks_p_value(double d, std::uint64_t n1, std::uint64_t n2, std::uint64_t max_cost);

}  // namespace kiln::monitor::internal
