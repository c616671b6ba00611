// The drift statistics (kiln/monitor/stats.hpp): PSI, two-sample Kolmogorov-Smirnov and
// chi-squared, with the survival functions they need.
//
// ks_2samp follows SciPy's scipy.stats.ks_2samp(method="auto", alternative="two-sided"):
// the statistic is the same (for the exact method it is rounded to h / lcm(n1, n2) as SciPy
// does); the p-value is exact (the lattice-path "inside" recursion of Hodges / Viehmann that
// SciPy uses) when max(n1, n2) <= 10000, otherwise SciPy's asymptotic kstwo.sf(d, round(en)),
// en = n1 n2 / (n1 + n2), computed here with Simard and L'Ecuyer's choice of methods
// (Durbin's matrix as Marsaglia-Tsang-Wang compute it, Pelz-Good, and twice the one-sided
// Smirnov tail) like scipy.stats._ksstats, but without SciPy's double-double arithmetic:
// tests/monitor_stats_test.cpp holds the p-values to 1e-9 relative of SciPy's on
// tests/data/drift_golden.txt.
#include "kiln/monitor/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "monitor/stats_internal.hpp"

namespace kiln::monitor {
namespace {

constexpr double pi = 3.14159265358979323846;

[[noreturn]] void value_error(const std::string& what) { throw ValueError(what); }

double clip01(double p) { return std::clamp(p, 0.0, 1.0); }

// ---- The exact two-sample distribution (SciPy's _compute_outer_prob_inside_method) ------

// P(D_{m,n} >= h / lcm) as the proportion of lattice paths leaving the band; returns NaN
// when the computation fails (SciPy then falls back to the asymptotic distribution).
double outer_prob_inside(std::int64_t m, std::int64_t n, std::int64_t g, std::int64_t h) {
  if (m < n) std::swap(m, n);
  const std::int64_t mg = m / g, ng = n / g;
  std::int64_t minj = 0;
  std::int64_t maxj = std::min<std::int64_t>((h + mg - 1) / mg, n + 1);
  std::int64_t curlen = maxj - minj;
  const std::int64_t len = std::min<std::int64_t>(2 * maxj + 2, n + 1);
  std::vector<double> a(static_cast<std::size_t>(len), 1.0);
  for (std::int64_t j = minj; j < maxj; ++j) a[static_cast<std::size_t>(j)] = 0.0;
  auto floor_div = [](std::int64_t p, std::int64_t q) {
    std::int64_t d = p / q;
    if ((p % q != 0) && ((p < 0) != (q < 0))) --d;
    return d;
  };
  for (std::int64_t i = 1; i <= m; ++i) {
    const std::int64_t lastminj = minj, lastlen = curlen;
    minj = std::min(std::max<std::int64_t>(floor_div(ng * i - h, mg) + 1, 0), n);
    maxj = std::min<std::int64_t>(-floor_div(-(ng * i + h), mg), n + 1);
    if (maxj <= minj) return 1.0;
    double val = minj == 0 ? 0.0 : 1.0;
    for (std::int64_t jj = 0; jj < maxj - minj; ++jj) {
      const std::int64_t j = jj + minj;
      val = (a[static_cast<std::size_t>(jj + minj - lastminj)] * static_cast<double>(i) +
             val * static_cast<double>(j)) /
            static_cast<double>(i + j);
      a[static_cast<std::size_t>(jj)] = val;
    }
    curlen = maxj - minj;
    for (std::int64_t k = curlen; k < curlen + (lastlen - curlen) && k < len; ++k)
      a[static_cast<std::size_t>(k)] = 1.0;
  }
  return a[static_cast<std::size_t>(maxj - minj - 1)];
}

// P(D_{n,n} >= h / n) (SciPy's _compute_prob_outside_square).
double prob_outside_square(std::int64_t n, std::int64_t h) {
  double p = 0.0;
  for (std::int64_t k = n / h; k >= 0; --k) {
    double p1 = 1.0;
    for (std::int64_t j = 0; j < h; ++j)
      p1 = static_cast<double>(n - k * h - j) * p1 / static_cast<double>(n + k * h + j + 1);
    p = p1 * (1.0 - p);
  }
  return 2 * p;
}

// ---- kstwo: the one-sample two-sided KS distribution -------------------------------

// Pr(D_n <= d), Durbin's matrix algorithm as Marsaglia, Tsang and Wang compute it.
double kolmogn_dmtw_cdf(std::int64_t n, double d) {
  if (d >= 1.0) return 1.0;
  const double nd = static_cast<double>(n) * d;
  if (nd <= 0.5) return 0.0;
  const int k = static_cast<int>(std::ceil(nd));
  const double h = k - nd;
  const int m = 2 * k - 1;
  const auto mm = static_cast<std::size_t>(m);
  std::vector<double> hmat(mm * mm, 0.0), v(mm), w(mm);
  double fac = 1.0;
  for (int j = 1; j <= m; ++j) {
    w[static_cast<std::size_t>(j - 1)] = fac;
    fac /= j;
    v[static_cast<std::size_t>(j - 1)] = (1.0 - std::pow(h, j)) * fac;
  }
  const double tt = std::pow(std::max(2 * h - 1.0, 0.0), m) - 2 * std::pow(h, m);
  v[mm - 1] = (1.0 + tt) * fac;
  for (std::size_t i = 1; i < mm; ++i)
    for (std::size_t r = i - 1; r < mm; ++r) hmat[r * mm + i] = w[r - (i - 1)];
  for (std::size_t r = 0; r < mm; ++r) hmat[r * mm] = v[r];
  for (std::size_t c = 0; c < mm; ++c) hmat[(mm - 1) * mm + c] = v[mm - 1 - c];

  auto matmul = [mm](const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> z(mm * mm, 0.0);
    for (std::size_t i = 0; i < mm; ++i)
      for (std::size_t l = 0; l < mm; ++l) {
        const double xil = x[i * mm + l];
        if (xil == 0.0) continue;
        for (std::size_t j = 0; j < mm; ++j) z[i * mm + j] += xil * y[l * mm + j];
      }
    return z;
  };
  std::vector<double> pw(mm * mm, 0.0);
  for (std::size_t i = 0; i < mm; ++i) pw[i * mm + i] = 1.0;
  const double ep128 = std::ldexp(1.0, 128), em128 = std::ldexp(1.0, -128);
  std::int64_t nn = n;
  int expnt = 0, hexpnt = 0;
  const std::size_t kk = static_cast<std::size_t>(k - 1);
  while (nn > 0) {
    if (nn % 2 != 0) {
      pw = matmul(pw, hmat);
      expnt += hexpnt;
    }
    hmat = matmul(hmat, hmat);
    hexpnt *= 2;
    if (std::abs(hmat[kk * mm + kk]) > ep128) {
      for (double& x : hmat) x /= ep128;
      hexpnt += 128;
    }
    nn /= 2;
  }
  double p = pw[kk * mm + kk];
  for (std::int64_t i = 1; i <= n; ++i) {
    p = static_cast<double>(i) * p / static_cast<double>(n);
    if (std::abs(p) < em128) {
      p *= ep128;
      expnt -= 128;
    }
  }
  if (expnt != 0) p = std::ldexp(p, expnt);
  return clip01(p);
}

// Pr(D_n <= x), the Pelz-Good approximation.
double kolmogn_pelz_good_cdf(std::int64_t n, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double nd = static_cast<double>(n);
  const double z = std::sqrt(nd) * x;
  const double z2 = z * z, z3 = z2 * z, z4 = z2 * z2, z6 = z4 * z2;
  const double qlog = -pi * pi / 8 / z2;
  if (qlog < -708) return 0.0;
  double q = std::exp(qlog);
  const double k1a = -z2, k1b = pi * pi / 4;
  const double k2a = 6 * z6 + 2 * z4, k2b = (2 * z4 - 5 * z2) * pi * pi / 4,
               k2c = std::pow(pi, 4) * (1 - 2 * z2) / 16;
  const double k3d = std::pow(pi, 6) * (5 - 30 * z2) / 64,
               k3c = std::pow(pi, 4) * (-60 * z2 + 212 * z4) / 16,
               k3b = pi * pi * (135 * z4 - 96 * z6) / 4, k3a = -30 * z6 - 90 * std::pow(z, 8);
  double kk[4] = {0, 0, 0, 0};
  const int maxk = static_cast<int>(std::ceil(16 * z / pi));
  for (int k = maxk; k > 0; --k) {
    const double m = 2.0 * k - 1, m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;
    const double qp = std::pow(q, 8 * k);
    const double coeffs[4] = {1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4,
                              k3a + k3b * m2 + k3c * m4 + k3d * m6};
    for (int i = 0; i < 4; ++i) kk[i] = kk[i] * qp + coeffs[i];
  }
  const double sqrt2pi = std::sqrt(2 * pi);
  const double div[4] = {z, 6 * z4, 72 * std::pow(z, 7), 6480 * std::pow(z, 10)};
  for (int i = 0; i < 4; ++i) kk[i] = kk[i] * q * sqrt2pi / div[i];
  q = std::exp(-pi * pi / 2 / z2);
  double k2extra = 0, k3extra = 0;
  const double sqrt3z = std::sqrt(3.0) * z;
  for (int k = maxk; k > 0; --k) {
    const double k2 = static_cast<double>(k) * k;
    const double qp = std::pow(q, k2);
    k2extra += k2 * qp;
    const double kpi = pi * k;
    k3extra += (sqrt3z + kpi) * (sqrt3z - kpi) * k2 * qp;
  }
  kk[2] += k2extra * pi * pi * sqrt2pi / (-36 * z3);
  kk[3] += k3extra * pi * pi * sqrt2pi / (216 * z6);
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += kk[i] / std::pow(nd, i / 2.0);
  return sum;
}

// The one-sided Smirnov tail P(D_n^+ >= x) by the Birnbaum-Tingey sum, in log space.
double smirnov_sf(std::int64_t n, double x) {
  if (x <= 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  const long double nl = static_cast<long double>(n);
  const auto nn = static_cast<std::int64_t>(std::floor(static_cast<double>(n) * (1.0 - x)));
  long double log_binom = 0;  // log C(n, v), updated term by term
  long double sum = 0;
  bool past_peak = false;
  long double previous = 0;
  for (std::int64_t v = 0; v <= nn; ++v) {
    const long double vl = static_cast<long double>(v);
    if (v > 0) log_binom += std::log((nl - vl + 1) / vl);
    const long double evn = static_cast<long double>(x) + vl / nl;
    const long double omevn = 1.0L - evn;
    if (omevn <= 0) break;
    const long double t = log_binom + (vl - 1) * std::log(evn) + (nl - vl) * std::log(omevn);
    const long double term = std::exp(t);
    sum += term;
    // The terms rise to one peak and then fall; stop once they no longer matter.
    if (term < previous) past_peak = true;
    if (past_peak && term < sum * 1e-20L) break;
    previous = term;
  }
  return clip01(static_cast<double>(sum * static_cast<long double>(x)));
}

double log_nfactorial_div_n_pow_n(double n) {
  static constexpr double stirling[] = {-2.955065359477124183e-2,  6.4102564102564102564e-3,
                                        -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                                        -5.952380952380952381e-4,  7.9365079365079365079e-4,
                                        -2.7777777777777777778e-3, 8.3333333333333333333e-2};
  const double rn = 1.0 / n;
  double poly = 0;
  for (double c : stirling) poly = poly * (rn / n) + c;
  return std::log(n) / 2 - n + std::log(2 * pi) / 2 + rn * poly;
}

// ---- The chi-squared distribution ----------------------------------------------------

// Regularised lower (P) and upper (Q) incomplete gamma functions.
double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double lg = std::lgamma(a);
  if (x < a + 1) {
    // Series for P.
    double ap = a, sum = 1.0 / a, del = sum;
    for (int i = 0; i < 100000; ++i) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (std::abs(del) < std::abs(sum) * 1e-17) break;
    }
    return clip01(1.0 - sum * std::exp(-x + a * std::log(x) - lg));
  }
  // Continued fraction for Q (modified Lentz).
  constexpr double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1) < 1e-17) break;
  }
  return clip01(std::exp(-x + a * std::log(x) - lg) * h);
}

