"""Reading one column of a table: ids, times, values and variable names, checked cell by cell.

Each parser takes a pandas column and a :class:`Source` (where the rows came from) and
returns plain numpy arrays, or raises a :class:`~latentode.errors.LatentODEError` that
names the file or DataFrame, the row, the column and the value. The work is done once
per distinct value where that is cheaper (ids and time stamps repeat).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from latentode.data.time_axis import UNIT_NANOSECONDS, TimeAxis, datetimes_to_float
from latentode.errors import LatentODEError

_INT_ID = re.compile(r"0|-?[1-9][0-9]*")  # plain integers: no "007", "+7" or "-0"
#: pandas' default spellings of a missing value (``pandas.read_csv``'s NA values)
NA_SPELLINGS = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip


class LeadingSpace(Exception):
    """A text value of a file read with the spaces after its delimiters kept begins with
    a space: the reader reads the file again, skipping them (see ``Source``)."""


@dataclass(frozen=True)
class Source:
    """Where the rows came from, for error messages.

    ``spaces_kept``: the file was parsed without ``skipinitialspace`` (which skips spaces,
    not tabs, at the start of a field). Numbers parse the same either way, but text
    would keep a leading space (and a quote after one), so the parsers of ids, names and
    time text raise :class:`LeadingSpace` on such a value.
    """

    name: str | None  # file name, or None for a DataFrame
    index: pd.Index  # the frame's index (row positions for files)
    spaces_kept: bool = field(default=False, kw_only=True)

    def refuse_leading_space(self, values) -> None:
        """Raise LeadingSpace if spaces were kept and a distinct value starts with one."""
        if self.spaces_kept:
            joined = "\n".join(map(str, values))  # one search instead of a loop over values
            # (a value holding a newline and a space only costs a needless second reading)
            if joined.startswith(" ") or "\n " in joined:
                raise LeadingSpace

    def row(self, pos: int) -> str:
        if self.name is None:
            return f"row with index {as_python(self.index[pos])!r}"
        return f"line {pos + 2} of {self.name}"

    @property
    def what(self) -> str:
        return "the DataFrame" if self.name is None else self.name


def as_python(x):
    """numpy scalar → Python scalar (ids stay hashable and print nicely)."""
    return x.item() if isinstance(x, np.generic) else x


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Column [N] → (code [N] int64, -1 = missing; distinct values [K]).

    Files are usually grouped by id and time, so equal values come in runs: hashing only
    the first value of each run is several times faster than hashing every row. A text
    column of pandas' Arrow-backed string dtype is factorised by Arrow directly (a copy
    to Python objects would cost more than the hashing); a categorical one is its codes,
    less the categories no row holds.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)  # -1 = missing
        categories = np.asarray(values.cat.categories, dtype=object)
        used = np.bincount(codes + 1, minlength=len(categories) + 1)[1:] > 0
        if not used.all():  # a category no row holds is no value of the column
            codes = np.r_[-1, np.cumsum(used) - 1][codes + 1]
            categories = categories[used]
        return codes, categories
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(values)
        return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype == object and len(arr) > 1:
        try:
            sample = arr[:1000]
            if np.count_nonzero(sample[1:] != sample[:-1]) < len(sample) // 2:
                heads = np.flatnonzero(np.r_[True, arr[1:] != arr[:-1]])
                if len(heads) < len(arr) // 2:
                    codes, uniques = pd.factorize(arr[heads])
                    return np.repeat(codes, np.diff(np.r_[heads, len(arr)])), np.asarray(uniques)
        except (TypeError, ValueError):  # cells that do not compare (pd.NA, arrays)
            pass
    codes, uniques = pd.factorize(arr)
    return codes, np.asarray(uniques)


def _missing_or_blank(codes: np.ndarray, stripped: np.ndarray) -> np.ndarray:
    """[N] True where a cell is missing (code -1) or its text, ``stripped[code]``, is blank."""
    missing = codes < 0
    blank = stripped == ""  # [K]
    if blank.any():
        missing |= blank[np.maximum(codes, 0)] & ~missing
    return missing


def _sorted_codes(codes: np.ndarray, uniques) -> tuple[np.ndarray, np.ndarray]:
    """Codes into ``uniques`` → codes into the sorted distinct values (equal values merge)."""
    codes2, distinct = pd.factorize(np.asarray(uniques))
    distinct = np.asarray(distinct)
    order = np.argsort(distinct, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes2][codes], distinct[order]  # composed on [K] first: one gather of [N]


def parse_ids(col: pd.Series, src: Source, name: str, from_text: bool):
    """Id column → (code [N] int64, id values [K] sorted): series k has id ``values[k]``.

    Ids read from text stay strings ("007") unless every id is a plain integer; numeric
    ids in a DataFrame stay numbers (integers when whole). The work is done once per
    distinct id, not once per row. A missing or blank id raises.
    """
    if not from_text and isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if not from_text and col.dtype == object:
        col = col.infer_objects()
    dtype = col.dtype
    numeric = not from_text and (
        pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)
    )
    if numeric:
        missing = col.isna().to_numpy()
    else:
        codes, uniques = _factorize(col)
        src.refuse_leading_space(uniques)
        text = np.array([str(u).strip() for u in uniques], dtype=object)
        missing = _missing_or_blank(codes, text)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise LatentODEError(
            f"{src.row(pos)}: missing series id in column {name!r} "
            f"({int(missing.sum())} row(s) without an id). Every row needs an id."
        )
    if not numeric:
        if from_text and all(_INT_ID.fullmatch(t) and len(t) <= 18 for t in text):
            return _sorted_codes(codes, text.astype(np.int64))
        return _sorted_codes(codes, text)
    if pd.api.types.is_integer_dtype(dtype):
        big = pd.api.types.is_unsigned_integer_dtype(dtype) and col.max() > np.iinfo(np.int64).max
        arr = col.to_numpy(dtype=np.uint64 if big else np.int64)
    else:
        arr = col.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(abs(arr) < 2**53):
            arr = arr.astype(np.int64)
    codes, uniques = _factorize(arr)
    return _sorted_codes(codes, uniques)


def parse_variables(col: pd.Series, src: Source, name: str) -> tuple[np.ndarray, list[str]]:
    """Long format's variable-name column → (code [N], names); a name is the cell's text.
    A missing or blank (whitespace-only) name raises."""
    codes, uniques = _factorize(col)
    src.refuse_leading_space(uniques)
    missing = _missing_or_blank(codes, np.array([str(u).strip() for u in uniques], dtype=object))
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise LatentODEError(f"{src.row(pos)}: missing variable name in column {name!r}.")
    codes2, distinct = pd.factorize(np.array([str(u) for u in uniques], dtype=object))
    if len(distinct) < len(uniques):  # values with equal text (1 and "1") are one name
        codes = codes2[codes]
    return codes, [str(d) for d in distinct]


@dataclass(frozen=True)
class TimeRanks:
    """The rank of each row's time (equal times, equal rank), formed only if rows need
    sorting: from the distinct times it costs a sort of those, not of every row."""

    codes: np.ndarray  # [N] each row's distinct time
    distinct: np.ndarray  # [K] float64

    def take(self, rows: np.ndarray) -> TimeRanks:
        """The ranks of ``rows`` [M] only."""
        return TimeRanks(self.codes[rows], self.distinct)

    def ranks(self) -> np.ndarray:
        """int64 [N]."""
        return np.unique(self.distinct, return_inverse=True)[1][self.codes]


def parse_times(col: pd.Series, src: Source, name: str, unit: str):
    """Time column → (float64 [N] in ``unit``, TimeAxis, :class:`TimeRanks` or None).

    Every row needs a finite time. Numbers stay numbers; text is parsed once per distinct
    value, as numbers if every value is one, else as datetimes (ISO 8601 first, then any
    format pandas recognises). The ranks come for free from the distinct values and spare
    a sort of all rows when they need ordering.
    """
    ranks = None
    if pd.api.types.is_bool_dtype(col.dtype):
        raise LatentODEError(f"time column {name!r} holds True/False, not times.")
    if pd.api.types.is_timedelta64_dtype(col.dtype):
        ns = col.to_numpy(dtype="timedelta64[ns]").astype(np.int64).astype(np.float64)
        times = np.where(col.isna().to_numpy(), np.nan, ns / UNIT_NANOSECONDS[unit])
        axis = TimeAxis(unit=unit)
    elif pd.api.types.is_datetime64_any_dtype(col.dtype):
        times, axis = _datetimes_to_float(col, src, name, unit)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        times, axis = col.to_numpy(dtype=np.float64, na_value=np.nan), TimeAxis(unit=unit)
    else:
        codes, uniques = _factorize(col)  # code -1 = missing
        src.refuse_leading_space(uniques)
        uniques = pd.Series(np.asarray(uniques, dtype=object))
        as_num = _all_numbers(uniques)
        if as_num is not None:
            times_u, axis = as_num, TimeAxis(unit=unit)
        else:
            dt = _text_to_datetimes(uniques, codes, src, name)
            bad_u = dt.isna().to_numpy()
            if bad_u.any():
                num_ok_u = np.array([_number(u) is not None for u in uniques], dtype=bool)
                present = codes >= 0
                # report the rows that fail under the reading that fits most rows
                n_num = np.count_nonzero(num_ok_u[codes] & present)
                n_dt = np.count_nonzero(~bad_u[codes] & present)
                numeric_wins = n_num > n_dt
                bad = present & ~(num_ok_u if numeric_wins else ~bad_u)[codes]
                pos = int(np.flatnonzero(bad)[0])
                kind = "a number" if numeric_wins else "a date/time"
                raise LatentODEError(
                    f"{src.row(pos)}: cannot read time {col.iloc[pos]!r} in column {name!r} as "
                    f"{kind} ({int(bad.sum())} such row(s)); use numbers (e.g. hours) or ISO "
                    "datetimes like 2024-01-31 13:45, the same kind in every row."
                )
            times_u, axis = _datetimes_to_float(dt, src, name, unit, codes)
        times = times_u[codes] if len(times_u) else np.full(len(col), np.nan)
        times[codes < 0] = np.nan
        if len(times_u):
            ranks = TimeRanks(codes, times_u)
    times = _unsigned_zeros(times)
    missing = np.isnan(times)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise LatentODEError(
            f"{src.row(pos)}: missing time in column {name!r} ({int(missing.sum())} row(s)). "
            "Every row needs a time."
        )
    inf = np.isinf(times)
    if inf.any():
        pos = int(np.flatnonzero(inf)[0])
        raise LatentODEError(
            f"{src.row(pos)}: infinite time {as_python(col.iloc[pos])!r} in column {name!r}; "
            "every time must be a finite number or a datetime."
        )
    return times, axis, ranks


def _all_numbers(text: pd.Series) -> np.ndarray | None:
    """Distinct time values → float64 if every one reads as a number, else None."""
    try:
        return text.to_numpy(dtype=str).astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        return None


def _number(value) -> float | None:
    """One time value → its number (as the fast path reads it), or None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return float(np.array([str(value)]).astype(np.float64)[0])
    except (ValueError, TypeError, OverflowError):
        return None


