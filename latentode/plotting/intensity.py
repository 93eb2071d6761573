"""The Poisson model's observation rate λ(t) per (series, channel), with the times each
channel was actually observed."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from latentode.plotting.inputs import (
    Data,
    pick_channels,
    pick_series,
    rows,
    subset,
    time_grids,
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

if TYPE_CHECKING:
    from latentode.estimator import LatentODE


def plot_intensity(
    model: LatentODE,
    context: Data,
    times: Any = None,
    *,
    truth: bool | pd.DataFrame | None = None,
    series: int | Sequence[Hashable] | None = None,
    channels: Sequence[str] | None = None,
    n_points: int = 200,
    n_samples: int = 20,
    seed: int | None = None,
    panel_size: tuple[float, float] = PANEL_SIZE,
) -> Figure:
    """Poisson-model observation rate λ(t) per (series, channel) with a tick at each
    observed time of that channel (a rug at the bottom of the panel).

    Args:
        model: a fitted model with a Poisson head (``poisson=True``).
        context: the observed points (dataset, or DataFrame with the model's columns).
        times: where to evaluate λ (as in ``predict``); default: ``n_points`` evenly
            spaced times over each series' context span.
        truth: the true intensity to overlay (dashed): None uses the dataset's
            ``truth`` when it has ``"intensity"`` on ``"dense_times"``, False draws none,
            or a DataFrame with id, time and channel columns.
        series, channels, n_samples, seed, panel_size: as in :func:`plot_predictions`.

    Raises:
        LatentODEError: the model has no Poisson head, or unknown series/channels.
    """
    id_col, time_col = model.id_name_, model.time_name_
    ctx = wide(context, id_col, time_col)
    ids = pick_series(ctx, id_col, series)
    chans = pick_channels(ctx, list(model.channels_), channels)
    if times is None:
        times = time_grids(ids, [ctx], id_col, time_col, n_points)
    lam = model.intensity(subset(context, ids, id_col), times, n_samples=n_samples, seed=seed)
    if isinstance(truth, pd.DataFrame):
        true_paths = {
            sid: (g[time_col].to_numpy(), g[chans].to_numpy())
            for sid, g in truth.groupby(id_col, sort=False)
        }
    elif truth is False:
        true_paths = {}
    else:
        true_paths = truth_paths(context, "intensity", chans)
    fig, axes = grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        c_rows = rows(ctx, id_col, sid)
        l_rows = rows(lam, id_col, sid).sort_values(time_col)
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in true_paths:
                t_true, v_true = true_paths[sid]
                ax.plot(t_true, v_true[:, k], **{**TRUTH_STYLE, "label": "true λ"})
            ax.plot(l_rows[time_col], l_rows[ch], color=MEAN_COLOR, linewidth=1.5, label="λ")
            events = c_rows.loc[c_rows[ch].notna(), time_col].to_numpy()
            ax.plot(
                events,
                np.zeros(len(events)),
                linestyle="none",
                marker="|",
                markersize=9,
                color="black",
                transform=blended_transform_factory(ax.transData, ax.transAxes),
                clip_on=False,
                label="observed",
            )
            ax.set_ylim(bottom=0)
        label_row(axes[r], id_col, sid, chans, first=r == 0)
    unit = getattr(model.time_axis_, "unit", "time unit")
    axes[0, 0].set_ylabel(f"{id_col} = {ids[0]}\nevents / {unit}")
    label_time(axes[-1], time_col, model)
    legend(fig, axes)
    return fig
