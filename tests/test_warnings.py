"""latentode's warnings point at the user's line, however deep inside the package they
arise (a generator, a helper, a thread-policy wrapper in between)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import latentode as lo

HERE = Path(__file__).name

EMPTY = pd.DataFrame(
    {
        "id": ["a", "a", "b", "c", "c"],
        "time": [0, 1, 0, 0, 1],
        "x": [1.0, np.nan, np.nan, 3.0, 4.0],
        "y": [np.nan, 2.0, np.nan, np.nan, 5.0],
        "never": np.nan,
    }
)


def where(fn) -> list[tuple[str, str]]:
    """(file name, message start) of each warning ``fn()`` emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [(Path(w.filename).name, str(w.message)[:20]) for w in caught]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    data = tmp_path / "empty.csv"
    EMPTY.to_csv(data, index=False)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["a", "zz"], "label": [1, 0]}).to_csv(labels, index=False)
    mixed = tmp_path / "mixed_ids.csv"
    frame = pd.DataFrame({"id": [1, 1, "x7", "x7"], "time": [0, 1, 0, 1], "v": [1.0, 2, 3, 4]})
    frame.to_csv(mixed, index=False)
    return {"data": data, "labels": labels, "mixed": mixed}


def test_drop_empty_warns_at_the_caller(files):
    got = where(lambda: lo.from_dataframe(EMPTY, drop_empty=True))
    assert got == [(HERE, "drop_empty=True: dro")]
    got = where(lambda: lo.read_csv(files["data"], drop_empty=True))
    assert got == [(HERE, "drop_empty=True: dro")]


def test_unused_labels_warn_at_the_caller(files):
    got = where(lambda: lo.read_csv(files["data"], drop_empty=True, labels=files["labels"]))
    assert sorted(got) == [(HERE, "1 label(s) belong to"), (HERE, "drop_empty=True: dro")]


def test_iter_csv_s_warnings_reach_the_caller_through_the_generator(files):
    def chunks(path, **kw):
        return list(lo.iter_csv(path, series_per_chunk=1, rows_per_read=2, **kw))

    both = {"drop_empty": True, "labels": files["labels"], "channels": ["x", "y"]}
    got = where(lambda: chunks(files["data"], **both))
    assert {name for name, _ in got} == {HERE}
    assert any(msg.startswith("1 label(s)") for _, msg in got)
    assert where(lambda: chunks(files["mixed"])) == [(HERE, "lines 4-5 of mixed_i")]