_TZ_SUFFIX = re.compile(r".*(?:[+-]\d\d:?\d\d|Z|UTC|GMT)\s*$")


def _text_to_datetimes(text: pd.Series, codes: np.ndarray, src: Source, name: str) -> pd.Series:
    """Distinct time values → datetimes (NaT where unreadable).

    One UTC offset (or none) keeps its time zone; several offsets (e.g. both sides of a
    daylight-saving change) are converted to UTC. Mixing times with and without an
    offset raises.
    """
    if pd.api.types.infer_dtype(text, skipna=True) not in ("string", "empty"):
        # numbers are no datetimes here (pandas would read them as since-1970 offsets)
        number = np.array([isinstance(t, (int, float, np.number)) for t in text], dtype=bool)
        text = text.where(~number, None)
    dt = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for utc in (False, True):
            for fmt in ("ISO8601", "mixed"):
                try:
                    dt = pd.to_datetime(text, errors="coerce", format=fmt, utc=utc)
                except (ValueError, TypeError, OverflowError):
                    continue
                if dt.notna().all():
                    break
            if dt is not None and dt.notna().all():
                break
    if dt is None:
        return pd.Series(pd.NaT, index=text.index)
    if utc and dt.notna().all():
        aware = text.astype(str).str.fullmatch(_TZ_SUFFIX).to_numpy(dtype=bool)
        if not aware.all():
            pos = int(np.flatnonzero(~aware[codes] & (codes >= 0))[0])
            raise LatentODEError(
                f"{src.row(pos)}: time {text[codes[pos]]!r} in column {name!r} has no "
                f"time zone but others do (e.g. {text[int(np.flatnonzero(aware)[0])]!r}); "
                "give every time a UTC offset, or none."
            )
    return dt


