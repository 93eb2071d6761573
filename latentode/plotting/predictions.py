"""Predictions with uncertainty bands: observed points, the predicted mean inside its
interval, held-out points and, for synthetic data, the noiseless truth."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError
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
    CONTEXT_STYLE,
    MEAN_COLOR,
    PANEL_SIZE,
    TARGET_STYLE,
    TRUTH_STYLE,
    grid,
    label_row,
    label_time,
    legend,
    scatter_observed,
)

if TYPE_CHECKING:
    from latentode.estimator import LatentODE


def plot_predictions(
    model_or_pred: LatentODE | pd.DataFrame,
    context: Data,
    target: Data | None = None,
    *,
    times: Any = None,
    series: int | Sequence[Hashable] | None = None,
    channels: Sequence[str] | None = None,
    interval: tuple[float, float] = (0.05, 0.95),
    n_points: int = 200,
    n_samples: int = 200,
    seed: int | None = None,
    show_truth: bool = True,
    context_end: bool | None = None,
    panel_size: tuple[float, float] = PANEL_SIZE,
) -> Figure:
    """Observed points, predicted mean with an uncertainty band, and held-out points.

    One panel per (series, channel): the ``context`` points (black dots), the predicted
    mean (line) inside a shaded band, the ``target`` points (red crosses) and, for
    synthetic data whose ``truth`` has a dense path, the noiseless truth (dashed).

    Args:
        model_or_pred: a fitted :class:`~latentode.LatentODE` (predictions are made here),
            or a prediction DataFrame from ``model.predict`` (id and time first, then
            ``<c>``, ``<c>_std`` and optional ``<c>_q<pct>`` columns).
        context: the observed points the prediction was conditioned on (a dataset, or a
            wide DataFrame with the model's id/time/channel columns).
        target: held-out points to compare with (same forms), or None.
        times: with a model, where to predict (as in ``predict``); default: ``n_points``
            evenly spaced times over each series' context and target span.
        series: an int n (the first n series) or a list of ids; default: the first 4.
        channels: channel names; default: all, or the 6 most observed.
        interval: the band's quantiles; without quantile columns the band is ±2 std.
        n_samples, seed: posterior samples and their seed, when predicting here.
        show_truth: draw the dataset's noiseless truth when it has one.
        context_end: draw a vertical line at each series' last context time; default:
            when the target (or, without one, the prediction) lies after it (forecasts).
        panel_size: (width, height) of one panel in inches.

    Returns:
        The figure; ``fig.axes`` is row-major over (series, channel).

    Raises:
        LatentODEError: unknown series ids or channel names, or a prediction DataFrame
            without mean/std columns.
    """
    if isinstance(model_or_pred, pd.DataFrame):
        model, pred = None, model_or_pred
        id_col, time_col = _names_from(pred, context)
        all_channels = [c for c in pred.columns if f"{c}_std" in pred.columns]
        if not all_channels:
            raise LatentODEError(
                "the prediction DataFrame has no '<channel>' and '<channel>_std' column pairs; "
                "pass the output of model.predict(...)."
            )
    else:
        model, pred = model_or_pred, None
        id_col, time_col = model.id_name_, model.time_name_
        all_channels = list(model.channels_)
    ctx = wide(context, id_col, time_col)
    tgt = None if target is None else wide(target, id_col, time_col)
    ids = pick_series(ctx, id_col, series)
    chans = pick_channels(ctx, all_channels, channels)
    if pred is None:
        if times is None:
            times = time_grids(ids, [ctx, tgt], id_col, time_col, n_points)
        pred = model.predict(
            subset(context, ids, id_col),
            times,
            n_samples=n_samples,
            quantiles=sorted(interval),
            seed=seed,
        )
    truth = {}
    if show_truth:
        truth = truth_paths(context, "dense_values", chans)
        truth = truth or truth_paths(target, "dense_values", chans)

    fig, axes = grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        c_rows = rows(ctx, id_col, sid)
        t_rows = None if tgt is None else rows(tgt, id_col, sid)
        p_rows = rows(pred, id_col, sid).sort_values(time_col)
        mark = (
            _is_forecast(c_rows, t_rows, p_rows, time_col) if context_end is None else context_end
        )
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in truth:
                ax.plot(truth[sid][0], truth[sid][1][:, k], **TRUTH_STYLE)
            t = p_rows[time_col].to_numpy()
            lo, hi, band_label = _band(p_rows, ch, interval)
            ax.fill_between(t, lo, hi, color=MEAN_COLOR, alpha=0.25, linewidth=0, label=band_label)
            ax.plot(t, p_rows[ch].to_numpy(), color=MEAN_COLOR, linewidth=1.5, label="mean")
            scatter_observed(ax, c_rows, time_col, ch, CONTEXT_STYLE)
            if t_rows is not None:
                scatter_observed(ax, t_rows, time_col, ch, TARGET_STYLE)
            if mark and len(c_rows):
                end = c_rows[time_col].max()
                ax.axvline(end, color="0.3", linestyle=":", linewidth=1.0, label="context end")
        label_row(axes[r], id_col, sid, chans, first=r == 0)
    label_time(axes[-1], time_col, model)
    legend(fig, axes)
    return fig


def _names_from(pred: pd.DataFrame, context: Data) -> tuple[str, str]:
    """The id and time column names of a prediction frame (the context's, if a dataset)."""
    if isinstance(context, SeriesDataset):
        return context.id_name, context.time_name
    if pred.shape[1] < 2:
        raise LatentODEError("the prediction DataFrame needs id and time as its first columns.")
    return str(pred.columns[0]), str(pred.columns[1])


def _band(
    pred_rows: pd.DataFrame, ch: str, interval: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, str]:
    """(lower, upper, label) of the shaded band: quantile columns, else mean ± 2 std."""
    pattern = re.compile(rf"^{re.escape(ch)}_q(\d+(?:_\d+)?)$")
    quantiles = {
        float(m.group(1).replace("_", ".")) / 100: c
        for c in pred_rows.columns
        if (m := pattern.match(str(c)))
    }
    if len(quantiles) >= 2:
        lo_q, hi_q = sorted(interval)
        lo = min(quantiles, key=lambda q: abs(q - lo_q))
        hi = min(quantiles, key=lambda q: abs(q - hi_q))
        if lo < hi:
            label = f"{hi - lo:.0%} interval"
            return pred_rows[quantiles[lo]].to_numpy(), pred_rows[quantiles[hi]].to_numpy(), label
    mean, std = pred_rows[ch].to_numpy(), pred_rows[f"{ch}_std"].to_numpy()
    return mean - 2 * std, mean + 2 * std, "±2 std"


def _is_forecast(
    c_rows: pd.DataFrame, t_rows: pd.DataFrame | None, p_rows: pd.DataFrame, time_col: str
) -> bool:
    """Whether the target (else the prediction) lies after the context's last time."""
    if not len(c_rows):
        return False
    end = c_rows[time_col].max()
    if t_rows is not None and len(t_rows):
        return bool(t_rows[time_col].min() >= end)
    return bool(len(p_rows) and p_rows[time_col].max() > end)
