// The drift statistics, as plain functions (part of kiln_infer): population stability index,
// two-sample Kolmogorov-Smirnov and chi-squared, on raw samples and on binned counts. Their
// values match SciPy's (scipy.stats.ks_2samp, scipy.stats.chisquare / chi2_contingency) on
// the fixed samples in tests/data/drift_golden.txt (tools/gen_drift_golden.py).
#pragma once

#include <cstdint>
#include <span>

#include "kiln/export.hpp"

namespace kiln::monitor {

struct TestResult {
  double statistic = 0;  ///< PSI, KS D or chi-squared
  double p_value = 1;    ///< 1 where a statistic has none (PSI)
  std::int64_t dof = 0;  ///< chi-squared degrees of freedom (0 otherwise)
};

/// PSI = sum_i (a_i - e_i) ln(a_i / e_i) over bins, a_i and e_i the actual (live) and expected
/// (reference) proportions, each bin's proportion floored at `epsilon` so an empty bin stays
/// finite. Throws ValueError for different bin counts or an empty side.
KILN_API double psi(std::span<const std::uint64_t> expected, std::span<const std::uint64_t> actual,
                    double epsilon = 1e-4);

/// Two-sample two-sided KS on raw samples (NaNs refused): D = sup |F_a - F_b| and SciPy's
/// p-value for method="auto" (exact for small samples, asymptotic otherwise).
KILN_API TestResult ks_2samp(std::span<const double> a, std::span<const double> b);
/// The same on two histograms over the same bins: D evaluated at the bin edges (exact when
/// every distinct value has its own bin, a lower bound otherwise), n = the counts' sums.
KILN_API TestResult ks_binned(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b);

/// Chi-squared homogeneity test of two count vectors over the same categories (a 2 x k
/// contingency table, SciPy's chi2_contingency without correction); categories empty on both
/// sides are left out.
KILN_API TestResult chi2_2samp(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b);

/// Survival functions used above (exposed for tests): P(X >= x) for chi-squared with `dof`
/// degrees of freedom, and the two-sided one-sample KS distribution's P(D_n >= d).
KILN_API double chi2_sf(double x, double dof);
KILN_API double kolmogorov_sf(double d, double n);

}  // namespace kiln::monitor