std::uint64_t total(std::span<const std::uint64_t> counts) {
  return std::accumulate(counts.begin(), counts.end(), std::uint64_t{0});
}

}  // namespace

double chi2_sf(double x, double dof) {
  if (std::isnan(x) || !(dof > 0)) return std::nan("");
  if (x <= 0) return 1.0;
  return gamma_q(dof / 2, x / 2);
}

double kolmogorov_sf(double d, double n_real) {
  if (std::isnan(d) || !(n_real >= 1) || n_real != std::floor(n_real)) return std::nan("");
  const auto n = static_cast<std::int64_t>(n_real);
  const double x = d;
  if (x >= 1.0) return 0.0;
  if (x <= 0.0) return 1.0;
  const double t = n_real * x;
  if (t <= 1.0) {
    if (t <= 0.5) return 1.0;
    double cdf;
    if (n <= 140) {
      cdf = 1.0;
      for (std::int64_t i = 1; i <= n; ++i)
        cdf *= static_cast<double>(i) * (1.0 / n_real) * (2 * t - 1);
    } else {
      cdf = std::exp(log_nfactorial_div_n_pow_n(n_real) + n_real * std::log(2 * t - 1));
    }
    return clip01(1.0 - cdf);
  }
  if (t >= n_real - 1) return clip01(2 * std::pow(1.0 - x, n_real));
  if (x >= 0.5) return clip01(2 * smirnov_sf(n, x));
  const double nx2 = t * x;
  if (n <= 140) {
    // SciPy uses Pomeranz's recursion for 0.754693 < n x^2 <= 4; Durbin's matrix is exact
    // there too.
    if (nx2 <= 4) return clip01(1.0 - kolmogn_dmtw_cdf(n, x));
    return clip01(2 * smirnov_sf(n, x));
  }
  if (nx2 >= 370.0) return 0.0;
  if (nx2 >= 2.2) return clip01(2 * smirnov_sf(n, x));
  double cdf;
  if (nx2 >= 18.0)
    cdf = 1.0;
  else if (n <= 100000 && n_real * std::pow(x, 1.5) <= 1.4)
    cdf = kolmogn_dmtw_cdf(n, x);
  else
    cdf = kolmogn_pelz_good_cdf(n, x);
  return clip01(1.0 - cdf);
}

