"""A CSV file → a pandas DataFrame, before any validation of its values.

:func:`read_frame` parses a whole file with Arrow's multithreaded CSV reader when
pyarrow is installed and the file is plain (single-character delimiter, a header of
distinct non-empty names, rows of equal length, UTF-8, no cell that starts with a
space): about twice as fast as pandas' C parser on a 1,000,000-row long file. Any other
file, and any file Arrow refuses, is parsed by pandas' C parser, whose reading the Arrow
path reproduces (text ids and variable names, pandas' missing-value strings, times
left as text): both give the same dataset, and every message about a malformed file
comes from the C parser's reading (:func:`csv_errors`, :func:`check_header`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from latentode.data.columns import ColumnSpec
from latentode.errors import LatentODEError

try:  # optional: pandas' C parser reads every file without it
    import pyarrow
    import pyarrow.compute
    import pyarrow.csv as arrow_csv
except ImportError:  # pragma: no cover - depends on the environment
    arrow_csv = None

#: the cells pandas reads as missing by default (``pandas.read_csv``'s ``na_values``)
PANDAS_NA_STRINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip


def read_frame(path: Path, spec: ColumnSpec, sep: str) -> pd.DataFrame:
    """The rows of the CSV file ``path`` as a DataFrame (ids and variable names as text).

    Raises:
        LatentODEError: a file pandas cannot parse, or a header with an empty or
            repeated name.
    """
    frame = _read_with_arrow(path, spec, sep)
    if frame is None:
        with csv_errors(path):
            frame = pd.read_csv(path, **csv_options(spec, sep))
    check_header(path, frame.columns, sep)
    return frame


def _read_with_arrow(path: Path, spec: ColumnSpec, sep: str) -> pd.DataFrame | None:
    """The file read by Arrow as pandas' C parser would read it, or None where the two
    could differ (then the C parser reads it, and reports what is wrong).

    Ids, variable names and times are read as text (categories) and every other column
    as float64, so that Arrow's type inference (which reads ``0x10`` as 16 and ISO dates
    as dates) never applies; a cell that is not a number makes Arrow fail, and the C
    parser read the file.
    """
    if arrow_csv is None or len(sep) != 1:
        return None
    parse = arrow_csv.ParseOptions(delimiter=sep)
    text_cols = {spec.id_col, spec.time_col}
    if spec.format == "long":
        text_cols.add(spec.variable_col)
    # text as categories: the reader encodes each distinct text once, and so do the checks
    as_text, number = pyarrow.dictionary(pyarrow.int32(), pyarrow.string()), pyarrow.float64()
    try:
        small = arrow_csv.ReadOptions(block_size=1 << 16)
        with arrow_csv.open_csv(path, read_options=small, parse_options=parse) as header:
            names = header.schema.names
        if len(set(names)) != len(names) or not all(n.strip() and n[0] != " " for n in names):
            return None  # pandas would rename or strip them; check_header explains
        table = arrow_csv.read_csv(
            path,
            parse_options=parse,
            convert_options=arrow_csv.ConvertOptions(
                column_types={n: as_text if n in text_cols else number for n in names},
                null_values=list(PANDAS_NA_STRINGS),
                strings_can_be_null=True,
            ),
        )
        for name in text_cols & set(names):
            if _unlike_c_parser([chunk.dictionary for chunk in table.column(name).chunks]):
                return None
    except (pyarrow.ArrowException, OSError, ValueError):  # malformed, or not UTF-8
        return None
    return table.to_pandas()


def _unlike_c_parser(texts: list) -> bool:
    """Whether the C parser could read these distinct texts (Arrow arrays) otherwise: a
    text that starts with a space (the C parser skips spaces after a delimiter) or holds a
    line break (from a quote that never closes, or a quoted multi-line cell)."""
    if not texts:
        return False
    found = pyarrow.compute.match_substring_regex(pyarrow.concat_arrays(texts), "^ |[\r\n]")
    return pyarrow.compute.any(found).as_py() is True


def check_path(path: str | Path) -> Path:
    """``path`` as a Path, or an error if it is missing or a folder."""
    path = Path(path)
    if not path.exists():
        raise LatentODEError(f"file not found: {path}. Check the path (cwd is {Path.cwd()}).")
    if path.is_dir():
        raise LatentODEError(f"{path} is a folder; pass the CSV file inside it.")
    return path


def csv_options(spec: ColumnSpec, sep: str) -> dict:
    """Keyword arguments of ``pandas.read_csv`` for a data file."""
    # ids and variable names are text: "007" stays "007", "1" does not become 1.0; as
    # Python objects, which the parser makes ~2x faster than pandas' Arrow-backed "str"
    text_cols = {
        spec.id_col: object,
        **({spec.variable_col: object} if spec.format == "long" else {}),
    }
    # index_col=False: rows longer than the header must not shift every column by one
    return {"sep": sep, "dtype": text_cols, "skipinitialspace": True, "index_col": False}


@contextmanager
def csv_errors(path: Path) -> Iterator[None]:
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


def check_header(path: Path, columns: pd.Index, sep: str) -> None:
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
