"""benchmarks/misses.py's arithmetic, and the real data sets it reads, against hand values."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import latentode as lo

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    """benchmarks/<name>.py by path (misses.py imports its siblings accuracy and harness)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            f"benchmarks_{name}", BENCHMARKS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


misses = _load("misses")


@pytest.mark.parametrize("covered, n", [(39, 49), (25, 32), (0, 10), (10, 10), (1718, 1977)])
def test_wilson_interval_solves_the_score_equation(covered, n):
    # the interval's ends are the proportions π with |p - π| = z sqrt(π (1 - π) / n):
    # the roots of (1 + z²/n) π² - (2p + z²/n) π + p² = 0
    z, p = 1.96, covered / n
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    roots = np.sort(np.roots([a, b, c]).real)
    assert misses.wilson(covered, n) == pytest.approx(tuple(roots), abs=1e-9)


def test_position_splits_scored_points_by_the_context_span():
    context = pd.DataFrame({"series_id": ["a", "a", "b"], "time": [1.0, 3.0, 5.0]})
    scored = pd.DataFrame({"series_id": ["a", "a", "a", "b", "b"], "time": [0.5, 2, 4, 5, 6]})
    where = misses._position(context, scored)
    assert list(where) == ["before", "between", "after", "between", "after"]


def test_coverage_pools_the_seeds_counts(tmp_path):
    records = [
        {"set": "s", "task": "interp", "method": "latentode", "coverage": 0.75, "n_scored": 8},
        {"set": "s", "task": "interp", "method": "latentode", "coverage": 0.5, "n_scored": 4},
        {"set": "s", "task": "interp", "method": "linear", "coverage": None, "n_scored": 8},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"records": records}))
    row = misses.coverage_table([path]).splitlines()[-1]
    low, high = misses.wilson(8, 12)
    assert row == f"| s | interp | 8 / 12 | 0.667 | {low:.2f}-{high:.2f} |"


@pytest.mark.parametrize(
    "folder, name, n_series, channels",
    [
        ("check_real", "pbcseq", 312, 7),
        ("check_real", "dietox", 72, 2),
        ("check_real", "glucose", 36, 1),
        ("check_real", "fatigue", 21, 1),
        ("check_real", "btheb", 100, 1),
        ("held_real", "igf", 10, 1),
        ("held_real", "tetracycline", 20, 1),
        ("held_real", "blackmore", 231, 1),
        ("held_real", "utidata", 72, 1),
        ("held_real", "early", 103, 1),
        ("held_real", "ratweight", 27, 1),
        ("held_real", "produc", 48, 4),
        ("held_real", "grunfeld", 10, 3),
        ("held_real2", "sitka", 79, 1),
        ("held_real2", "vocab", 64, 1),
        ("held_real2", "egsingle", 400, 1),
        ("held_real2", "nlswork", 400, 3),
        ("held_real2", "cigarette", 48, 3),
        ("held_real2", "wagepan", 400, 2),
        ("held_real2", "worldbank", 215, 2),
        ("held_real5", "eeg", 32, 1),
        ("held_real5", "visnights", 20, 1),
        ("held_real5", "accommodation", 8, 3),
        ("held_real5", "contagious", 51, 7),
        ("held_real5", "weather", 5, 3),
        ("held_real5", "crime", 90, 3),
        ("held_real5", "pwt", 22, 4),
    ],
)
def test_check_sets_read_whole(folder, name, n_series, channels):
    path = BENCHMARKS / "data" / folder / f"{name}.csv"
    ds = lo.read_csv(path, id_col="series_id", time_col="time")
    raw = pd.read_csv(path, dtype={"series_id": str})
    assert (len(ds), len(ds.channels)) == (n_series, channels)
    # every value of the file is in the dataset: count and sum per channel
    for c in ds.channels:
        got = np.concatenate(
            [s.values[s.mask[:, ds.channels.index(c)], ds.channels.index(c)] for s in ds]
        )
        assert len(got) == raw[c].notna().sum()
        assert got.sum() == pytest.approx(raw[c].sum(), rel=1e-12)