double psi(std::span<const std::uint64_t> expected, std::span<const std::uint64_t> actual,
           double epsilon) {
  if (expected.size() != actual.size())
    value_error("psi: " + std::to_string(expected.size()) + " expected bins but " +
                std::to_string(actual.size()) + " actual bins");
  const std::uint64_t ne = total(expected), na = total(actual);
  if (ne == 0 || na == 0) value_error("psi: the expected or the actual counts are all zero");
  double sum = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double e = std::max(static_cast<double>(expected[i]) / static_cast<double>(ne), epsilon);
    const double a = std::max(static_cast<double>(actual[i]) / static_cast<double>(na), epsilon);
    sum += (a - e) * std::log(a / e);
  }
  return sum;
}

namespace internal {

TestResult ks_p_value(double d, std::uint64_t n1u, std::uint64_t n2u, std::uint64_t max_cost) {
  TestResult r;
  const auto n1 = static_cast<std::int64_t>(n1u), n2 = static_cast<std::int64_t>(n2u);
  r.statistic = d;
  const std::int64_t g = std::gcd(n1, n2);
  bool exact = std::max(n1, n2) <= 10000;
  if (exact) {
    const std::int64_t lcm = (n1 / g) * n2;
    const auto h = static_cast<std::int64_t>(std::nearbyint(d * static_cast<double>(lcm)));
    const double de = static_cast<double>(h) / static_cast<double>(lcm);
    if (h == 0) {
      r.statistic = de;
      r.p_value = 1.0;
      return r;
    }
    // Cost of the recursion: m columns of a window about 2h/(m/g) wide.
    const std::int64_t big = std::max(n1, n2), small = std::min(n1, n2);
    const double cost = static_cast<double>(big) *
                        std::min(static_cast<double>(small) + 1,
                                 2.0 * static_cast<double>(h) / static_cast<double>(big / g) + 2);
    if (max_cost == 0 || cost <= static_cast<double>(max_cost)) {
      const double p = n1 == n2 ? prob_outside_square(n1, h) : outer_prob_inside(n1, n2, g, h);
      if (p >= 0 && p <= 1) {
        r.statistic = de;
        r.p_value = p;
        return r;
      }
    }
    exact = false;
  }
  const double m = static_cast<double>(std::max(n1, n2)), n = static_cast<double>(std::min(n1, n2));
  const double en = m * n / (m + n);
  r.p_value = clip01(kolmogorov_sf(d, std::nearbyint(en)));
  return r;
}

}  // namespace internal

