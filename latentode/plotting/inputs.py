"""What a figure is drawn from: a dataset or DataFrame as a wide frame, the series and
channels to show, evenly spaced time grids, and the noiseless truth of synthetic data.

``series=n`` (an int) picks the first ``n`` series and ``series=[id, ...]`` those ids
(default: the first :data:`DEFAULT_SERIES`); without ``channels=`` a figure shows every
channel, or the :data:`MAX_CHANNELS` most observed ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError

DEFAULT_SERIES = 4
MAX_CHANNELS = 6

#: what the figures accept as data
Data = SeriesDataset | pd.DataFrame


def wide(data: Data, id_col: str, time_col: str) -> pd.DataFrame:
    """A dataset or DataFrame as a wide DataFrame in user units with id/time columns."""
    if isinstance(data, SeriesDataset):
        frame = data.to_dataframe()
        return frame.rename(columns={data.id_name: id_col, data.time_name: time_col})
    if isinstance(data, pd.DataFrame):
        missing = [c for c in (id_col, time_col) if c not in data.columns]
        if missing:
            raise LatentODEError(
                f"the DataFrame has no column(s) {missing}; its columns are "
                f"{list(data.columns)}. Pass a dataset or a wide DataFrame."
            )
        return data
    raise LatentODEError(
        f"expected a latentode SeriesDataset or a pandas DataFrame, got {type(data).__name__}."
    )


def data_names(data: Data, id_col: str, time_col: str) -> tuple[str, str]:
    """The id and time column names: a dataset's own, else the ones given."""
    if isinstance(data, SeriesDataset):
        return data.id_name, data.time_name
    return id_col, time_col


def data_channels(data: Data, frame: pd.DataFrame, id_col: str, time_col: str) -> list[str]:
    """A dataset's channels, or every numeric column of a DataFrame but id and time."""
    if isinstance(data, SeriesDataset):
        return list(data.channels)
    return [
        c
        for c in frame.columns
        if c not in (id_col, time_col) and pd.api.types.is_numeric_dtype(frame[c])
    ]


def rows(frame: pd.DataFrame, id_col: str, sid: Hashable) -> pd.DataFrame:
    """The rows of series ``sid``."""
    return frame.loc[frame[id_col] == sid]


def subset(data: Data, ids: list, id_col: str) -> Data:
    """Only the series ``ids`` (so predictions are not computed for series not shown)."""
    if isinstance(data, SeriesDataset):
        return data.loc[ids]
    return data.loc[data[id_col].isin(ids)]


def pick_series(frame: pd.DataFrame, id_col: str, series: int | Sequence[Hashable] | None) -> list:
    """The ids to show: the first :data:`DEFAULT_SERIES`, the first ``series``, or those listed."""
    ids = list(pd.unique(frame[id_col]))
    if not ids:
        raise LatentODEError("there are no series to plot.")
    if series is None:
        return ids[:DEFAULT_SERIES]
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        if series < 1:
            raise LatentODEError(
                f"series must be at least 1 (a count) or a list of ids, got {series}."
            )
        return ids[: int(series)]
    wanted = [series] if isinstance(series, str) else list(series)
    check_known(wanted, ids, "series id")
    return wanted


def pick_channels(
    frame: pd.DataFrame, all_channels: list[str], channels: Sequence[str] | None
) -> list[str]:
    """The channels to show: those listed, or all, or the :data:`MAX_CHANNELS` most observed."""
    if channels is not None:
        wanted = [channels] if isinstance(channels, str) else list(channels)
        check_known(wanted, all_channels, "channel")
        return wanted
    if len(all_channels) <= MAX_CHANNELS:
        return list(all_channels)
    present = [c for c in all_channels if c in frame.columns]
    counts = frame[present].notna().sum().sort_values(ascending=False, kind="stable")
    top = set(counts.index[:MAX_CHANNELS])
    return [c for c in all_channels if c in top]


def check_known(wanted: list, known: list, what: str) -> None:
    """Raise naming the ``wanted`` items that are not ``known`` (and some known ones)."""
    unknown = [w for w in wanted if w not in set(known)]
    if unknown:
        shown = ", ".join(map(repr, known[:8])) + (", ..." if len(known) > 8 else "")
        raise LatentODEError(f"unknown {what}(s) {unknown}; known: {shown}.")


def time_grids(
    ids: list, frames: list[pd.DataFrame | None], id_col: str, time_col: str, n_points: int
) -> dict[Hashable, Any]:
    """{id: n_points evenly spaced times over the series' span in ``frames``}."""
    grids = {}
    for sid in ids:
        stamps = pd.concat([rows(f, id_col, sid)[time_col] for f in frames if f is not None])
        lo, hi = stamps.min(), stamps.max()
        if pd.api.types.is_datetime64_any_dtype(stamps):
            grids[sid] = pd.date_range(lo, hi, periods=n_points)
        else:
            grids[sid] = np.linspace(float(lo), float(hi), n_points)
    return grids


def truth_paths(
    data: Data | None, key: str, chans: list[str]
) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
    """{id: (dense user times [G], truth[id][key][:, chans] [G, K])} for synthetic data."""
    truth = getattr(data, "truth", None)
    if not isinstance(truth, Mapping):
        return {}
    index = [data.channels.index(c) for c in chans]
    out = {}
    for sid in data.ids:
        entry = truth.get(sid)
        if not isinstance(entry, Mapping) or key not in entry or "dense_times" not in entry:
            continue
        values = np.asarray(entry[key])
        if values.ndim != 2 or values.shape[1] != len(data.channels):
            continue
        out[sid] = (np.asarray(data.time_axis.to_user(entry["dense_times"])), values[:, index])
    return out
