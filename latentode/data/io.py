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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from latentode.data.dataset import Series, SeriesDataset
from latentode.data.time_axis import UNIT_NANOSECONDS, TimeAxis, datetimes_to_float
from latentode.errors import LatentODEError

DUPLICATE_POLICIES = ("error", "mean", "first", "last")
_INT_ID = re.compile(r"-?(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class _Source:
    """Where the rows came from, for error messages."""

    name: str | None  # file name, or None for a DataFrame
    index: pd.Index  # the frame's index (row positions for files)

    def row(self, pos: int) -> str:
        if self.name is None:
            return f"row with index {self.index[pos]!r}"
        return f"line {pos + 2} of {self.name}"

    @property
    def what(self) -> str:
        return "the DataFrame" if self.name is None else self.name


def read_csv(
    path: str | Path,
    id_col: str = "id",
    time_col: str = "time",
    format: str = "wide",
    variable_col: str = "variable",
    value_col: str = "value",
    channels: Sequence[str] | None = None,
    static_cols: Sequence[str] = (),
    label_col: str | None = None,
    labels: str | Path | pd.DataFrame | None = None,
    time_unit: str = "h",
    duplicates: str = "error",
    drop_empty: bool = False,
    sep: str = ",",
) -> SeriesDataset:
    """Read irregularly-sampled series from a CSV file (``.csv`` or compressed ``.csv.gz``).

    Args:
        path: the CSV file.
        id_col, time_col: columns with the series id and the time stamp. Times are
            numbers (in any unit; ``time_unit`` labels it) or datetimes (converted to
            floats in ``time_unit`` and converted back on output).
        format: ``"wide"`` (every other column is a channel) or ``"long"`` (one row per
            measurement in ``variable_col`` / ``value_col``).
        channels: keep only these channels (wide: columns, long: variable names).
        static_cols: per-series static covariates (constant within a series; NaN =
            unknown). In long format they may also be variable names.
        label_col: a per-series label column (e.g. mortality 0/1).
        labels: a separate id,label table (path or DataFrame) instead of ``label_col``.
        time_unit: unit of the float times: ns, us, ms, s, min, h (default) or d.
        duplicates: what to do with several different values for the same (id, time,
            channel): ``"error"`` (default), ``"mean"``, ``"first"`` or ``"last"``.
            Rows that repeat the same value, or fill different channels, are merged.
        drop_empty: drop series or channels with no observed value (with a warning
            that counts them) instead of raising.
        sep: the field delimiter.

    Returns:
        A :class:`SeriesDataset`, series sorted by time.

    Raises:
        LatentODEError: for a missing, empty or malformed file and every invalid value.
    """
    path = Path(path)
    if not path.exists():
        raise LatentODEError(f"file not found: {path}. Check the path (cwd is {Path.cwd()}).")
    if path.is_dir():
        raise LatentODEError(f"{path} is a folder; pass the CSV file inside it.")
    try:
        frame = pd.read_csv(path, sep=sep, dtype={id_col: str}, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise LatentODEError(f"{path} is empty; expected a header line and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise LatentODEError(
            f"{path} could not be read as CSV ({first}). Check the delimiter (sep=), "
            "quoting and that every row has as many fields as the header."
        ) from None
    label_table = _read_label_table(labels, id_col, label_col) if labels is not None else None
    return _build(
        frame,
        _Source(path.name, frame.index),
        id_col=id_col,
        time_col=time_col,
        format=format,
        variable_col=variable_col,
        value_col=value_col,
        channels=channels,
        static_cols=static_cols,
        label_col=label_col,
        label_table=label_table,
        time_unit=time_unit,
        duplicates=duplicates,
        drop_empty=drop_empty,
        ids_from_text=True,
    )


def from_dataframe(
    df: pd.DataFrame,
    id_col: str = "id",
    time_col: str = "time",
    format: str = "wide",
    variable_col: str = "variable",
    value_col: str = "value",
    channels: Sequence[str] | None = None,
    static_cols: Sequence[str] = (),
    label_col: str | None = None,
    labels: str | Path | pd.DataFrame | None = None,
    time_unit: str = "h",
    duplicates: str = "error",
    drop_empty: bool = False,
) -> SeriesDataset:
    """Build a :class:`SeriesDataset` from a DataFrame, by the same rules as :func:`read_csv`."""
    if not isinstance(df, pd.DataFrame):
        raise LatentODEError(f"expected a pandas DataFrame, got {type(df).__name__}.")
    label_table = _read_label_table(labels, id_col, label_col) if labels is not None else None
    frame = df.reset_index(drop=True)
    return _build(
        frame,
        _Source(None, df.index),
        id_col=id_col,
        time_col=time_col,
        format=format,
        variable_col=variable_col,
        value_col=value_col,
        channels=channels,
        static_cols=static_cols,
        label_col=label_col,
        label_table=label_table,
        time_unit=time_unit,
        duplicates=duplicates,
        drop_empty=drop_empty,
        ids_from_text=False,
    )


# ---------------------------------------------------------------------------------------
def _build(
    frame: pd.DataFrame,
    src: _Source,
    *,
    id_col: str,
    time_col: str,
    format: str,
    variable_col: str,
    value_col: str,
    channels: Sequence[str] | None,
    static_cols: Sequence[str],
    label_col: str | None,
    label_table: pd.Series | None,
    time_unit: str,
    duplicates: str,
    drop_empty: bool,
    ids_from_text: bool,
) -> SeriesDataset:
    if format not in ("wide", "long"):
        raise LatentODEError(f"format must be 'wide' or 'long', got {format!r}.")
    if duplicates not in DUPLICATE_POLICIES:
        raise LatentODEError(
            f"duplicates={duplicates!r} is not a policy; use one of {DUPLICATE_POLICIES}."
        )
    if time_unit not in UNIT_NANOSECONDS:
        raise LatentODEError(
            f"time_unit={time_unit!r} is not a known unit; use one of {list(UNIT_NANOSECONDS)}."
        )
    if label_col is not None and label_table is not None:
        raise LatentODEError("give either label_col= or labels=, not both.")
    static_cols = list(static_cols)
    frame.columns = [str(c) for c in frame.columns]
    needed = [id_col, time_col]
    if format == "long":
        needed += [variable_col, value_col]
    static_in_frame = [c for c in static_cols if c in frame.columns]
    missing = [c for c in needed + ([label_col] if label_col else []) if c not in frame.columns]
    if format == "wide":
        missing += [c for c in static_cols if c not in frame.columns]
    if missing:
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
        raise LatentODEError(
            f"column(s) {missing} not found in {src.what}; its columns are {cols}.{hint} "
            "Name the right ones with id_col=, time_col="
            + (", variable_col=, value_col=" if format == "long" else "")
            + "."
        )
    if len(frame) == 0:
        raise LatentODEError(f"{src.what} has a header but no data rows.")

    ids = _parse_ids(frame[id_col], src, id_col, ids_from_text)
    times, axis = _parse_times(frame[time_col], src, time_col, time_unit)

    if format == "wide":
        reserved = {id_col, time_col, *static_in_frame, *([label_col] if label_col else [])}
        names = [c for c in frame.columns if c not in reserved]
        if channels is not None:
            absent = [c for c in channels if c not in names]
            if absent:
                raise LatentODEError(
                    f"channel(s) {absent} not in {src.what}; channel columns are {names}."
                )
            names = [str(c) for c in channels]
        if not names:
            raise LatentODEError(
                f"{src.what} has no channel columns besides {sorted(reserved)}; a wide "
                "file needs one column per measured variable (or use format='long')."
            )
        values = np.column_stack(
            [_parse_values(frame[c], src, f"column {c!r}") for c in names]
        )  # [N, C]
        static_long: dict[str, tuple] = {}
    else:
        variables = frame[variable_col]
        if variables.isna().any():
            pos = int(np.flatnonzero(variables.isna().to_numpy())[0])
            raise LatentODEError(
                f"{src.row(pos)}: missing variable name in column {variable_col!r}."
            )
        variables = variables.astype(str).to_numpy()
        vals = _parse_values(frame[value_col], src, f"column {value_col!r}")
        static_vars = [c for c in static_cols if c not in frame.columns]
        is_static = np.isin(variables, static_vars)
        static_long = {
            c: (ids[variables == c], times[variables == c], vals[variables == c])
            for c in static_vars
        }
        missing_static = [c for c in static_vars if len(static_long[c][0]) == 0]
        if missing_static:
            raise LatentODEError(
                f"static column(s) {missing_static} are neither columns nor variables in "
                f"{src.what}; columns are {list(frame.columns)}."
            )
        keep = ~is_static
        if channels is not None:
            present = set(np.unique(variables[keep]).tolist())
            absent = [c for c in channels if c not in present]
            if absent:
                raise LatentODEError(
                    f"variable(s) {absent} not in column {variable_col!r} of {src.what}; "
                    f"variables are {sorted(present)[:30]}."
                )
            keep &= np.isin(variables, list(channels))
            names = [str(c) for c in channels]
        else:
            names = sorted(np.unique(variables[keep]).tolist())
        if not names:
            raise LatentODEError(f"{src.what} has no measurement rows (only static variables).")
        ids_l, times_l, chan = ids[keep], times[keep], pd.Index(names).get_indexer(variables[keep])
        vals_l = vals[keep]
        keep_rows = np.flatnonzero(keep)
        ids, times, values, row_pos = _long_to_wide(
            ids_l, times_l, chan, vals_l, len(names), keep_rows, src, duplicates, names
        )
        frame = frame.iloc[row_pos]

    order = np.lexsort((times, ids))  # stable: file order within equal keys
    ids, times, values = ids[order], times[order], values[order]
    rows = np.arange(len(frame))[order]
    ids, times, values, rows = _merge_duplicate_times(
        ids, times, values, rows, src, duplicates, names
    )
    n_series_in = len(np.unique(ids))
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    unique_ids = ids[starts]

    static_names = list(static_cols)
    static = np.full((len(unique_ids), len(static_names)), np.nan)
    for j, c in enumerate(static_names):
        if c in static_in_frame:
            col = _parse_values(frame[c], src, f"static column {c!r}")[rows]
            static[:, j] = _per_series_constant(col, ids, unique_ids, starts, ends, c, src)
        else:
            sid, _, sval = static_long[c]
            static[:, j] = _static_from_long(sid, sval, unique_ids, c)
    label_name = label_col
    label = None
    if label_col is not None:
        col = _parse_values(frame[label_col], src, f"label column {label_col!r}")[rows]
        label = _per_series_constant(col, ids, unique_ids, starts, ends, label_col, src)
    elif label_table is not None:
        label_name = str(label_table.name)
        unknown = ~pd.Index(label_table.index).isin(list(unique_ids))
        if unknown.any():
            warnings.warn(
                f"{int(unknown.sum())} label(s) belong to ids not in the data and were not used.",
                stacklevel=3,
            )
        label = label_table.reindex(list(unique_ids)).to_numpy(dtype=np.float64)

    observed = ~np.isnan(values)
    series_obs = np.add.reduceat(observed.any(axis=1).astype(np.int64), starts) if len(ids) else []
    chan_obs = observed.sum(axis=0)
    empty_series = np.flatnonzero(np.asarray(series_obs) == 0)
    empty_chans = np.flatnonzero(chan_obs == 0)
    if (empty_series.size or empty_chans.size) and not drop_empty:
        parts = []
        if empty_series.size:
            shown = ", ".join(repr(_py(unique_ids[i])) for i in empty_series[:5])
            parts.append(f"{empty_series.size} series with no observed value ({shown})")
        if empty_chans.size:
            parts.append(f"channel(s) with no observed value: {[names[i] for i in empty_chans]}")
        raise LatentODEError(
            f"{src.what}: " + "; ".join(parts) + ". Pass drop_empty=True to drop them "
            "(with a warning), or choose channels with channels=."
        )
    if empty_chans.size:
        keep_c = np.setdiff1d(np.arange(len(names)), empty_chans)
        values = values[:, keep_c]
        names = [names[i] for i in keep_c]
        observed = observed[:, keep_c]
    # rows that observe no (kept) channel carry no data: leave them out of the series
    series_list = []
    skip = set(empty_series.tolist())
    for k, (a, b) in enumerate(zip(starts, ends)):
        if k in skip:
            continue
        obs_rows = observed[a:b].any(axis=1)
        series_list.append(
            Series(
                _py(unique_ids[k]),
                times[a:b][obs_rows],
                values[a:b][obs_rows],
                observed[a:b][obs_rows],
                static[k] if static_names else None,
                None if label is None or np.isnan(label[k]) else float(label[k]),
            )
        )
    if empty_series.size or empty_chans.size:
        warnings.warn(
            f"drop_empty=True: dropped {empty_series.size} of {n_series_in} series and "
            f"{empty_chans.size} channel(s) that had no observed value.",
            stacklevel=3,
        )
    if not series_list:
        raise LatentODEError(f"{src.what}: no series left with an observed value.")
    return SeriesDataset(
        series_list,
        names,
        axis,
        static_names=static_names,
        label_name=label_name,
        id_name=id_col,
        time_name=time_col,
    )


def _py(x):
    """numpy scalar → Python scalar (ids stay hashable and print nicely)."""
    return x.item() if isinstance(x, np.generic) else x


def _parse_ids(col: pd.Series, src: _Source, name: str, from_text: bool) -> np.ndarray:
    isna = col.isna().to_numpy()
    if isna.any():
        pos = int(np.flatnonzero(isna)[0])
        raise LatentODEError(
            f"{src.row(pos)}: missing series id in column {name!r} "
            f"({int(isna.sum())} row(s) without an id). Every row needs an id."
        )
    if from_text:
        text = col.astype(str).str.strip()
        if text.str.fullmatch(_INT_ID).all():
            return text.astype(np.int64).to_numpy()
        return text.to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(col.dtype):
        arr = col.to_numpy(dtype=np.float64)
        if np.all(arr == np.round(arr)) and np.all(np.isfinite(arr)):
            return arr.astype(np.int64)
        return arr
    return col.astype(str).to_numpy(dtype=object)


def _parse_times(col: pd.Series, src: _Source, name: str, unit: str) -> tuple[np.ndarray, TimeAxis]:
    if pd.api.types.is_bool_dtype(col.dtype):
        raise LatentODEError(f"time column {name!r} holds True/False, not times.")
    if pd.api.types.is_timedelta64_dtype(col.dtype):
        ns = col.to_numpy(dtype="timedelta64[ns]").astype(np.int64).astype(np.float64)
        times = np.where(col.isna().to_numpy(), np.nan, ns / UNIT_NANOSECONDS[unit])
        axis = TimeAxis(unit=unit)
    elif pd.api.types.is_datetime64_any_dtype(col.dtype):
        times, axis = datetimes_to_float(col, unit)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        times, axis = col.to_numpy(dtype=np.float64), TimeAxis(unit=unit)
    else:
        as_num = pd.to_numeric(col, errors="coerce")
        text_present = col.notna().to_numpy()
        num_ok = as_num.notna().to_numpy()
        if num_ok[text_present].all():
            times, axis = as_num.to_numpy(dtype=np.float64), TimeAxis(unit=unit)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    dt = pd.to_datetime(col, errors="coerce", format="mixed")
                except (ValueError, TypeError, OverflowError):
                    dt = pd.Series(pd.NaT, index=col.index)
            dt_ok = dt.notna().to_numpy()
            # report the rows that fail under the reading that fits most rows
            numeric_wins = num_ok.sum() > dt_ok.sum()
            bad = text_present & ~(num_ok if numeric_wins else dt_ok)
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                kind = "a number" if numeric_wins else "a date/time"
                raise LatentODEError(
                    f"{src.row(pos)}: cannot read time {col.iloc[pos]!r} in column {name!r} as "
                    f"{kind} ({int(bad.sum())} such row(s)); use numbers (e.g. hours) or ISO "
                    "datetimes like 2024-01-31 13:45, the same kind in every row."
                )
            times, axis = datetimes_to_float(dt, unit)
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
        raise LatentODEError(f"{src.row(pos)}: infinite time in column {name!r}.")
    return times, axis


def _parse_values(col: pd.Series, src: _Source, what: str) -> np.ndarray:
    """A column → float64 [N] (NaN = not observed); text or inf raise with row and value."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.astype(np.float64).to_numpy()
    if pd.api.types.is_numeric_dtype(col.dtype):
        arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        stripped = col.astype(object).where(col.notna(), None)
        arr = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(arr) & col.notna().to_numpy()
        if bad.any():
            text = col.astype(str).to_numpy()[bad]
            # spaces-only cells are empty, not text
            blank = np.char.strip(text.astype(str)) == ""
            if not blank.all():
                pos = int(np.flatnonzero(bad)[np.flatnonzero(~blank)[0]])
                raise LatentODEError(
                    f"{src.row(pos)}: {what} holds the text {col.iloc[pos]!r}, not a number "
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


def _long_to_wide(ids, times, chan, vals, n_chan, rows, src, duplicates, names):
    """Long rows (id, time, channel, value) → one row per (id, time) with [N, C] values.

    Returns ids [N], times [N], values [N, C] and the source row of each output row.
    """
    obs = ~np.isnan(vals)
    order = np.lexsort((chan, times, ids))
    ids, times, chan, vals, rows, obs = (
        ids[order],
        times[order],
        chan[order],
        vals[order],
        rows[order],
        obs[order],
    )
    new_key = np.r_[True, (ids[1:] != ids[:-1]) | (times[1:] != times[:-1])]
    key = np.cumsum(new_key) - 1
    n_keys = int(key[-1]) + 1
    out = np.full((n_keys, n_chan), np.nan)
    cell = key * n_chan + chan
    observed_cells = cell[obs]
    dup = np.r_[False, observed_cells[1:] == observed_cells[:-1]]
    obs_vals = vals[obs]
    if dup.any():
        obs_rows = rows[obs]
        first_of_cell = np.r_[True, ~dup[1:]]
        group = np.cumsum(first_of_cell) - 1
        reduced = _reduce_duplicates(
            obs_vals,
            group,
            duplicates,
            lambda g: _dup_error(src, obs_rows, group, g, names, chan[obs], ids[obs], times[obs]),
        )
        out.reshape(-1)[observed_cells[first_of_cell]] = reduced
    else:
        out.reshape(-1)[observed_cells] = obs_vals
    return ids[new_key], times[new_key], out, rows[new_key]


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
        return np.bincount(group, weights=vals, minlength=n) / np.bincount(group, minlength=n)
    if policy == "last":
        ends = np.r_[starts[1:], len(vals)] - 1
        return vals[ends]
    return vals[starts]  # "first", or "error" with no conflict (all equal)


def _dup_error(src, rows, group, g, names, chan, ids, times):
    members = np.flatnonzero(group == g)
    where = ", ".join(src.row(int(rows[m])) for m in members[:3])
    m0 = members[0]
    raise LatentODEError(
        f"conflicting duplicate rows for series {_py(ids[m0])!r} at time {times[m0]:g}, "
        f"channel {names[chan[m0]]!r} ({where}). Remove the duplicates or pass "
        "duplicates='mean', 'first' or 'last'."
    )


def _merge_duplicate_times(ids, times, values, rows, src, duplicates, names):
    """Merge rows with the same (id, time) (inputs sorted by id then time)."""
    same = np.r_[False, (ids[1:] == ids[:-1]) & (times[1:] == times[:-1])]
    if not same.any():
        return ids, times, values, rows
    first = ~same
    group = np.cumsum(first) - 1
    n = int(group[-1]) + 1
    merged = np.full((n, values.shape[1]), np.nan)
    for c in range(values.shape[1]):
        obs = ~np.isnan(values[:, c])
        if not obs.any():
            continue
        g, v = group[obs], values[obs, c]

        def conflict(k, g=g, c=c, obs=obs):
            members = np.flatnonzero(obs)[g == np.unique(g)[k]]
            where = ", ".join(src.row(int(rows[m])) for m in members[:3])
            m0 = members[0]
            raise LatentODEError(
                f"conflicting duplicate rows for series {_py(ids[m0])!r} at time "
                f"{times[m0]:g}, channel {names[c]!r} ({where}). Remove the duplicates or "
                "pass duplicates='mean', 'first' or 'last'."
            )

        uniq = np.unique(g)
        merged[uniq, c] = _reduce_duplicates(v, np.searchsorted(uniq, g), duplicates, conflict)
    return ids[first], times[first], merged, rows[first]


def _per_series_constant(col, ids, unique_ids, starts, ends, name, src) -> np.ndarray:
    """A per-row column that must be constant within each series (NaN = unknown)."""
    out = np.full(len(unique_ids), np.nan)
    obs = ~np.isnan(col)
    if not obs.any():
        return out
    seg = np.repeat(np.arange(len(starts)), ends - starts)
    lo = np.full(len(starts), np.inf)
    hi = np.full(len(starts), -np.inf)
    np.minimum.at(lo, seg[obs], col[obs])
    np.maximum.at(hi, seg[obs], col[obs])
    varies = np.flatnonzero(np.isfinite(lo) & (lo != hi))
    if varies.size:
        k = int(varies[0])
        raise LatentODEError(
            f"{name!r} must be constant within a series, but series {_py(unique_ids[k])!r} has "
            f"values {lo[k]:g} and {hi[k]:g} in {src.what}. Make it one value per series."
        )
    has = np.isfinite(lo)
    out[has] = lo[has]
    return out


def _static_from_long(sid, sval, unique_ids, name) -> np.ndarray:
    """A static variable given as long rows → one value per series (first observed)."""
    table = pd.Series(sval, index=pd.Index(sid)).dropna()
    conflicts = table.groupby(level=0).nunique()
    if (conflicts > 1).any():
        bad = conflicts.index[conflicts > 1][0]
        raise LatentODEError(
            f"static variable {name!r} has several values for series {_py(bad)!r}; "
            "a static covariate needs one value per series."
        )
    return table.groupby(level=0).first().reindex(list(unique_ids)).to_numpy(dtype=np.float64)


def _read_label_table(labels, id_col: str, label_col: str | None) -> pd.Series:
    """An id,label table (file or DataFrame) → Series of float labels indexed by id."""
    if isinstance(labels, pd.DataFrame):
        table, what = labels, "the labels DataFrame"
    else:
        p = Path(labels)
        if not p.exists():
            raise LatentODEError(f"labels file not found: {p}.")
        try:
            table = pd.read_csv(p, dtype={id_col: str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
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
    ids = _parse_ids(table[id_col], src, id_col, not isinstance(labels, pd.DataFrame))
    vals = _parse_values(table[col], src, f"label column {col!r}")
    out = pd.Series(vals, index=pd.Index([_py(i) for i in ids]), name=str(col))
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise LatentODEError(f"{what} has more than one label for id {dup!r}.")
    return out
