#!/usr/bin/python3
"""Writes tests/data/scaling_golden.txt: a small feature matrix and scikit-learn's
StandardScaler (mean_, scale_) and MinMaxScaler (data_min_, data_range_) fitted on it.
The data test checks kiln::data::fit_standardization and fit_min_max against these."""
import os

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler

rng = np.random.default_rng(2026)
x = np.column_stack([
    rng.normal(50.0, 12.0, 40),          # a wide feature
    rng.uniform(-1e-3, 1e-3, 40),        # a tiny one
    rng.integers(0, 5, 40).astype(float),
    np.full(40, 7.25),                   # constant: scale 1
]).astype(np.float32)
std = StandardScaler().fit(x.astype(np.float64))
mm = MinMaxScaler().fit(x.astype(np.float64))
out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "scaling_golden.txt")
with open(out, "w") as f:
    f.write(f"{x.shape[0]} {x.shape[1]}\n")
    for row in x:
        f.write(" ".join(repr(float(v)) for v in row) + "\n")
    f.write("std_mean " + " ".join(repr(float(v)) for v in std.mean_) + "\n")
    f.write("std_scale " + " ".join(repr(float(v)) for v in std.scale_) + "\n")
    f.write("min " + " ".join(repr(float(v)) for v in mm.data_min_) + "\n")
    f.write("range " + " ".join(repr(float(v)) for v in mm.data_range_) + "\n")
