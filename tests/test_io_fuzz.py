"""Property tests: from_dataframe / read_csv on messy random frames.

Two properties, each for wide and long frames, from a DataFrame and from a CSV file:

1. the only exception that ever escapes is ``LatentODEError`` (no pandas, numpy or
   torch traceback), and no warning other than latentode's own;
2. when reading succeeds, the observed values are exactly those of the input: every
   finite value in the frame is in the dataset under its (id, time, channel) and nothing
   else is, with several values for one cell merged by the chosen duplicate policy.

The oracle below reads the input cell by cell with plain Python, independently of
latentode's vectorised parser.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentode as lo
from latentode import LatentODEError

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---- strategies -------------------------------------------------------------------------

_TEXT = st.sampled_from(["x", "abc def", "n/a?", "1,5"])  # text that is no number
_NUMERIC_TEXT = st.sampled_from(["1.5", "-2", "", " ", "007", "1e-3"])
_NUMBER = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, 1e-300, -7.25, 1e15, 0.1 + 0.2]),
    st.floats(width=64, allow_nan=False, allow_infinity=False),
)
_MISSING = st.sampled_from([None, np.nan])
_INF = st.sampled_from([np.inf, -np.inf])
ISO = ["2024-01-01", "2024-01-01 10:00", "2024-01-01T10:00:30", "2023-12-31 23:59:59.5"]
AWARE = ["2024-01-01 10:00+01:00", "2024-03-31 12:00+02:00", "2024-06-01 00:00:01+02:00"]


def _cells(draw, cell, n: int) -> list:
    return draw(st.lists(cell, min_size=n, max_size=n))


def id_cells(draw, dirty: bool, n: int) -> list:
    kinds = ["int", "str", "float"] + (["mixed"] if dirty else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return _cells(draw, st.integers(0, 3), n)
    if kind == "str":
        return _cells(draw, st.sampled_from(["a", "b", "007", "7", " c"]), n)
    if kind == "float":
        return _cells(draw, st.sampled_from([0.0, 1.0, 2.5] + ([np.nan] if dirty else [])), n)
    cell = st.one_of(st.integers(0, 2), st.sampled_from(["a", "007", ""]), _MISSING)
    return _cells(draw, cell, n)


def time_cells(draw, dirty: bool, n: int) -> tuple[list, str]:
    """Cells and the column kind ("float" kinds become a float64 column)."""
    kinds = ["float", "pool", "pool", "text", "iso", "aware", "stamp", "aware_stamp"]
    kinds += ["mixed"] * 3 * dirty
    kind = draw(st.sampled_from(kinds))
    if kind == "float":
        extra = st.one_of(_MISSING, _INF) if dirty else st.just(0.0)
        cell = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0]), extra)
    elif kind == "pool":  # few distinct times: many duplicate (id, time) keys
        cell = st.sampled_from([0.0, 0.5, 1.0, 2.0])
    elif kind == "text":
        cell = st.sampled_from(["0", "1.5", "-3", "2.25"] + (["abc", "", " "] if dirty else []))
    elif kind == "iso":
        cell = st.sampled_from(ISO + (AWARE if dirty else []))
    elif kind == "aware":
        cell = st.sampled_from(AWARE)
    elif kind == "aware_stamp":
        cell = st.sampled_from([pd.Timestamp(t, tz="Europe/Paris") for t in ISO])
    elif kind == "stamp":
        cell = st.sampled_from([pd.Timestamp(t) for t in ISO] + ([pd.NaT] if dirty else []))
    else:
        cell = st.one_of(st.sampled_from([0.0, 1.0, "2.5", "x", ISO[0], None]), _INF)
    return _cells(draw, cell, n), ("float" if kind in ("float", "pool") else "object")


def value_cells(draw, dirty: bool, n: int) -> tuple[list, str]:
    kind = draw(st.sampled_from(["float", "object"]))
    if not dirty:
        clean = [st.just(np.nan)] if kind == "float" else [_MISSING, _NUMERIC_TEXT]
        return _cells(draw, st.one_of(_NUMBER.map(float), *clean), n), kind
    # one or two bad cells among good ones: text or an infinity
    cells = _cells(draw, st.one_of(_NUMBER.map(float), st.just(np.nan)), n)
    bad = _INF if kind == "float" else st.one_of(_TEXT, _INF, _TEXT)
    for i in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2)):
        cells[i] = draw(bad)
    return cells, kind


def _column(cells: list, kind: str):
    """A float64 column for the "float" kind (as pandas would make it), else object."""
    if kind == "float":
        return np.array([np.nan if c is None else c for c in cells], dtype=np.float64)
    return pd.Series(cells, dtype=object)


@st.composite
def frames(draw, fmt: str) -> tuple[pd.DataFrame, dict]:
    """A random frame, clean enough to read about half of the time, and read arguments."""
    n = draw(st.integers(1, 12))  # (no rows at all: see test_io.py)
    channels = ["x", "y", "z"][: draw(st.integers(1, 3))] if fmt == "wide" else ["value"]
    columns = ["id", "time", *channels] + (["variable"] if fmt == "long" else [])
    # a clean frame, or one whose trouble is in a single column (so that it is that
    # column's problem that decides whether reading fails)
    messy = draw(st.sampled_from([None, None, *columns, "no column"]))
    data = {"id": _column(id_cells(draw, messy == "id", n), "object")}
    data["time"] = _column(*time_cells(draw, messy == "time", n))
    if fmt == "long":
        names = _cells(draw, st.sampled_from(["a", "b", "a", 1, 2.5, None]), n)
        if messy != "variable":
            names = [("a" if v is None else v) for v in names]
        data["variable"] = pd.Series(names, dtype=object)
    for name in channels:
        data[name] = _column(*value_cells(draw, messy == name, n))
    if messy == "no column":  # id, time or every channel column is missing
        gone = draw(st.sampled_from(["id", "time", "channels"]))
        keep = ["id", "time"] if gone == "channels" else [k for k in data if k != gone]
        data = {k: data[k] for k in keep}
    if draw(st.booleans()):  # as pandas would type the columns itself
        data = {k: (v.infer_objects() if isinstance(v, pd.Series) else v) for k, v in data.items()}
    kwargs = {
        "format": fmt,
        "duplicates": draw(st.sampled_from(["error", "mean", "first", "last"])),
        "drop_empty": draw(st.booleans()),
    }
    return pd.DataFrame(data, index=pd.RangeIndex(n)), kwargs


# ---- the oracle -------------------------------------------------------------------------

_BLANK = re.compile(r"\s*")
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")


def _missing(cell) -> bool:
    if cell is None or cell is pd.NaT:
        return True
    if isinstance(cell, float) and math.isnan(cell):
        return True
    return isinstance(cell, str) and _BLANK.fullmatch(cell) is not None


def _number(cell) -> float | None:
    """A cell's number, or None when the cell is no number."""
    if isinstance(cell, (bool, np.bool_)):
        return None
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return float(cell)
    if isinstance(cell, str):
        try:
            return float(cell)
        except ValueError:
            return None
    return None


