"""CSV and DataFrame input: validate once at the boundary, then build a SeriesDataset.

Two layouts:

- wide: one row per (id, time), one column per channel; an empty cell or NaN means
  "not observed".
- long: one row per measurement with a variable-name column and a value column.

The file or frame is read here and built into a dataset by
:func:`latentode.data.build.build_dataset`. Every problem is reported as a
:class:`~latentode.errors.LatentODEError` naming the file, column, row or series and
what to do. No observed value is ever dropped
silently: dropping needs an explicit argument (``channels=``, ``drop_empty=True``,
``duplicates=``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from latentode.data.build import build_dataset
from latentode.data.columns import ColumnSpec
from latentode.data.dataset import SeriesDataset
from latentode.data.labels import read_label_table
from latentode.data.parse import (
    LeadingSpace,
    Source,
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
        sep: the field delimiter. Spaces after it are skipped (``1, 2.5`` reads as
            ``1,2.5``).

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
                options = _csv_options(spec, sep, categories=True, skip_spaces=skip_spaces)
                frame = pd.read_csv(path, **options)
                frame = _variables_as_text(frame, path, spec, sep, skip_spaces)
            if not skip_spaces and any(str(c).startswith(" ") for c in frame.columns):
                raise LeadingSpace
            _check_header(path, frame.columns, sep)
            src = Source(path.name, frame.index, spaces_kept=not skip_spaces)
            return build_dataset(frame, src, spec, label_table, ids_from_text=True)
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
    options = _csv_options(spec, sep, skip_spaces=skip_spaces)
    names = pd.read_csv(path, usecols=[col], **options)[col]
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
    src = Source(None, df.index)
    return build_dataset(frame, src, spec, _label_table(spec), ids_from_text=False)


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
