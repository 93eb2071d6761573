"""CSV and DataFrame input: validate once at the boundary, then build a SeriesDataset.

Two layouts:

- wide: one row per (id, time), one column per channel; an empty cell or NaN means
  "not observed".
- long: one row per measurement with a variable-name column and a value column.

Columns are parsed by :mod:`latentode.data.parse` and rows merged by
:mod:`latentode.data.merging`. Every problem is reported as a
:class:`~latentode.errors.LatentODEError` naming the file, column, row or series and
what to do. No observed value is ever dropped
silently: dropping needs an explicit argument (``channels=``, ``drop_empty=True``,
``duplicates=``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import Series, SeriesDataset
from latentode.data.labels import match_labels, read_label_table
from latentode.data.merging import MergeContext, merge_rows, per_series_constant, to_grid
from latentode.data.parse import (
    LeadingSpace,
    Source,
    as_python,
    parse_ids,
    parse_times,
    parse_values,
    parse_variables,
)
from latentode.errors import LatentODEError


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
    label_table = _label_table(spec)
    # Unless its first lines have spaces after delimiters, a file is parsed first with them
    # kept (pandas parses ~20% faster), then, if a name or a text value begins with a space
    # or anything is wrong, skipping them: the same data, or the error as that reading names.
    keep_first = len(sep) == 1 and not sep.isspace() and not _spaced_head(path, sep)
    for skip_spaces in (False, True) if keep_first else (True,):
        try:
            with _csv_errors(path):
                frame = pd.read_csv(path, **_csv_options(spec, sep, True, skip_spaces))
                frame = _variables_as_text(frame, path, spec, sep, skip_spaces)
            if not skip_spaces and any(str(c).startswith(" ") for c in frame.columns):
                raise LeadingSpace
            _check_header(path, frame.columns, sep)
            src = Source(path.name, frame.index, spaces_kept=not skip_spaces)
            return _build(frame, src, spec, label_table, ids_from_text=True)
        except (LeadingSpace, LatentODEError):
            if skip_spaces:  # the last reading: returned above, or raises here
                raise


#: bytes at the start of a file that :func:`_spaced_head` looks at
HEAD_BYTES = 1 << 16


def _spaced_head(path: Path, sep: str) -> bool:
    """Whether a space follows a delimiter or starts a line in the first
    :data:`HEAD_BYTES` of the file (such files tend to have them throughout)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:  # the reading reports it
        return True
    return head[:1] == b" " or (sep + " ").encode() in head or b"\n " in head


def _check_path(path: str | Path) -> Path:
    """``path`` as a Path, or an error if it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise LatentODEError(f"file not found: {path}. Check the path (cwd is {Path.cwd()}).")
    if path.is_dir():
        raise LatentODEError(f"{path} is a folder; pass the CSV file inside it.")
    return path


def _csv_options(
    spec: ColumnSpec, sep: str, categories: bool = False, skip_spaces: bool = True
) -> dict:
    """Keyword arguments of ``pandas.read_csv`` for a data file.

    Ids and long format's variable names are read as text: "007" stays "007", "1" does
    not become 1.0. Ids as Python objects, which the parser makes ~2x faster than an
    explicit Arrow-backed "str". Variable names as Python objects too, or with
    ``categories`` as a categorical whose categories are the names' text: the parser
    then hands over codes into a few names instead of a string per row (1,000,000 rows:
    ~0.015 s less to read and to group); categories that pandas reads as numbers are
    read again as text (:func:`_variables_as_text`). Blocks of a file read in parts
    would each have their own categories, so :func:`latentode.data.streaming.iter_csv`
    keeps objects. ``skip_spaces``: skip the spaces after delimiters (``skipinitialspace``).
    """
    variables = "category" if categories else object
    text_cols = {spec.id_col: object}
    if spec.format == "long":
        text_cols[spec.variable_col] = variables
    # index_col=False: rows longer than the header must not shift every column by one
    return {"sep": sep, "dtype": text_cols, "skipinitialspace": skip_spaces, "index_col": False}


def _variables_as_text(
    frame: pd.DataFrame, path: Path, spec: ColumnSpec, sep: str, skip_spaces: bool
) -> pd.DataFrame:
    """``frame`` with a long file's variable names as text: pandas turns categories that
    all read as numbers or booleans into those ("01" would become 1), so such a column
    is read again as Python objects."""
    col = spec.variable_col
    if spec.format != "long" or col not in frame.columns:
        return frame
    dtype = frame[col].dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype):
        return frame
    names = pd.read_csv(path, usecols=[col], **_csv_options(spec, sep, False, skip_spaces))[col]
    return frame.assign(**{col: names.to_numpy()})


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
    return _build(frame, Source(None, df.index), spec, _label_table(spec), ids_from_text=False)


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
    return read_label_table(spec.labels, spec.id_col, spec.label_col)


def _build(
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

    (id_code, id_values), (times, axis, rank) = _parse_keys(frame, src, spec, ids_from_text)
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
            [parse_values(frame[c], src, f"column {c!r}") for c in names]
        )  # [N, C]
        ctx = MergeContext(src, names, id_values, axis, duplicates)
        ids, times, values, observed = merge_rows(id_code, times, values, ctx, rank)
        # rows that observe no channel carry no data: leave them out of the series
        has_obs = observed.any(axis=1)
        if not has_obs.all():
            ids, times = ids[has_obs], times[has_obs]
            values, observed = values[has_obs], observed[has_obs]
        per_channel = np.count_nonzero(observed, axis=0)  # [C] observed values
    else:
        var_code, var_names = parse_variables(frame[variable_col], src, variable_col)
        vals = parse_values(frame[value_col], src, f"column {value_col!r}")  # [N]
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
        ctx = MergeContext(src, names, id_values, axis, duplicates)
        use = (chan >= 0) & ~np.isnan(vals)  # [N] rows that observe a channel
        if use.all():
            cells = (id_code, times, chan, vals, None)
            ids, times, values, observed = to_grid(*cells, ctx, rank)
        else:
            rows = np.flatnonzero(use)
            cells = (id_code[rows], times[rows], chan[rows], vals[rows], rows)
            ids, times, values, observed = to_grid(
                *cells, ctx, None if rank is None else rank.take(rows)
            )
        # every row of the grid holds a cell; a channel with a cell has a value
        per_channel = np.bincount(cells[2], minlength=len(names))  # [C] cells

    # per-series static covariates and labels, checked over every row of the series
    static = np.full((len(id_values), len(static_cols)), np.nan)  # [K, S]
    for j, c in enumerate(static_cols):
        if c in static_in_frame:
            col = parse_values(frame[c], src, f"static column {c!r}")
            static[:, j] = per_series_constant(col, id_code, None, c, ctx)
        else:
            rows, col = static_long[c]
            static[:, j] = per_series_constant(col, id_code[rows], rows, c, ctx)
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
        warnings.warn(
            f"drop_empty=True: dropped {empty_series.size} of {len(id_values)} series and "
            f"{empty_chans.size} channel(s) that had no observed value.",
            stacklevel=3,
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


#: From this many rows on, ids and times are parsed in two threads at once.
THREADED_PARSE_MIN_ROWS = 100_000


def _parse_keys(frame: pd.DataFrame, src: Source, spec: ColumnSpec, ids_from_text: bool):
    """(``parse_ids``, ``parse_times``) of every row: (code [N], ids [K]) and (times [N],
    axis, rank). On a large frame the two run in two threads: the time column's grouping
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