def _time_key(cell):
    """A time as a comparable key: the float, or a datetime's UTC nanoseconds."""
    number = _number(cell)
    if number is not None:
        return number
    stamp = pd.Timestamp(cell)
    return ("datetime", stamp.as_unit("ns").value)


def _id_keys(cells: list, from_text: bool) -> list:
    """Ids as latentode must read them: text ids stay text (ints when all plain integers)."""
    present = [c for c in cells if not _missing(c)]
    if from_text:
        texts = [str(c).strip() for c in cells]
        if all(_INT_TEXT.fullmatch(t) for t in texts):
            return [float(int(t)) for t in texts]
        return texts
    if any(isinstance(c, str) for c in present):
        return [str(c).strip() for c in cells]
    return [float(c) for c in cells]


def expected_cells(df: pd.DataFrame, fmt: str, policy: str, from_text: bool) -> dict:
    """{(id, time, channel): value} that a successful read must give, from the raw cells."""
    ids = _id_keys(list(df["id"]), from_text)
    groups: dict = {}
    if fmt == "wide":
        channels = [c for c in df.columns if c not in ("id", "time")]
        cells = [
            (i, ch, df[ch].iloc[i]) for i in range(len(df)) for ch in channels
        ]  # file order within each (id, time, channel)
    else:
        cells = [(i, str(df["variable"].iloc[i]), df["value"].iloc[i]) for i in range(len(df))]
    for i, channel, cell in cells:
        if _missing(cell):
            continue
        value = _number(cell)
        assert value is not None and math.isfinite(value), f"text or inf {cell!r} was read"
        key = (ids[i], _time_key(df["time"].iloc[i]), channel)
        groups.setdefault(key, []).append(value)
    out = {}
    for key, values in groups.items():
        if policy == "error":
            assert len(set(values)) == 1, f"conflicting {key}: {values} read without error"
            out[key] = values[0]
        elif policy == "mean":
            out[key] = float(np.mean(values))
        else:
            out[key] = values[0] if policy == "first" else values[-1]
    return out