TestResult ks_2samp(std::span<const double> a, std::span<const double> b) {
  if (a.empty() || b.empty()) value_error("ks_2samp: a sample is empty");
  std::vector<double> x(a.begin(), a.end()), y(b.begin(), b.end());
  for (double v : x)
    if (std::isnan(v)) value_error("ks_2samp: the first sample holds a NaN");
  for (double v : y)
    if (std::isnan(v)) value_error("ks_2samp: the second sample holds a NaN");
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  const double n1 = static_cast<double>(x.size()), n2 = static_cast<double>(y.size());
  // SciPy: cdf differences at every value of both samples (searchsorted side="right").
  double max_s = -2, min_s = 2;
  auto at = [&](double v) {
    const auto c1 = static_cast<double>(std::upper_bound(x.begin(), x.end(), v) - x.begin());
    const auto c2 = static_cast<double>(std::upper_bound(y.begin(), y.end(), v) - y.begin());
    const double diff = c1 / n1 - c2 / n2;
    max_s = std::max(max_s, diff);
    min_s = std::min(min_s, diff);
  };
  for (double v : x) at(v);
  for (double v : y) at(v);
  const double minus = std::clamp(-min_s, 0.0, 1.0);
  const double d = minus > max_s ? minus : max_s;
  return internal::ks_p_value(d, x.size(), y.size(), 0);
}

