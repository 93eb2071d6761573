"""CSV and DataFrame input: validate once at the boundary, then build a SeriesDataset.

Two layouts:

- wide: one row per (id, time), one column per channel; an empty cell or NaN means
  "not observed".
- long: one row per measurement with a variable-name column and a value column.

Every problem is reported as a :class:`~latentode.errors.LatentODEError` naming the
file, column, row or series and what to do. No observed value is ever dropped
silently: dropping needs an explicit argument (``channels=``, ``drop_empty=True``,
``duplicates=``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import Series, SeriesDataset
from latentode.data.time_axis import UNIT_NANOSECONDS, TimeAxis, datetimes_to_float
from latentode.errors import LatentODEError

_INT_ID = re.compile(r"0|-?[1-9][0-9]*")  # plain integers: no "007", "+7" or "-0"


@dataclass(frozen=True)
class _Source:
    """Where the rows came from, for error messages."""

    name: str | None  # file name, or None for a DataFrame
    index: pd.Index  # the frame's index (row positions for files)

    def row(self, pos: int) -> str:
        if self.name is None:
            return f"row with index {_py(self.index[pos])!r}"
        return f"line {pos + 2} of {self.name}"

    @property
    def what(self) -> str:
        return "the DataFrame" if self.name is None else self.name


def read_csv(
    path: str | Path,
    columns: ColumnSpec | None = None,
    *,
    sep: str = ",",
    **column_args,
) -> SeriesDataset:
    """Read irregularly-sampled series from a CSV file (``.csv`` or compressed ``.csv.gz``).

    Args:
        path: the CSV file.
        columns: a :class:`~latentode.data.columns.ColumnSpec`; or give its fields by
            name (``column_args``): ``id_col``, ``time_col``, ``format`` (``"wide"`` or
            ``"long"``), ``variable_col``, ``value_col``, ``channels``, ``static_cols``,
            ``label_col``, ``labels`` (a separate id,label table), ``time_unit``,
            ``duplicates`` and ``drop_empty``, documented there.
        sep: the field delimiter.

    Returns:
        A :class:`SeriesDataset`, series sorted by time.

    Raises:
        LatentODEError: for a missing, empty or malformed file, an unknown column
            argument and every invalid value.
    """
    spec = ColumnSpec.of(columns, **column_args)
    path = _check_path(path)
    with _csv_errors(path):
        frame = pd.read_csv(path, **_csv_options(spec, sep))
    _check_header(path, frame.columns, sep)
    return _build(
        frame, _Source(path.name, frame.index), spec, _label_table(spec), ids_from_text=True
    )


def _check_path(path: str | Path) -> Path:
    """``path`` as a Path, or an error if it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise LatentODEError(f"file not found: {path}. Check the path (cwd is {Path.cwd()}).")
    if path.is_dir():
        raise LatentODEError(f"{path} is a folder; pass the CSV file inside it.")
    return path


def _csv_options(spec: ColumnSpec, sep: str) -> dict:
    """Keyword arguments of ``pandas.read_csv`` for a data file."""
    # ids and variable names are text: "007" stays "007", "1" does not become 1.0
    text_cols = {spec.id_col: str, **({spec.variable_col: str} if spec.format == "long" else {})}
    # index_col=False: rows longer than the header must not shift every column by one
    return {"sep": sep, "dtype": text_cols, "skipinitialspace": True, "index_col": False}


@contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    """Turn pandas' errors while reading ``path`` into a LatentODEError saying what to fix."""
    try:
        with warnings.catch_warnings():
            # rows longer than the header: pandas would drop their extra fields
            warnings.filterwarnings("error", "Length of header", pd.errors.ParserWarning)
            yield
    except pd.errors.ParserWarning:
        raise LatentODEError(
            f"{path}: some rows have more fields than the header has names, so values would "
            "be lost. Check the delimiter (sep=) and give every column a name."
        ) from None
    except pd.errors.EmptyDataError:
        raise LatentODEError(f"{path} is empty; expected a header line and data rows.") from None
    except UnicodeDecodeError as err:
        raise LatentODEError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); is it a CSV file? "
            "Re-save it as UTF-8 CSV."
        ) from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise LatentODEError(
            f"{path} could not be read as CSV ({first}). Check the delimiter (sep=), "
            "quoting and that every row has as many fields as the header."
        ) from None