def dataset_cells(ds: lo.SeriesDataset) -> dict:
    long = ds.to_dataframe("long")
    text_ids = all(isinstance(i, str) for i in ds.ids)
    return {
        (i if text_ids else float(i), _time_key(t), str(v)): x
        for i, t, v, x in zip(long["id"], long["time"], long["variable"], long["value"])
    }


def check(read, df: pd.DataFrame, kwargs: dict, from_text: bool) -> None:
    """Run ``read``; only LatentODEError may escape; on success the cells must match."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = read()
        except LatentODEError as err:
            assert str(err)
            return
    for w in caught:  # only latentode's own drop_empty warning
        assert "drop_empty=True" in str(w.message), str(w.message)
    got = dataset_cells(ds)
    want = expected_cells(df, kwargs["format"], kwargs["duplicates"], from_text)
    assert set(got) == set(want)
    for key, value in want.items():
        if kwargs["duplicates"] == "mean":
            assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-300), key
        else:
            assert got[key] == value, key
    assert ds.n_observed == len(want)
    for s in ds:
        assert np.all(np.diff(s.times) > 0)


def raw_text(path: Path) -> pd.DataFrame:
    """The CSV's cells as the exact text in the file ('' when empty)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ---- properties -------------------------------------------------------------------------


@SETTINGS
@given(frames("wide"))
def test_wide_dataframes_only_raise_latentode_errors_and_keep_every_value(case):
    df, kwargs = case
    check(lambda: lo.from_dataframe(df, **kwargs), df, kwargs, from_text=False)


@SETTINGS
@given(frames("long"))
def test_long_dataframes_only_raise_latentode_errors_and_keep_every_value(case):
    df, kwargs = case
    check(lambda: lo.from_dataframe(df, **kwargs), df, kwargs, from_text=False)


def _csv_case(df: pd.DataFrame, kwargs: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        df.to_csv(path, index=False)
        if len(df.columns) == 0:
            return
        text = raw_text(path) if len(df) else df
        check(lambda: lo.read_csv(path, **kwargs), text, kwargs, from_text=True)


@SETTINGS
@given(frames("wide"))
def test_wide_csv_files_only_raise_latentode_errors_and_keep_every_value(case):
    _csv_case(*case)


@SETTINGS
@given(frames("long"))
def test_long_csv_files_only_raise_latentode_errors_and_keep_every_value(case):
    _csv_case(*case)


@settings(SETTINGS, max_examples=60)
@given(st.binary(max_size=300), st.sampled_from([",", ";"]))
def test_arbitrary_bytes_only_raise_latentode_errors(blob, sep):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob.csv"
        path.write_bytes(b"id,time,x\n" + blob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = lo.read_csv(path, sep=sep)
            except LatentODEError:
                return
        assert ds.n_observed > 0
