"""The Arrow fast path of read_csv: used for plain files, and never a different reading.

Each file is read twice, through Arrow where it can and through pandas' C parser alone
(``arrow_csv`` set to None, as without pyarrow); the datasets must be equal, and the
tests check which parser actually read the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import latentode as lo
from latentode import LatentODEError
from latentode.data import csv_file

pytest.importorskip("pyarrow")


def read(path, monkeypatch, arrow: bool, **kwargs):
    """(the dataset, or the error message; whether pandas' C parser was called), reading
    through Arrow where it can (``arrow``) or through the C parser alone."""
    calls = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: calls.append(1) or real(*a, **k))
    if not arrow:
        monkeypatch.setattr(csv_file, "arrow_csv", None)
    try:
        outcome = lo.read_csv(path, **kwargs)
    except LatentODEError as err:
        outcome = str(err)
    finally:
        monkeypatch.undo()
    return outcome, bool(calls)


def assert_equal(a: lo.SeriesDataset, b: lo.SeriesDataset) -> None:
    assert a.ids == b.ids and [type(i) for i in a.ids] == [type(i) for i in b.ids]
    assert a.channels == b.channels and a.time_axis == b.time_axis
    assert a.static_names == b.static_names
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.times, t.times)
        np.testing.assert_array_equal(s.mask, t.mask)
        np.testing.assert_array_equal(s.values, t.values)
        np.testing.assert_array_equal(s.static, t.static)


PLAIN = {
    "wide.csv": (
        'id,time,hr,"bp"\n007,0,60,\n007,1.5,NA,120\n8,0.25,n/a,1e2\n8,2,61,-0.5\n',
        {},
    ),
    "datetimes.csv": (
        "id,time,x\na,2024-01-01 00:00,1\na,2024-01-01 06:30,2\nb,2024-01-02T01:00,\nb,"
        "2024-01-02T02:00,3\n",
        {},
    ),
    "long.csv": (
        "id,time,variable,value\n1,0,HR,60\n1,0,BP,120\n1,1,HR,NaN\n2,3,Age,40\n2,4,HR,70\n",
        {"format": "long", "static_cols": ["Age"]},
    ),
    "offsets.csv": (
        "id,time,x\n1,2024-03-31T00:30:00+01:00,1\n1,2024-03-31T03:30:00+02:00,2\n",
        {},
    ),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_plain_files_are_read_by_arrow_exactly_as_by_the_c_parser(name, tmp_path, monkeypatch):
    text, kwargs = PLAIN[name]
    path = tmp_path / name
    path.write_text(text)
    fast, c_parser_called = read(path, monkeypatch, True, **kwargs)
    slow, _ = read(path, monkeypatch, False, **kwargs)
    assert not c_parser_called, "a plain file should not need the C parser"
    assert_equal(fast, slow)
    assert fast.n_observed == slow.n_observed > 0


# files where Arrow's reading could differ from the C parser's: the C parser reads them
DIFFERENT = {
    "spaces.csv": "id, time, x\n1, 0, 1\n1, 1, 2\n",  # skipinitialspace
    "hex.csv": "id,time,x\n1,0,0x10\n",  # Arrow's integers take 0x10 as 16
    "bool.csv": "id,time,x\n1,0,True\n1,1,False\n",  # Arrow: not a float column
    "multiline.csv": 'id,time,x\n1,0,"1\n2"\n',  # a line break inside a cell
    "short_row.csv": "id,time,x,y\n1,0,1\n1,1,2,3\n",  # the C parser fills NaN
}


@pytest.mark.parametrize("name", list(DIFFERENT))
def test_files_arrow_could_read_otherwise_go_to_the_c_parser(name, tmp_path, monkeypatch):
    path = tmp_path / name
    path.write_text(DIFFERENT[name])
    outcomes = []
    for arrow in (True, False):
        outcome, c_parser_called = read(path, monkeypatch, arrow)
        assert c_parser_called, "the C parser must read this file"
        outcomes.append(outcome)
    if isinstance(outcomes[0], str):
        assert outcomes[0] == outcomes[1]
    else:
        assert_equal(*outcomes)


@pytest.mark.parametrize("arrow", [True, False])
def test_hex_numbers_are_refused_whichever_parser_reads_them(arrow, tmp_path, monkeypatch):
    value, time = tmp_path / "value.csv", tmp_path / "time.csv"
    value.write_text("id,time,x\n1,0,0x10\n")
    time.write_text("id,time,x\n1,0x10,1\n")
    assert "column 'x' holds the text '0x10'" in read(value, monkeypatch, arrow)[0]
    assert "cannot read time '0x10'" in read(time, monkeypatch, arrow)[0]