def _check_header(path: Path, columns: pd.Index, sep: str) -> None:
    """Refuse empty or repeated names in a file's header, which pandas would silently
    rename (``Unnamed: 2``, ``x.1``) into channels of their own."""
    names = [str(c) for c in columns]
    mangled = [re.fullmatch(r"(.*)\.[0-9]+", n) for n in names]
    if not any(n.startswith("Unnamed: ") for n in names) and not any(
        m and m.group(1) in names for m in mangled
    ):
        return
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            header=None,
            nrows=1,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            index_col=False,
        ).iloc[0]
    except (ValueError, OSError, IndexError):
        return
    raw = [str(n).strip() for n in raw]
    if "" in raw:
        raise LatentODEError(
            f"column {raw.index('') + 1} of {path.name}'s header has no name (a saved "
            "DataFrame index? write it with index=False); give every column a name."
        )
    repeated = list(dict.fromkeys(n for n in raw if raw.count(n) > 1))
    if repeated:
        raise LatentODEError(
            f"{path.name} has more than one column named {repeated}; give every column its "
            "own name."
        )


def from_dataframe(
    df: pd.DataFrame, columns: ColumnSpec | None = None, **column_args
) -> SeriesDataset:
    """Build a :class:`SeriesDataset` from a DataFrame, by the same rules as :func:`read_csv`
    (the same column arguments, given as ``columns`` or by name)."""
    spec = ColumnSpec.of(columns, **column_args)
    if not isinstance(df, pd.DataFrame):
        raise LatentODEError(f"expected a pandas DataFrame, got {type(df).__name__}.")
    frame = df.reset_index(drop=True)
    return _build(frame, _Source(None, df.index), spec, _label_table(spec), ids_from_text=False)


def as_dataset(data, what: str = "data", columns: ColumnSpec | None = None) -> SeriesDataset:
    """``data`` if it is a dataset, else a DataFrame read with ``columns``; anything else raises."""
    if isinstance(data, SeriesDataset):
        return data
    if isinstance(data, pd.DataFrame):
        return from_dataframe(data, columns)
    raise LatentODEError(
        f"{what} must be a latentode SeriesDataset or a pandas DataFrame, "
        f"got {type(data).__name__}."
    )


def _label_table(spec: ColumnSpec) -> pd.Series | None:
    """The separate id,label table of ``spec.labels``, read and checked (None without one)."""
    if spec.labels is None:
        return None
    return _read_label_table(spec.labels, spec.id_col, spec.label_col)


# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    """What error messages about merged rows need to name series, times and channels."""

    src: _Source
    names: list[str]
    id_values: np.ndarray
    axis: TimeAxis
    duplicates: str

    def time(self, t: float) -> str:
        """A float time back in the user's units, for messages."""
        user = self.axis.to_user(np.array([t]))[0]
        return str(user) if self.axis.is_datetime else f"{float(user)!r}"


