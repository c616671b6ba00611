#!/usr/bin/python3
"""Writes tests/data/drift_golden.txt: SciPy's values of the drift statistics on fixed
samples, the independent reference tests/monitor_stats_test.cpp compares Kiln's
kiln::monitor functions with (acceptance 2 of issue 12).

Run once with the system Python (numpy and scipy installed there):
    /usr/bin/python3 tools/gen_drift_golden.py > tests/data/drift_golden.txt

Line kinds (numbers with repr(), i.e. 17 significant digits):
    ks NAME D P            two-sample KS, scipy.stats.ks_2samp(a, b) (method="auto");
      a V...               the first sample, then
      b V...               the second sample
    ksbin NAME D P         KS of two histograms over the same bins: ks_2samp of the
      ca C...              samples the counts stand for (bin index i repeated ca[i]
      cb C...              times), which is what kiln::monitor::ks_binned computes
    chi2 NAME STAT P DOF   scipy.stats.chi2_contingency([ca, cb], correction=False) over
      ca C...              the categories not empty on both sides
      cb C...
    psi NAME VALUE         sum (a - e) ln(a / e) over bins, each proportion floored at
      ca C...              1e-4 (hand formula with numpy; ca = expected, cb = actual)
      cb C...
    chi2sf X DOF P         scipy.stats.chi2.sf(x, dof)
    kstwo D N P            scipy.stats.kstwo.sf(d, n), the one-sample two-sided KS tail
"""
import numpy as np
from scipy import stats


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def ints(values):
    return " ".join(str(int(v)) for v in values)


def ks(name, a, b):
    r = stats.ks_2samp(a, b)
    print(f"ks {name} {float(r.statistic)!r} {float(r.pvalue)!r}")
    print("a " + fmt(a))
    print("b " + fmt(b))


def ksbin(name, ca, cb):
    a = np.repeat(np.arange(len(ca)), ca).astype(float)
    b = np.repeat(np.arange(len(cb)), cb).astype(float)
    r = stats.ks_2samp(a, b)
    print(f"ksbin {name} {float(r.statistic)!r} {float(r.pvalue)!r}")
    print("ca " + ints(ca))
    print("cb " + ints(cb))


def chi2(name, ca, cb):
    table = np.array([ca, cb])
    keep = table.sum(axis=0) > 0
    stat, p, dof, _ = stats.chi2_contingency(table[:, keep], correction=False)
    print(f"chi2 {name} {float(stat)!r} {float(p)!r} {int(dof)}")
    print("ca " + ints(ca))
    print("cb " + ints(cb))


def psi(name, ca, cb, eps=1e-4):
    e = np.maximum(np.asarray(ca, float) / np.sum(ca), eps)
    a = np.maximum(np.asarray(cb, float) / np.sum(cb), eps)
    value = np.sum((a - e) * np.log(a / e))
    print(f"psi {name} {float(value)!r}")
    print("ca " + ints(ca))
    print("cb " + ints(cb))


def main():
    rng = np.random.default_rng(20261130)
    print("# SciPy " + __import__("scipy").__version__ + ", numpy " + np.__version__ +
          ": tools/gen_drift_golden.py")
    # Two-sample KS on raw samples: tiny, with ties, equal sizes, different distributions,
    # medium (exact) and large (asymptotic, max(n1, n2) > 10000).
    ks("tiny", [0.1, 0.4, 0.7, 1.3, 2.2], [0.3, 0.5, 0.9, 1.1, 1.7, 2.5, 3.0])
    ks("tiny_shifted", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7])
    ks("ties", rng.integers(0, 5, 40).astype(float), rng.integers(0, 6, 55).astype(float))
    ks("equal_n_same", rng.normal(size=60), rng.normal(size=60))
    ks("equal_n_shift", rng.normal(size=80), rng.normal(0.5, 1, size=80))
    ks("medium_same", rng.normal(size=300), rng.normal(size=500))
    ks("medium_shift", rng.normal(size=300), rng.normal(0.3, 1, size=450))
    ks("medium_scale", rng.normal(size=1000), rng.normal(0, 1.2, size=1200))
    # (values rounded to 2 decimals keep the file small; ties are fine)
    ks("large_same", np.round(rng.normal(size=10001) * 100) / 100,
       np.round(rng.normal(size=10500) * 100) / 100)
    ks("large_shift", np.round(rng.normal(size=10200) * 100) / 100,
       np.round(rng.normal(0.05, 1, size=10300) * 100) / 100)
    ks("large_uneven", np.round(rng.uniform(size=15) * 100) / 100,
       np.round(rng.uniform(size=10010) * 100) / 100)
    # KS on histograms.
    ksbin("bins_same", [50, 120, 200, 120, 50, 0], [40, 100, 210, 130, 45, 0])
    ksbin("bins_shift", [50, 120, 200, 120, 50, 0], [20, 60, 150, 200, 90, 10])
    ksbin("bins_digits", [900, 40, 30, 20, 10, 0], [200, 30, 20, 30, 20, 5])
    # Chi-squared homogeneity.
    chi2("chi2_same", [30, 40, 30], [28, 45, 27])
    chi2("chi2_shift", [30, 40, 30], [10, 40, 60])
    chi2("chi2_zero_column", [50, 0, 25, 25], [40, 0, 30, 35])
    chi2("chi2_many", [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
         [20, 35, 18, 15, 22, 19, 17, 25, 16, 13])
    chi2("chi2_binary", [500, 300], [510, 290])
    # PSI.
    psi("psi_same", [100, 200, 300, 400], [100, 200, 300, 400])
    psi("psi_shift", [100, 200, 300, 400], [400, 300, 200, 100])
    psi("psi_empty_bin", [0, 250, 250, 500], [10, 240, 250, 0])
    # Survival functions.
    for x, dof in [(0.5, 1), (3.84, 1), (10.0, 3), (25.0, 9), (0.01, 2), (100.0, 10),
                   (60.0, 40), (1500.0, 1000)]:
        print(f"chi2sf {x!r} {dof} {float(stats.chi2.sf(x, dof))!r}")
    for d, n in [(0.3, 5), (0.08, 10), (0.7, 10), (0.85, 5), (0.15, 100), (0.3, 100),
                 (0.5, 60), (0.004, 200), (0.02, 1000), (0.06, 1000), (0.005, 50000),
                 (0.002, 200000), (0.01, 30000), (0.03, 5000), (0.2, 400)]:
        print(f"kstwo {d!r} {n} {float(stats.kstwo.sf(d, n))!r}")


if __name__ == "__main__":
    main()