TestResult ks_binned(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) {
  if (a.size() != b.size())
    value_error("ks_binned: " + std::to_string(a.size()) + " bins against " +
                std::to_string(b.size()));
  const std::uint64_t na = total(a), nb = total(b);
  if (na == 0 || nb == 0) value_error("ks_binned: a histogram is empty");
  double d = 0;
  std::uint64_t ca = 0, cb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ca += a[i];
    cb += b[i];
    d = std::max(d, std::abs(static_cast<double>(ca) / static_cast<double>(na) -
                             static_cast<double>(cb) / static_cast<double>(nb)));
  }
  return internal::ks_p_value(d, na, nb, internal::ks_exact_max_cost);
}

TestResult chi2_2samp(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b) {
  if (a.size() != b.size())
    value_error("chi2_2samp: " + std::to_string(a.size()) + " categories against " +
                std::to_string(b.size()));
  const double na = static_cast<double>(total(a)), nb = static_cast<double>(total(b));
  if (na == 0 || nb == 0) value_error("chi2_2samp: a side has no counts");
  const double n = na + nb;
  TestResult r;
  std::int64_t k = 0;
  double stat = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double col = static_cast<double>(a[i]) + static_cast<double>(b[i]);
    if (col == 0) continue;
    ++k;
    const double ea = na * col / n, eb = nb * col / n;
    const double da = static_cast<double>(a[i]) - ea, db = static_cast<double>(b[i]) - eb;
    stat += da * da / ea + db * db / eb;
  }
  r.dof = k - 1;
  if (r.dof <= 0) {
    r.dof = 0;
    r.statistic = 0;
    r.p_value = 1;
    return r;
  }
  r.statistic = stat;
  r.p_value = chi2_sf(stat, static_cast<double>(r.dof));
  return r;
}

}  // namespace kiln::monitor
