"""How every figure looks: panel size, colours and marker styles, the (series, channel)
grid of panels, their labels and the one legend per figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from latentode.estimator import SeriesEstimator

PANEL_SIZE = (3.4, 2.3)  # inches per (series, channel) panel

MEAN_COLOR = "C0"
CONTEXT_STYLE = {"color": "black", "marker": "o", "s": 14, "zorder": 3, "label": "observed"}
TARGET_STYLE = {"color": "C3", "marker": "x", "s": 22, "zorder": 3, "label": "held out"}
TRUTH_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.0, "label": "truth"}


def grid(n_rows: int, n_cols: int, panel_size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_rows`` × ``n_cols`` panels (axes [n_rows, n_cols], x shared per row)."""
    fig = Figure(
        figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows + 0.5), layout="constrained"
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex="row")
    return fig, axes


def scatter_observed(
    ax: Axes, rows: pd.DataFrame, time_col: str, ch: str, style: dict[str, Any]
) -> None:
    """The observed values of channel ``ch`` in ``rows`` as points drawn in ``style``."""
    obs = rows[[time_col, ch]].dropna()
    if len(obs):
        ax.scatter(obs[time_col], obs[ch], **style)


def label_row(axes_row: np.ndarray, id_col: str, sid: Any, chans: list[str], first: bool) -> None:
    """Name a row of panels by its series (and, on the ``first`` row, each by its channel)."""
    axes_row[0].set_ylabel(f"{id_col} = {sid}")
    if first:
        for ax, ch in zip(axes_row, chans):
            ax.set_title(ch, fontsize=10)
    for ax in axes_row:
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)


def label_time(axes_row: np.ndarray, time_col: str, model: SeriesEstimator | None) -> None:
    """The time axis label of the bottom row, with the model's time unit when numeric."""
    axis = getattr(model, "time_axis_", None)
    unit = f" ({axis.unit})" if axis is not None and not axis.is_datetime else ""
    for ax in axes_row:
        ax.set_xlabel(f"{time_col}{unit}")


def legend(fig: Figure, axes: np.ndarray) -> None:
    """One legend for the figure, from the first panel that has every kind of artist."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside upper center",
            ncols=min(len(handles), 6),
            fontsize=8,
            frameon=False,
        )
