#!/usr/bin/python3
"""Extracts data/co2.csv from Debian's python3-statsmodels (run once; needs /usr/bin/python3).

statsmodels' co2 dataset holds weekly Mauna Loa flask measurements (Keeling and Whorf,
public domain), 1958-03-29 .. 2001-12-29, with 59 missing weeks. The CSV holds monthly
means (the mean of each calendar month's weekly values); a month without any value is
linearly interpolated from its neighbours and flagged with interpolated = 1.
"""
import sys

import statsmodels.api as sm

weekly = sm.datasets.co2.load_pandas().data["co2"]
monthly = weekly.resample("MS").mean()
missing = monthly.isna()
filled = monthly.interpolate(method="linear")
out = sys.argv[1] if len(sys.argv) > 1 else "data/co2.csv"
with open(out, "w") as f:
    f.write("month,co2,interpolated\n")
    for stamp, value in filled.items():
        f.write(f"{stamp:%Y-%m},{value:.3f},{int(missing[stamp])}\n")
print(f"{out}: {len(filled)} months, {int(missing.sum())} interpolated")