def _build(
    frame: pd.DataFrame,
    src: _Source,
    spec: ColumnSpec,
    label_table: pd.Series | None,
    *,
    ids_from_text: bool,
    whole_file: bool = True,
) -> SeriesDataset:
    """Validate ``frame`` against ``spec`` and build the dataset.

    ``whole_file=False`` when ``frame`` is one block of a file read in parts
    (:func:`latentode.data.streaming.iter_csv`): the checks that need every row (a
    channel or variable with no observed value, no series left) are left to the caller.
    """
    id_col, time_col, format = spec.id_col, spec.time_col, spec.format
    variable_col, value_col, label_col = spec.variable_col, spec.value_col, spec.label_col
    channels, static_cols, duplicates = spec.channels, list(spec.static_cols), spec.duplicates
    frame.columns = [str(c) for c in frame.columns]
    repeated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if repeated:
        raise LatentODEError(
            f"{src.what} has more than one column named {repeated}; give every column its own name."
        )
    roles = spec.roles()
    if label_col is not None:
        roles["label_col"] = label_col
    static_in_frame = [c for c in static_cols if c in frame.columns]
    absent = {arg: c for arg, c in roles.items() if c not in frame.columns}
    if format == "wide":  # long format may name static variables instead
        absent.update({f"static_cols ({c!r})": c for c in static_cols if c not in frame.columns})
    if absent:
        cols = list(frame.columns)
        hint = ""
        if len(cols) == 1:
            guess = next((d for d in (";", "\t", "|", ",") if d in cols[0]), None)
            hint = (
                f" The file has a single column {cols[0]!r}: is it separated by "
                f"{guess!r}? Pass sep={guess!r}."
                if guess
                else " The file has a single column."
            )
        args = ", ".join(a if a.startswith("static") else f"{a}=" for a in absent)
        raise LatentODEError(
            f"column(s) {list(dict.fromkeys(absent.values()))} not found in {src.what}; its "
            f"columns are {cols}.{hint} Name the right ones with {args}."
        )
    if len(frame) == 0:
        raise LatentODEError(f"{src.what} has a header but no data rows.")

    id_code, id_values = _parse_ids(frame[id_col], src, id_col, ids_from_text)  # [N], [K]
    times, axis, rank = _parse_times(frame[time_col], src, time_col, spec.time_unit)  # [N]
    static_long: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    if format == "wide":
        reserved = {id_col, time_col, *static_in_frame, *([label_col] if label_col else [])}
        names = [c for c in frame.columns if c not in reserved]
        if channels is not None:
            absent = [c for c in channels if c not in names]
            if absent:
                raise LatentODEError(
                    f"channel(s) {absent} not in {src.what}; channel columns are {names}."
                )
            names = list(channels)
        if not names:
            raise LatentODEError(
                f"{src.what} has no channel columns besides {sorted(reserved)}; a wide "
                "file needs one column per measured variable (or use format='long')."
            )
        values = np.column_stack(
            [_parse_values(frame[c], src, f"column {c!r}") for c in names]
        )  # [N, C]
        ctx = _Context(src, names, id_values, axis, duplicates)
        ids, times, values, observed = _merge_rows(id_code, times, values, ctx, rank)
    else:
        var_code, var_names = _parse_variables(frame[variable_col], src, variable_col)
        vals = _parse_values(frame[value_col], src, f"column {value_col!r}")  # [N]
        static_vars = [c for c in static_cols if c not in frame.columns]
        missing_static = [c for c in static_vars if c not in var_names]
        if missing_static:
            raise LatentODEError(
                f"static column(s) {missing_static} are neither columns nor variables in "
                f"{src.what}; columns are {list(frame.columns)}."
            )
        for c in static_vars:
            rows = np.flatnonzero(var_code == var_names.index(c))
            static_long[c] = (rows, vals[rows])
        measured = [v for v in var_names if v not in static_vars]
        if channels is not None:
            absent = [c for c in channels if c not in measured]
            if absent and whole_file:  # a block of a file may lack some variables
                raise LatentODEError(
                    f"variable(s) {absent} not in column {variable_col!r} of {src.what}; "
                    f"variables are {sorted(measured)[:30]}."
                )
            names = list(channels)
        else:
            names = sorted(measured)
        if not names:
            raise LatentODEError(f"{src.what} has no measurement rows (only static variables).")
        position = {n: j for j, n in enumerate(names)}
        chan_of_var = np.array([position.get(v, -1) for v in var_names], dtype=np.int64)
        chan = chan_of_var[var_code]  # [N], -1 = not a channel
        ctx = _Context(src, names, id_values, axis, duplicates)
        use = (chan >= 0) & ~np.isnan(vals)  # [N] rows that observe a channel
        if use.all():
            cells = (id_code, times, chan, vals, None)
            ids, times, values, observed = _to_grid(*cells, ctx, rank)
        else:
            rows = np.flatnonzero(use)
            cells = (id_code[rows], times[rows], chan[rows], vals[rows], rows)
            ids, times, values, observed = _to_grid(
                *cells, ctx, None if rank is None else rank[rows]
            )

    # per-series static covariates and labels, checked over every row of the series
    static = np.full((len(id_values), len(static_cols)), np.nan)  # [K, S]
    for j, c in enumerate(static_cols):
        if c in static_in_frame:
            col = _parse_values(frame[c], src, f"static column {c!r}")
            static[:, j] = _per_series_constant(col, id_code, None, c, ctx)
        else:
            rows, col = static_long[c]
            static[:, j] = _per_series_constant(col, id_code[rows], rows, c, ctx)
    label_name, label = label_col, None
    if label_col is not None:
        col = _parse_values(frame[label_col], src, f"label column {label_col!r}")
        label = _per_series_constant(col, id_code, None, label_col, ctx)
    elif label_table is not None:
        label_name = str(label_table.name)
        label = _match_labels(label_table, id_values)

    # rows that observe no channel carry no data: leave them out of the series
    has_obs = observed.any(axis=1)
    if not has_obs.all():
        ids, times, values, observed = (
            ids[has_obs],
            times[has_obs],
            values[has_obs],
            observed[has_obs],
        )
    counts = np.bincount(ids, minlength=len(id_values))  # [K] observed rows per series
    empty_series = np.flatnonzero(counts == 0)
    empty_chans = np.flatnonzero(np.count_nonzero(observed, axis=0) == 0)
    if not whole_file:
        empty_chans = empty_chans[:0]
    if (empty_series.size or empty_chans.size) and not spec.drop_empty:
        parts = []
        if empty_series.size:
            shown = ", ".join(repr(_py(id_values[i])) for i in empty_series[:5])
            more = ", ..." if empty_series.size > 5 else ""
            parts.append(f"{empty_series.size} series with no observed value ({shown}{more})")
        if empty_chans.size:
            parts.append(f"channel(s) with no observed value: {[names[i] for i in empty_chans]}")
        raise LatentODEError(
            f"{src.what}: " + "; ".join(parts) + ". Pass drop_empty=True to drop them "
            "(with a warning), or choose channels with channels=."
        )
    if empty_chans.size:
        keep_c = np.setdiff1d(np.arange(len(names)), empty_chans)
        values, observed = values[:, keep_c], observed[:, keep_c]
        names = [names[i] for i in keep_c]
    if empty_series.size or empty_chans.size:
        warnings.warn(
            f"drop_empty=True: dropped {empty_series.size} of {len(id_values)} series and "
            f"{empty_chans.size} channel(s) that had no observed value.",
            stacklevel=3,
        )
    if empty_series.size == len(id_values) and whole_file:
        raise LatentODEError(f"{src.what}: no series left with an observed value.")
    bounds = np.r_[0, np.cumsum(counts)]
    series_list = [
        Series(
            _py(id_values[k]),
            times[bounds[k] : bounds[k + 1]],
            values[bounds[k] : bounds[k + 1]],
            observed[bounds[k] : bounds[k + 1]],
            static[k] if static_cols else None,
            None if label is None or np.isnan(label[k]) else float(label[k]),
        )
        for k in np.flatnonzero(counts)
    ]
    return SeriesDataset(
        series_list,
        names,
        axis,
        static_names=static_cols,
        label_name=label_name,
        id_name=id_col,
        time_name=time_col,
        **({"variable_name": variable_col, "value_name": value_col} if format == "long" else {}),
    )


