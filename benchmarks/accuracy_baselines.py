"""The accuracy benchmark's baselines and its metric (see ``accuracy.py``).

Per series and channel from that channel's context points: ``linear`` and ``pchip``
(flat beyond the ends), ``locf`` (last value; the first one before it) and ``mean`` (the
training mean, also the fallback for a channel with no context point). The metric is the
squared error scaled by each channel's training variance, pooled over folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

ID, TIME = "series_id", "time"  # the data sets' columns


def linear_predict(t_ctx: np.ndarray, v_ctx: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Linear interpolation through (t_ctx, v_ctx) [n >= 1], flat beyond the ends."""
    return np.interp(t_query, t_ctx, v_ctx)


def locf_predict(t_ctx: np.ndarray, v_ctx: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Last observation at or before each query time; the first one before it starts."""
    last = np.searchsorted(t_ctx, t_query, side="right") - 1
    return v_ctx[np.clip(last, 0, None)]


def pchip_predict(t_ctx: np.ndarray, v_ctx: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Monotone cubic (PCHIP) through the points, flat beyond the ends; < 3 points: linear."""
    if len(t_ctx) < 3:
        return linear_predict(t_ctx, v_ctx, t_query)
    curve = PchipInterpolator(t_ctx, v_ctx, extrapolate=False)
    return curve(np.clip(t_query, t_ctx[0], t_ctx[-1]))


# name -> per-channel predictor (t_ctx, v_ctx, t_query); None: the training mean everywhere
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None] = {
    "linear": linear_predict,
    "locf": locf_predict,
    "pchip": pchip_predict,
    "mean": None,
}


def baseline_predict(
    method: str,
    context: pd.DataFrame,
    scored: pd.DataFrame,
    channels: Sequence[str],
    train_mean: np.ndarray,
) -> np.ndarray:
    """Predictions [len(scored), C] of a baseline, series by series and channel by channel.

    A channel with no context observation in a series (and the ``mean`` baseline) gets
    the channel's training mean ``train_mean`` [C].
    """
    predict = BASELINES[method]
    out = np.tile(np.asarray(train_mean, dtype=float), (len(scored), 1))
    if predict is None:
        return out
    ctx_groups = dict(list(context.groupby(ID, sort=False)))
    position = np.arange(len(scored))
    for sid, rows in scored.groupby(ID, sort=False):
        where = position[(scored[ID] == sid).to_numpy()]
        ctx = ctx_groups[sid]
        t_query = rows[TIME].to_numpy(dtype=float)
        for j, channel in enumerate(channels):
            seen = ctx[channel].notna().to_numpy()
            if seen.any():
                t_ctx = ctx[TIME].to_numpy(dtype=float)[seen]
                v_ctx = ctx[channel].to_numpy(dtype=float)[seen]
                out[where, j] = predict(t_ctx, v_ctx, t_query)
    return out


def error_sums(
    pred: np.ndarray,
    truth: np.ndarray,
    train_var: np.ndarray,
    q5: np.ndarray | None = None,
    q95: np.ndarray | None = None,
) -> dict[str, float]:
    """Sums over the observed (non-NaN) ``truth`` [N, C] of scaled squared and absolute errors.

    ``train_var`` [C] scales each channel's squared error; with ``q5``/``q95`` [N, C] also
    counts the values inside the interval. Pool folds by adding, then :func:`finish`.
    """
    seen = ~np.isnan(truth)
    err = np.where(seen, pred - np.nan_to_num(truth), 0.0)
    sums = {
        "sq": float(np.sum(err**2 / np.asarray(train_var)[None, :])),
        "abs": float(np.sum(np.abs(err))),
        "n": int(seen.sum()),
    }
    if q5 is not None and q95 is not None:
        inside = (truth >= q5) & (truth <= q95) & seen
        sums["covered"] = int(inside.sum())
    return sums


def finish(sums: dict[str, float]) -> dict[str, float | None]:
    """Scaled MSE, MAE and 90% coverage from pooled :func:`error_sums`."""
    n = sums["n"]
    cover = sums.get("covered")
    return {
        "mse": sums["sq"] / n if n else None,
        "mae": sums["abs"] / n if n else None,
        "coverage": cover / n if n and cover is not None else None,
    }


def scaled_mse(pred: np.ndarray, truth: np.ndarray, train_var: np.ndarray) -> float:
    """Mean over observed ``truth`` [N, C] of ``(pred - truth)^2 / train_var[c]``."""
    return finish(error_sums(pred, truth, train_var))["mse"]


def channel_stats(train: pd.DataFrame, channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and variance per channel (variance 1 where it is 0 or undefined)."""
    values = train[list(channels)].to_numpy(dtype=float)
    mean = np.nan_to_num(np.nanmean(values, axis=0), nan=0.0)
    var = np.nanvar(values, axis=0)
    return mean, np.where(np.isfinite(var) & (var > 0), var, 1.0)
