"""A frame of rows, validated once, becomes a SeriesDataset.

:func:`build_dataset` is what :func:`latentode.read_csv`, :func:`latentode.from_dataframe`
and :func:`latentode.data.streaming.iter_csv` share once they hold a pandas frame: it
checks the columns against the :class:`~latentode.data.columns.ColumnSpec`, parses ids
and times (:mod:`latentode.data.parse`), puts a wide frame's rows or a long frame's
measurements on one grid row per (id, time) (:mod:`latentode.data.merging`), checks the
per-series statics and labels, and refuses series or channels with nothing observed
unless ``drop_empty`` asks to drop them.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import Series, SeriesDataset
from latentode.data.labels import match_labels
from latentode.data.merging import MergeContext, merge_rows, per_series_constant, to_grid
from latentode.data.parse import (
    Source,
    as_python,
    parse_ids,
    parse_times,
    parse_values,
    parse_variables,
)
from latentode.errors import LatentODEError, warn_user


def build_dataset(
    frame: pd.DataFrame,
    src: Source,
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
    frame.columns = [str(c) for c in frame.columns]
    _check_columns(frame, src, spec)
    (id_code, id_values), (times, axis, ranks) = _parse_keys(frame, src, spec, ids_from_text)
    keys = (id_code, id_values, times, axis, ranks)
    if spec.format == "wide":
        grid, static_long = _wide_grid(frame, src, spec, *keys), {}
    else:
        grid, static_long = _long_grid(frame, src, spec, *keys, whole_file=whole_file)
    ids, times, values, observed, ctx, per_channel = grid
    names = ctx.names

    # per-series static covariates and labels, checked over every row of the series
    static_cols, label_col = list(spec.static_cols), spec.label_col
    static = np.full((len(id_values), len(static_cols)), np.nan)  # [K, S]
    for j, c in enumerate(static_cols):
        if c in static_long:
            rows, col = static_long[c]
            static[:, j] = per_series_constant(col, id_code[rows], rows, c, ctx)
        else:
            col = parse_values(frame[c], src, f"static column {c!r}")
            static[:, j] = per_series_constant(col, id_code, None, c, ctx)
    label_name, label = label_col, None
    if label_col is not None:
        col = parse_values(frame[label_col], src, f"label column {label_col!r}")
        label = per_series_constant(col, id_code, None, label_col, ctx)
    elif label_table is not None:
        label_name = str(label_table.name)
        label = match_labels(label_table, id_values)

    counts = np.bincount(ids, minlength=len(id_values))  # [K] observed rows per series
    empty_series = np.flatnonzero(counts == 0)
    empty_chans = np.flatnonzero(per_channel == 0)
    if not whole_file:
        empty_chans = empty_chans[:0]
    if (empty_series.size or empty_chans.size) and not spec.drop_empty:
        parts = []
        if empty_series.size:
            shown = ", ".join(repr(as_python(id_values[i])) for i in empty_series[:5])
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
        warn_user(
            f"drop_empty=True: dropped {empty_series.size} of {len(id_values)} series and "
            f"{empty_chans.size} channel(s) that had no observed value.",
        )
    if empty_series.size == len(id_values) and whole_file:
        raise LatentODEError(f"{src.what}: no series left with an observed value.")
    # Python lists, not numpy scalars, in the loop over series (~3x faster for 5,000)
    bounds = np.r_[0, np.cumsum(counts)].tolist()
    id_list = [as_python(i) for i in id_values.tolist()]
    static_rows = list(static) if static_cols else [None] * len(id_values)
    labels = [None] * len(id_values)
    if label is not None:
        labels = [None if math.isnan(v) else v for v in label.astype(float).tolist()]
    series_list = [
        Series(
            id_list[k],
            times[bounds[k] : bounds[k + 1]],
            values[bounds[k] : bounds[k + 1]],
            observed[bounds[k] : bounds[k + 1]],
            static_rows[k],
            labels[k],
        )
        for k in np.flatnonzero(counts).tolist()
    ]
    long_names = {"variable_name": spec.variable_col, "value_name": spec.value_col}
    return SeriesDataset(
        series_list,
        names,
        axis,
        static_names=static_cols,
        label_name=label_name,
        id_name=spec.id_col,
        time_name=spec.time_col,
        **(long_names if spec.format == "long" else {}),
    )


def _check_columns(frame: pd.DataFrame, src: Source, spec: ColumnSpec) -> None:
    """Refuse repeated column names, columns ``spec`` names that ``frame`` lacks (with a
    hint at the delimiter when the file has one column) and a frame with no rows."""
    repeated = list(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if repeated:
        raise LatentODEError(
            f"{src.what} has more than one column named {repeated}; give every column its own name."
        )
    roles = spec.roles()
    if spec.label_col is not None:
        roles["label_col"] = spec.label_col
    absent = {arg: c for arg, c in roles.items() if c not in frame.columns}
    if spec.format == "wide":  # long format may name static variables instead
        absent.update(
            {f"static_cols ({c!r})": c for c in spec.static_cols if c not in frame.columns}
        )
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


def _wide_grid(frame, src: Source, spec: ColumnSpec, id_code, id_values, times, axis, ranks):
    """A wide frame's rows [N] → (ids [R], times [R], values [R, C], observed [R, C],
    the MergeContext that names the C channels, observed values per channel [C]), one
    row per (id, time) that observes something; the channels are the columns no other
    role takes."""
    reserved = {spec.id_col, spec.time_col, *spec.static_cols}
    if spec.label_col is not None:
        reserved.add(spec.label_col)
    names = [c for c in frame.columns if c not in reserved]
    if spec.channels is not None:
        absent = [c for c in spec.channels if c not in names]
        if absent:
            raise LatentODEError(
                f"channel(s) {absent} not in {src.what}; channel columns are {names}."
            )
        names = list(spec.channels)
    if not names:
        raise LatentODEError(
            f"{src.what} has no channel columns besides {sorted(reserved)}; a wide "
            "file needs one column per measured variable (or use format='long')."
        )
    values = np.column_stack([parse_values(frame[c], src, f"column {c!r}") for c in names])
    ctx = MergeContext(src, names, id_values, axis, spec.duplicates)
    ids, times, values, observed = merge_rows(id_code, times, values, ctx, ranks)
    # rows that observe no channel carry no data: leave them out of the series
    has_obs = observed.any(axis=1)
    if not has_obs.all():
        ids, times = ids[has_obs], times[has_obs]
        values, observed = values[has_obs], observed[has_obs]
    return ids, times, values, observed, ctx, np.count_nonzero(observed, axis=0)


def _long_grid(
    frame, src: Source, spec: ColumnSpec, id_code, id_values, times, axis, ranks, *, whole_file
):
    """A long frame's measurements [N] → the grid of :func:`_wide_grid`, and the static
    variables given as rows: {name: (rows [M], values [M])}. The channels are the
    variables (sorted by name unless ``spec.channels`` orders them), less the static ones."""
    var_code, var_names = parse_variables(frame[spec.variable_col], src, spec.variable_col)
    vals = parse_values(frame[spec.value_col], src, f"column {spec.value_col!r}")  # [N]
    static_vars = [c for c in spec.static_cols if c not in frame.columns]
    missing_static = [c for c in static_vars if c not in var_names]
    if missing_static:
        raise LatentODEError(
            f"static column(s) {missing_static} are neither columns nor variables in "
            f"{src.what}; columns are {list(frame.columns)}."
        )
    static_long = {}
    for c in static_vars:
        rows = np.flatnonzero(var_code == var_names.index(c))
        static_long[c] = (rows, vals[rows])
    measured = [v for v in var_names if v not in static_vars]
    if spec.channels is not None:
        absent = [c for c in spec.channels if c not in measured]
        if absent and whole_file:  # a block of a file may lack some variables
            raise LatentODEError(
                f"variable(s) {absent} not in column {spec.variable_col!r} of {src.what}; "
                f"variables are {sorted(measured)[:30]}."
            )
        names = list(spec.channels)
    else:
        names = sorted(measured)
    if not names:
        raise LatentODEError(f"{src.what} has no measurement rows (only static variables).")
    position = {n: j for j, n in enumerate(names)}
    chan_of_var = np.array([position.get(v, -1) for v in var_names], dtype=np.int64)
    chan = chan_of_var[var_code]  # [N], -1 = not a channel
    ctx = MergeContext(src, names, id_values, axis, spec.duplicates)
    use = (chan >= 0) & ~np.isnan(vals)  # [N] rows that observe a channel
    if use.all():
        cells = (id_code, times, chan, vals, None)
    else:
        rows = np.flatnonzero(use)
        cells = (id_code[rows], times[rows], chan[rows], vals[rows], rows)
        ranks = None if ranks is None else ranks.take(rows)
    ids, times, values, observed = to_grid(*cells, ctx, ranks)
    # every row of the grid holds a cell; a channel with a cell has a value
    per_channel = np.bincount(cells[2], minlength=len(names))  # [C] cells
    return (ids, times, values, observed, ctx, per_channel), static_long


#: From this many rows on, ids and times are parsed in two threads at once.
THREADED_PARSE_MIN_ROWS = 100_000


def _parse_keys(frame: pd.DataFrame, src: Source, spec: ColumnSpec, ids_from_text: bool):
    """(``parse_ids``, ``parse_times``) of every row: (code [N], ids [K]) and (times [N],
    axis, TimeRanks or None). On a large frame the two run in two threads: the time grouping
    (Arrow, numpy) runs outside the GIL while the ids' holds it, so together they take
    ~the longer one. An error in the ids is raised first, as in a sequential parse. The two
    share no state; the times' parse silences pandas' datetime-format warnings with
    ``warnings.catch_warnings`` (process-wide), and the ids' parse emits none."""
    ids, times = frame[spec.id_col], frame[spec.time_col]

    def parse_the_ids():
        return parse_ids(ids, src, spec.id_col, ids_from_text)

    def parse_the_times():
        return parse_times(times, src, spec.time_col, spec.time_unit)

    if len(frame) < THREADED_PARSE_MIN_ROWS:
        return parse_the_ids(), parse_the_times()
    with ThreadPoolExecutor(max_workers=1) as pool:
        later = pool.submit(parse_the_times)
        keys = parse_the_ids()  # should this raise, leaving the block waits for the times
        return keys, later.result()