def _py(x):
    """numpy scalar → Python scalar (ids stay hashable and print nicely)."""
    return x.item() if isinstance(x, np.generic) else x


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Column [N] → (code [N] int64, -1 = missing; distinct values [K]).

    Files are usually grouped by id and time, so equal values come in runs: hashing only
    the first value of each run is several times faster than hashing every row.
    """
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


def _sorted_codes(codes: np.ndarray, uniques) -> tuple[np.ndarray, np.ndarray]:
    """Codes into ``uniques`` → codes into the sorted distinct values (equal values merge)."""
    codes2, distinct = pd.factorize(np.asarray(uniques))
    codes = codes2[codes]
    distinct = np.asarray(distinct)
    order = np.argsort(distinct, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes], distinct[order]


def _parse_ids(col: pd.Series, src: _Source, name: str, from_text: bool):
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
        text = np.array([str(u).strip() for u in uniques], dtype=object)
        missing = codes < 0
        if len(text) and (text == "").any():
            missing |= (text == "")[codes] & ~missing
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


def _parse_variables(col: pd.Series, src: _Source, name: str) -> tuple[np.ndarray, list[str]]:
    """Long format's variable-name column → (code [N], names); a name is the cell's text."""
    codes, uniques = _factorize(col)
    if (codes < 0).any():
        pos = int(np.flatnonzero(codes < 0)[0])
        raise LatentODEError(f"{src.row(pos)}: missing variable name in column {name!r}.")
    codes2, distinct = pd.factorize(np.array([str(u) for u in uniques], dtype=object))
    return codes2[codes], [str(d) for d in distinct]


def _parse_times(col: pd.Series, src: _Source, name: str, unit: str):
    """Time column → (float64 [N] in ``unit``, TimeAxis, int64 rank [N] of each time or None).

    Every row needs a finite time. Numbers stay numbers; text is parsed once per distinct
    value, as numbers if every value is one, else as datetimes (ISO 8601 first, then any
    format pandas recognises). The rank (equal times, equal rank) comes for free from the
    distinct values and spares a sort of all rows when they need ordering.
    """
    rank = None
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
            rank = np.unique(times_u, return_inverse=True)[1][codes]
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
            f"{src.row(pos)}: infinite time {_py(col.iloc[pos])!r} in column {name!r}; every time "
            "must be a finite number or a datetime."
        )
    return times, axis, rank


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


def _text_to_datetimes(text: pd.Series, codes: np.ndarray, src: _Source, name: str) -> pd.Series:
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


def _datetimes_to_float(dt: pd.Series, src: _Source, name: str, unit: str, codes=None):
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


def _parse_values(col: pd.Series, src: _Source, what: str) -> np.ndarray:
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
            # spaces-only cells are empty, not text
            blank = np.array([isinstance(c, str) and not c.strip() for c in cells[bad]])
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
            f"{src.row(pos)}: {what} holds an infinite value ({_py(col.iloc[pos])!r}); "
            "replace it with a finite number or leave the cell empty."
        )
    return arr


def _to_float(cell) -> float:
    try:
        return float(pd.to_numeric(cell))
    except (TypeError, ValueError):
        return np.nan


def _by_time(ids: np.ndarray, times: np.ndarray, rank=None):
    """Rows [N] → (order, ids [N], times [N], first [N]) sorted by (id, time).

    ``order`` is the stable permutation applied, or None when the rows were already in
    order (the usual case); ``first`` marks the rows that start a new (id, time).
    ``rank``: see _stable_order.
    """
    if len(ids) == 0:
        return None, ids, times, np.zeros(0, dtype=bool)
    order = None
    step = np.diff(ids)
    if not np.all((step > 0) | ((step == 0) & (times[1:] >= times[:-1]))):
        order = _stable_order(ids, times, rank)
        ids, times = ids[order], times[order]
        step = np.diff(ids)
    first = np.empty(len(ids), dtype=bool)
    first[0] = True
    np.not_equal(step, 0, out=first[1:])
    first[1:] |= times[1:] != times[:-1]
    return order, ids, times, first


def _stable_order(ids: np.ndarray, times: np.ndarray, rank=None) -> np.ndarray:
    """Stable argsort by (id code, time): one sort of unique int64 keys, several times
    faster than ``np.lexsort`` on a million rows. ``rank`` [N]: the times' ranks, if known."""
    n = len(ids)
    if rank is None:
        rank = np.unique(times, return_inverse=True)[1]  # [N]
    n_times, n_ids = int(rank.max()) + 1, int(ids.max()) + 1
    if n_ids * n_times * n >= 2**62:
        return np.lexsort((times, ids))
    key = (ids.astype(np.int64) * n_times + rank) * n + np.arange(n)  # unique: row breaks ties
    return np.argsort(key)


