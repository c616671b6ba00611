// The drift statistics (kiln/monitor/stats.hpp) against SciPy's values on fixed samples
// (tests/data/drift_golden.txt, written once by tools/gen_drift_golden.py with SciPy 1.10):
// issue 12's acceptance 2. Statistics must agree to 1e-12 relative (KS D exactly as SciPy
// rounds it); p-values to 1e-9 relative (or 1e-15 absolute for tiny ones): SciPy computes
// the Smirnov tail in double-double arithmetic, Kiln in long double.
#include "kiln/monitor/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "tests/support/golden_file.hpp"

namespace {

using kiln_test::numbers_of;

struct Case {
  std::string kind, name;
  std::vector<double> expected;  // the values on the header line
  std::vector<double> a, b;
};

std::vector<std::uint64_t> counts(const std::vector<double>& v) {
  return std::vector<std::uint64_t>(v.begin(), v.end());
}

std::vector<Case> load() {
  std::vector<Case> cases;
  kiln_test::read_golden("drift_golden.txt", [&](const std::string& tag, std::istream& in) {
    if (tag == "ks" || tag == "ksbin" || tag == "chi2" || tag == "psi") {
      Case c;
      c.kind = tag;
      in >> c.name;
      c.expected = numbers_of(in);
      cases.push_back(std::move(c));
    } else if (tag == "chi2sf" || tag == "kstwo") {
      Case c;
      c.kind = tag;
      c.expected = numbers_of(in);
      cases.push_back(std::move(c));
    } else if (tag == "a" || tag == "ca") {
      cases.back().a = numbers_of(in);
    } else if (tag == "b" || tag == "cb") {
      cases.back().b = numbers_of(in);
    } else {
      return false;
    }
    return true;
  });
  return cases;
}

void expect_p(double expected, double actual, const std::string& what) {
  EXPECT_NEAR(actual, expected, std::max(1e-9 * std::abs(expected), 1e-15)) << what;
}

void expect_stat(double expected, double actual, const std::string& what) {
  EXPECT_NEAR(actual, expected, 1e-12 * std::max(1.0, std::abs(expected))) << what;
}

TEST(MonitorStats, MatchesScipyGolden) {
  const std::vector<Case> cases = load();
  int ks = 0, ksbin = 0, chi2 = 0, psi = 0, sf = 0;
  for (const Case& c : cases) {
    if (c.kind == "ks") {
      const auto r = kiln::monitor::ks_2samp(c.a, c.b);
      expect_stat(c.expected[0], r.statistic, "ks D " + c.name);
      expect_p(c.expected[1], r.p_value, "ks p " + c.name);
      ++ks;
    } else if (c.kind == "ksbin") {
      const auto r = kiln::monitor::ks_binned(counts(c.a), counts(c.b));
      expect_stat(c.expected[0], r.statistic, "ks_binned D " + c.name);
      expect_p(c.expected[1], r.p_value, "ks_binned p " + c.name);
      ++ksbin;
    } else if (c.kind == "chi2") {
      const auto r = kiln::monitor::chi2_2samp(counts(c.a), counts(c.b));
      expect_stat(c.expected[0], r.statistic, "chi2 " + c.name);
      expect_p(c.expected[1], r.p_value, "chi2 p " + c.name);
      EXPECT_EQ(r.dof, static_cast<std::int64_t>(c.expected[2])) << c.name;
      ++chi2;
    } else if (c.kind == "psi") {
      expect_stat(c.expected[0], kiln::monitor::psi(counts(c.a), counts(c.b)), "psi " + c.name);
      ++psi;
    } else if (c.kind == "chi2sf") {
      expect_p(
          c.expected[2], kiln::monitor::chi2_sf(c.expected[0], c.expected[1]),
          "chi2_sf(" + std::to_string(c.expected[0]) + ", " + std::to_string(c.expected[1]) + ")");
      ++sf;
    } else if (c.kind == "kstwo") {
      expect_p(
          c.expected[2], kiln::monitor::kolmogorov_sf(c.expected[0], c.expected[1]),
          "kstwo.sf(" + std::to_string(c.expected[0]) + ", " + std::to_string(c.expected[1]) + ")");
      ++sf;
    }
  }
  // The file really holds every kind (a truncated file must not pass).
  EXPECT_EQ(ks, 11);
  EXPECT_EQ(ksbin, 3);
  EXPECT_EQ(chi2, 5);
  EXPECT_EQ(psi, 3);
  EXPECT_EQ(sf, 23);
}

TEST(MonitorStats, KsIsSymmetricAndInvariantToOrder) {
  const std::vector<double> a = {3, 1, 2, 5, 4}, b = {2.5, 0.5, 7, 6};
  const auto ab = kiln::monitor::ks_2samp(a, b), ba = kiln::monitor::ks_2samp(b, a);
  EXPECT_DOUBLE_EQ(ab.statistic, ba.statistic);
  EXPECT_DOUBLE_EQ(ab.p_value, ba.p_value);
  // D by hand: F_a - F_b at 5: 1 - 0.5 = 0.5 is the largest gap.
  EXPECT_DOUBLE_EQ(ab.statistic, 0.5);
}

TEST(MonitorStats, BinnedKsEqualsRawKsWhenEveryValueHasItsBin) {
  // Values 0..3 with these counts; ks_binned on the counts = ks_2samp on the values.
  const std::vector<std::uint64_t> ca = {5, 9, 3, 0}, cb = {2, 4, 6, 3};
  std::vector<double> a, b;
  for (std::size_t i = 0; i < ca.size(); ++i) a.insert(a.end(), ca[i], static_cast<double>(i));
  for (std::size_t i = 0; i < cb.size(); ++i) b.insert(b.end(), cb[i], static_cast<double>(i));
  const auto binned = kiln::monitor::ks_binned(ca, cb), raw = kiln::monitor::ks_2samp(a, b);
  EXPECT_DOUBLE_EQ(binned.statistic, raw.statistic);
  EXPECT_DOUBLE_EQ(binned.p_value, raw.p_value);
}

TEST(MonitorStats, PsiByHand) {
  // e = (0.5, 0.5), a = (0.25, 0.75): (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5).
  const std::vector<std::uint64_t> e = {10, 10}, a = {1, 3};
  EXPECT_NEAR(kiln::monitor::psi(e, a), -0.25 * std::log(0.5) + 0.25 * std::log(1.5), 1e-15);
  // An empty bin is floored at epsilon: a = (1e-4 floor, 1).
  const std::vector<std::uint64_t> z = {0, 4};
  EXPECT_NEAR(kiln::monitor::psi(e, z, 1e-4),
              (1e-4 - 0.5) * std::log(1e-4 / 0.5) + 0.5 * std::log(2.0), 1e-12);
}

TEST(MonitorStats, BadArgumentsAreValueErrors) {
  const std::vector<std::uint64_t> two = {1, 2}, three = {1, 2, 3}, zeros = {0, 0};
  EXPECT_THROW(kiln::monitor::psi(two, three), kiln::ValueError);
  EXPECT_THROW(kiln::monitor::psi(two, zeros), kiln::ValueError);
  EXPECT_THROW(kiln::monitor::ks_binned(two, three), kiln::ValueError);
  EXPECT_THROW(kiln::monitor::chi2_2samp(zeros, two), kiln::ValueError);
  const std::vector<double> empty, nan = {1.0, std::nan("")}, ok = {1.0};
  EXPECT_THROW(kiln::monitor::ks_2samp(empty, ok), kiln::ValueError);
  EXPECT_THROW(kiln::monitor::ks_2samp(nan, ok), kiln::ValueError);
  // One category in use: nothing to test.
  const std::vector<std::uint64_t> one_a = {5, 0}, one_b = {7, 0};
  const auto r = kiln::monitor::chi2_2samp(one_a, one_b);
  EXPECT_EQ(r.dof, 0);
  EXPECT_EQ(r.p_value, 1.0);
}

}  // namespace
