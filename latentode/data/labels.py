"""Per-series labels given as a separate table (``labels=``): read, checked, matched by id.

A label table has the id column and one label column, as a CSV file or a DataFrame; its
ids are matched to the data's as text, so "7" in one matches 7 in the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latentode.data.parse import Source, as_python, parse_ids, parse_values
from latentode.errors import LatentODEError, warn_user


def match_labels(table: pd.Series, id_values: np.ndarray) -> np.ndarray:
    """Labels indexed by id → float [K] per series (NaN: no label); ids match as text."""
    keys = pd.Index([str(as_python(i)) for i in table.index])
    pos = keys.get_indexer(pd.Index([str(as_python(i)) for i in id_values]))  # [K], -1 = none
    unknown = ~keys.isin([str(as_python(i)) for i in id_values])
    if unknown.any():
        warn_user(
            f"{int(unknown.sum())} label(s) belong to ids not in the data and were not used "
            f"(e.g. {table.index[np.flatnonzero(unknown)[0]]!r}).",
        )
    vals = table.to_numpy(dtype=np.float64)
    return np.where(pos >= 0, vals[pos], np.nan) if len(vals) else np.full(len(pos), np.nan)


def read_label_table(labels, id_col: str, label_col: str | None) -> pd.Series:
    """An id,label table (file or DataFrame) → Series of float labels indexed by id."""
    if isinstance(labels, pd.DataFrame):
        table, what = labels, "the labels DataFrame"
    else:
        if not isinstance(labels, (str, Path)):
            raise LatentODEError(
                f"labels= must be a CSV path or a DataFrame, got {type(labels).__name__}."
            )
        p = Path(labels)
        if not p.is_file():
            raise LatentODEError(f"labels file not found: {p} (or it is not a file).")
        try:
            table = pd.read_csv(p, dtype={id_col: str}, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
            raise LatentODEError(f"labels file {p} could not be read as CSV ({err}).") from None
        what = p.name
    if id_col not in table.columns:
        raise LatentODEError(
            f"{what} has no id column {id_col!r}; its columns are {list(table.columns)}."
        )
    others = [c for c in table.columns if c != id_col]
    col = label_col if label_col in table.columns else (others[0] if len(others) == 1 else None)
    if col is None:
        raise LatentODEError(
            f"{what} must have the id column and one label column; it has {list(table.columns)}."
        )
    src = Source(None if isinstance(labels, pd.DataFrame) else what, table.index)
    codes, ids = parse_ids(table[id_col], src, id_col, not isinstance(labels, pd.DataFrame))
    vals = parse_values(table[col], src, f"label column {col!r}")
    out = pd.Series(
        vals, index=pd.Index([as_python(ids[k]) for k in codes], dtype=object), name=str(col)
    )
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise LatentODEError(f"{what} has more than one label for id {dup!r}.")
    return out