def _datetimes_to_float(dt: pd.Series, src: Source, name: str, unit: str, codes=None):
    """datetimes_to_float, with an error naming the row for dates pandas cannot hold in ns.

    ``dt`` holds one datetime per row, or per distinct value when ``codes`` [N] maps rows
    to them (-1 = missing).
    """
    year = dt.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    out_of_range = (year < 1678) | (year > 2261)
    if codes is not None:
        out_of_range = out_of_range[codes] & (codes >= 0) if len(year) else codes < -1
    if out_of_range.any():
        pos = int(np.flatnonzero(out_of_range)[0])
        shown = dt.iloc[pos if codes is None else codes[pos]]
        raise LatentODEError(
            f"{src.row(pos)}: time {shown} in column {name!r} is outside the years "
            "1678-2261 that datetimes can hold; shift the dates or give times as numbers."
        )
    return datetimes_to_float(dt, unit)


def parse_values(col: pd.Series, src: Source, what: str) -> np.ndarray:
    """A column → float64 [N] (NaN = not observed); text or inf raise with row and value."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_complex_dtype(col.dtype):
        raise LatentODEError(f"{what} holds complex numbers; give real numbers.")
    if pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        cells = col.astype(object).where(col.notna(), None)
        try:
            arr = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            arr = np.array([_to_float(c) for c in cells], dtype=np.float64)
        bad = np.isnan(arr) & col.notna().to_numpy()
        if bad.any():
            # spaces-only cells are empty, not text; so, in a file, are pandas' spellings
            # of a missing value, which its parser can leave as text in a column it falls
            # back to reading as text (a negative integer, one too large for int64 and a
            # decimal together); both sets hold "", the text of a spaces-only cell
            missing = NA_SPELLINGS if src.name is not None else frozenset({""})
            blank = np.array([isinstance(c, str) and c.strip() in missing for c in cells[bad]])
            if not blank.all():
                pos = int(np.flatnonzero(bad)[np.flatnonzero(~blank)[0]])
                raise LatentODEError(
                    f"{src.row(pos)}: {what} holds the text {cells.iloc[pos]!r}, not a number "
                    f"({int(bad.sum() - blank.sum())} such cell(s)). Leave a cell empty for "
                    "'not observed', fix the value, or leave the column out with channels=."
                )
    inf = np.isinf(arr)
    if inf.any():
        pos = int(np.flatnonzero(inf)[0])
        raise LatentODEError(
            f"{src.row(pos)}: {what} holds an infinite value ({as_python(col.iloc[pos])!r}); "
            "replace it with a finite number or leave the cell empty."
        )
    return _unsigned_zeros(arr)


def _unsigned_zeros(x: np.ndarray) -> np.ndarray:
    """``x`` with -0.0 as 0.0 (a new array; -0.0 + 0.0 is 0.0). A zero's sign means
    nothing in a measurement or a time, and pandas' parser drops it from "-0" in a
    numeric column but not in one it reads as text (``float("-0")``), so two readings
    of one file would differ by it."""
    return x + 0.0


def _to_float(cell) -> float:
    try:
        return float(pd.to_numeric(cell))
    except (TypeError, ValueError):
        return np.nan
