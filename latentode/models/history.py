"""The per-epoch training history, read from the CSV logs that ``fit`` writes.

``fit`` logs to ``<log_dir>/logs/metrics.csv`` (one row per step, plus validation rows).
A resumed run first moves the earlier attempts' file aside as ``metrics.001.csv``,
``metrics.002.csv``... (Lightning's CSV logger would delete it); the history is all of
them in order, where a step logged twice (by a killed attempt and again by its resume)
counts once, from the latest attempt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METRICS = "metrics.csv"


def set_aside(logs: Path) -> None:
    """Rename ``logs/metrics.csv`` to the next free ``metrics.NNN.csv`` (before a resume)."""
    current = logs / METRICS
    if not current.is_file():
        return
    taken = [int(f.name.split(".")[1]) for f in logs.glob("metrics.[0-9][0-9][0-9].csv")]
    current.rename(logs / f"metrics.{max(taken, default=0) + 1:03d}.csv")


def read_history(path: str | Path) -> pd.DataFrame:
    """Per-epoch means of the logged metrics (one row per epoch, an ``epoch`` column).

    Args:
        path: a ``metrics.csv`` file, or a folder holding one (searched recursively;
            the last found, with its earlier attempts' files).

    Returns:
        An empty DataFrame when there is no log.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        found = sorted(path.rglob(METRICS))
        if not found:
            return pd.DataFrame()
        logs = found[-1].parent
        files = [*sorted(logs.glob("metrics.[0-9][0-9][0-9].csv")), found[-1]]
    # on_bad_lines: a line cut short by a kill mid-write
    parts = [pd.read_csv(f, on_bad_lines="skip") for f in files if f.stat().st_size]
    if not parts:
        return pd.DataFrame()
    raw = pd.concat(parts, ignore_index=True)
    if "epoch" not in raw.columns:
        return raw
    if "step" in raw.columns:  # keep the latest row of each (step, kind of row)
        kind = raw.notna().to_numpy() @ (1 << np.arange(raw.shape[1], dtype=np.int64))
        raw = raw.assign(_kind=kind).drop_duplicates(["step", "_kind"], keep="last")
        raw = raw.drop(columns="_kind")
    return raw.groupby("epoch").mean(numeric_only=True).reset_index()