def _merge_rows(ids, times, values, ctx: _Context, rank=None):
    """Wide rows → sorted by (id, time), rows with the same (id, time) merged per channel.

    Returns ids [R], times [R], values [R, C] and the observed mask [R, C].
    """
    order, ids, times, first = _by_time(ids, times, rank)
    rows = np.arange(len(ids)) if order is None else order
    if order is not None:
        values = values[order]
    observed = ~np.isnan(values)  # [R, C]
    if first.all():
        return ids, times, values, observed
    r, c = np.nonzero(observed)  # every observed cell, in (id, time) order
    return _to_grid(ids[r], times[r], c, values[r, c], rows[r], ctx)


def _to_grid(ids, times, chan, vals, rows, ctx: _Context, rank=None):
    """Observed cells (id, time, channel, value) [N] → one row per (id, time).

    Returns ids [R], times [R], values [R, C] (NaN where not observed) and the observed
    mask [R, C], sorted by (id, time). Several values for one cell are merged by
    ``ctx.duplicates``; ``rows`` [N] are the cells' source rows, for error messages (None:
    row i is cell i).
    """
    order, ids, times, first_of_key = _by_time(ids, times, rank)
    if order is not None:
        chan, vals = chan[order], vals[order]
        rows = order if rows is None else rows[order]
    heads = np.flatnonzero(first_of_key)  # [R] first cell of each output row
    key = np.cumsum(first_of_key) - 1  # [N] output row of each cell
    n_chan = len(ctx.names)
    out = np.full((len(heads), n_chan), np.nan)  # [R, C]
    cell = key * n_chan + chan
    flat = out.reshape(-1)
    flat[cell] = vals
    observed = np.zeros(out.shape, dtype=bool)  # [R, C]
    observed.reshape(-1)[cell] = True
    if np.count_nonzero(observed) != len(cell):  # some cell was written twice
        if rows is None:
            rows = np.arange(len(ids))
        by_cell = np.argsort(cell, kind="stable")  # keeps file order within a cell
        cell, vals, rows = cell[by_cell], vals[by_cell], rows[by_cell]
        first = np.r_[True, cell[1:] != cell[:-1]]
        group = np.cumsum(first) - 1

        def conflict(g: int):
            members = np.flatnonzero(group == g)
            where = ", ".join(ctx.src.row(int(rows[m])) for m in members[:3])
            k, c = divmod(int(cell[members[0]]), n_chan)
            i = heads[k]
            raise LatentODEError(
                f"conflicting duplicate rows for series {_py(ctx.id_values[ids[i]])!r} at time "
                f"{ctx.time(times[i])}, channel {ctx.names[c]!r}: values "
                f"{', '.join(f'{v:g}' for v in vals[members[:3]])} ({where}). Remove the "
                "duplicates or pass duplicates='mean', 'first' or 'last'."
            )

        flat[cell[first]] = _reduce_duplicates(vals, group, ctx.duplicates, conflict)
    return ids[heads], times[heads], out, observed


