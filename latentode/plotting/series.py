"""The raw data before any model: irregular series as points and lines, and when each
channel was observed (the sampling pattern and missingness)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from matplotlib.figure import Figure

from latentode.plotting.inputs import (
    Data,
    check_known,
    data_channels,
    data_names,
    pick_channels,
    pick_series,
    rows,
    truth_paths,
    wide,
)
from latentode.plotting.style import (
    MEAN_COLOR,
    PANEL_SIZE,
    TRUTH_STYLE,
    grid,
    label_row,
    label_time,
    legend,
)


def plot_series(
    data: Data,
    series: int | Sequence[Hashable] | None = None,
    channels: Sequence[str] | None = None,
    *,
    id_col: str = "id",
    time_col: str = "time",
    show_truth: bool = True,
    panel_size: tuple[float, float] = PANEL_SIZE,
) -> Figure:
    """Raw irregular series: observed points joined by thin lines, one panel per
    (series, channel), with the noiseless truth of synthetic data (dashed) if present.

    ``data`` is a dataset or a wide DataFrame (then ``id_col``/``time_col`` name its
    columns and every other numeric column is a channel).
    """
    id_col, time_col = data_names(data, id_col, time_col)
    frame = wide(data, id_col, time_col)
    all_channels = data_channels(data, frame, id_col, time_col)
    ids = pick_series(frame, id_col, series)
    chans = pick_channels(frame, all_channels, channels)
    truth = truth_paths(data, "dense_values", chans) if show_truth else {}
    fig, axes = grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        series_rows = rows(frame, id_col, sid)
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in truth:
                ax.plot(truth[sid][0], truth[sid][1][:, k], **TRUTH_STYLE)
            obs = series_rows[[time_col, ch]].dropna()
            ax.plot(
                obs[time_col],
                obs[ch],
                color=MEAN_COLOR,
                marker="o",
                markersize=3,
                linewidth=0.8,
                label="observed",
            )
        label_row(axes[r], id_col, sid, chans, first=r == 0)
    label_time(axes[-1], time_col, None)
    legend(fig, axes)
    return fig


def plot_sampling(
    data: Data,
    series: int | Sequence[Hashable] | None = None,
    channels: Sequence[str] | None = None,
    *,
    id_col: str = "id",
    time_col: str = "time",
    width: float = 8.0,
) -> Figure:
    """When each channel was observed: a raster per series (rows: channels, ticks: times).

    Shows the sampling pattern and missingness at a glance; one axes per series, one
    tick per observed value (all channels are shown unless ``channels`` is given).
    """
    id_col, time_col = data_names(data, id_col, time_col)
    frame = wide(data, id_col, time_col)
    known = data_channels(data, frame, id_col, time_col)
    chans = list(channels) if channels is not None else known
    check_known(chans, known, "channel")
    ids = pick_series(frame, id_col, series)
    height = max(1.2, 0.18 * len(chans) + 0.6)
    fig = Figure(figsize=(width, height * len(ids)), layout="constrained")
    axes = fig.subplots(len(ids), 1, squeeze=False, sharex=True)[:, 0]
    for ax, sid in zip(axes, ids):
        series_rows = rows(frame, id_col, sid)
        observed = series_rows[chans].notna().to_numpy()  # [T, C]
        t_idx, c_idx = np.nonzero(observed)
        ax.scatter(series_rows[time_col].to_numpy()[t_idx], c_idx, marker="|", s=60, color="black")
        ax.set_yticks(range(len(chans)), chans, fontsize=8 if len(chans) < 20 else 6)
        ax.set_ylim(len(chans) - 0.5, -0.5)
        ax.set_title(f"{id_col} = {sid}: {observed.sum()} observed values", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(time_col)
    return fig