def _reduce_duplicates(vals: np.ndarray, group: np.ndarray, policy: str, on_conflict) -> np.ndarray:
    """Values [N] in sorted groups [N] → one value per group under ``policy``."""
    n = int(group[-1]) + 1
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lo = np.minimum.reduceat(vals, starts)
    hi = np.maximum.reduceat(vals, starts)
    conflict = np.flatnonzero(lo != hi)
    if conflict.size and policy == "error":
        on_conflict(int(conflict[0]))
    if policy == "mean":
        count = np.bincount(group, minlength=n)
        mean = np.bincount(group, weights=vals, minlength=n) / count
        over = ~np.isfinite(mean)  # the sum overflowed (values near 1e308): divide first
        if over.any():
            mean[over] = np.bincount(group, weights=vals / count[group], minlength=n)[over]
        return mean
    if policy == "last":
        ends = np.r_[starts[1:], len(vals)] - 1
        return vals[ends]
    return vals[starts]  # "first", or "error" with no conflict (all equal)


def _per_series_constant(col, codes, rows, name, ctx: _Context) -> np.ndarray:
    """Per-row values [N] (series ``codes`` [N]) that must agree within a series → [K].

    NaN means unknown and is ignored; ``rows`` [N] are the source rows (None: 0..N-1).
    """
    out = np.full(len(ctx.id_values), np.nan)
    obs = ~np.isnan(col)
    if not obs.any():
        return out
    lo = np.full(len(out), np.inf)
    hi = np.full(len(out), -np.inf)
    np.minimum.at(lo, codes[obs], col[obs])
    np.maximum.at(hi, codes[obs], col[obs])
    varies = np.flatnonzero(np.isfinite(lo) & (lo != hi))
    if varies.size:
        k = int(varies[0])
        pos = int(np.flatnonzero(obs & (codes == k) & (col != lo[k]))[0])
        row = ctx.src.row(int(pos if rows is None else rows[pos]))
        raise LatentODEError(
            f"{name!r} must be constant within a series, but series {_py(ctx.id_values[k])!r} "
            f"has values {lo[k]:g} and {hi[k]:g} (e.g. {row}). Make it one value per series."
        )
    has = np.isfinite(lo)
    out[has] = lo[has]
    return out


def _match_labels(table: pd.Series, id_values: np.ndarray) -> np.ndarray:
    """Labels indexed by id → float [K] per series (NaN: no label); ids match as text."""
    keys = pd.Index([str(_py(i)) for i in table.index])
    pos = keys.get_indexer(pd.Index([str(_py(i)) for i in id_values]))  # [K], -1 = none
    unknown = ~keys.isin([str(_py(i)) for i in id_values])
    if unknown.any():
        warnings.warn(
            f"{int(unknown.sum())} label(s) belong to ids not in the data and were not used "
            f"(e.g. {table.index[np.flatnonzero(unknown)[0]]!r}).",
            stacklevel=4,
        )
    vals = table.to_numpy(dtype=np.float64)
    return np.where(pos >= 0, vals[pos], np.nan) if len(vals) else np.full(len(pos), np.nan)


def _read_label_table(labels, id_col: str, label_col: str | None) -> pd.Series:
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
    src = _Source(None if isinstance(labels, pd.DataFrame) else what, table.index)
    codes, ids = _parse_ids(table[id_col], src, id_col, not isinstance(labels, pd.DataFrame))
    vals = _parse_values(table[col], src, f"label column {col!r}")
    out = pd.Series(vals, index=pd.Index([_py(ids[k]) for k in codes], dtype=object), name=str(col))
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise LatentODEError(f"{what} has more than one label for id {dup!r}.")
    return out
