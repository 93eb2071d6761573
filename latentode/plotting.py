"""Matplotlib figures of data, predictions, latent paths, intensities and training curves.

Every function returns a :class:`matplotlib.figure.Figure` built with the object API:
nothing here calls ``plt.show`` or touches the global backend, so the figures work in
scripts (``fig.savefig("out.png")``), in notebooks (the figure displays itself) and in
tests with the Agg backend.

Layout: series are rows and channels are columns; by default the first 4 series and
at most 6 channels (the most observed ones) are shown. ``series=n`` (an int) shows the
first ``n`` series, ``series=[id, ...]`` those ids.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from latentode.estimator import LatentODE

DEFAULT_SERIES = 4
MAX_CHANNELS = 6
PANEL_SIZE = (3.4, 2.3)  # inches per (series, channel) panel

_MEAN_COLOR = "C0"
_CONTEXT_STYLE = {"color": "black", "marker": "o", "s": 14, "zorder": 3, "label": "observed"}
_TARGET_STYLE = {"color": "C3", "marker": "x", "s": 22, "zorder": 3, "label": "held out"}
_TRUTH_STYLE = {"color": "0.45", "linestyle": "--", "linewidth": 1.0, "label": "truth"}


# ---- public figures ------------------------------------------------------------------
def plot_predictions(
    model_or_pred: LatentODE | pd.DataFrame,
    context: SeriesDataset | pd.DataFrame,
    target: SeriesDataset | pd.DataFrame | None = None,
    *,
    times=None,
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
    ctx = _wide(context, id_col, time_col)
    tgt = None if target is None else _wide(target, id_col, time_col)
    ids = _pick_series(ctx, id_col, series)
    chans = _pick_channels(ctx, all_channels, channels)
    if pred is None:
        if times is None:
            times = _grids(ids, [ctx, tgt], id_col, time_col, n_points)
        pred = model.predict(
            _subset(context, ids, id_col),
            times,
            n_samples=n_samples,
            quantiles=sorted(interval),
            seed=seed,
        )
    truth = {}
    if show_truth:
        truth = _truth_paths(context, "dense_values", chans)
        truth = truth or _truth_paths(target, "dense_values", chans)

    fig, axes = _grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        c_rows = _rows(ctx, id_col, sid)
        t_rows = None if tgt is None else _rows(tgt, id_col, sid)
        p_rows = _rows(pred, id_col, sid).sort_values(time_col)
        mark = (
            _is_forecast(c_rows, t_rows, p_rows, time_col) if context_end is None else context_end
        )
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in truth:
                ax.plot(truth[sid][0], truth[sid][1][:, k], **_TRUTH_STYLE)
            t = p_rows[time_col].to_numpy()
            lo, hi, band_label = _band(p_rows, ch, interval)
            ax.fill_between(t, lo, hi, color=_MEAN_COLOR, alpha=0.25, linewidth=0, label=band_label)
            ax.plot(t, p_rows[ch].to_numpy(), color=_MEAN_COLOR, linewidth=1.5, label="mean")
            _scatter_observed(ax, c_rows, time_col, ch, _CONTEXT_STYLE)
            if t_rows is not None:
                _scatter_observed(ax, t_rows, time_col, ch, _TARGET_STYLE)
            if mark and len(c_rows):
                end = c_rows[time_col].max()
                ax.axvline(end, color="0.3", linestyle=":", linewidth=1.0, label="context end")
        _label_row(axes[r], id_col, sid, chans, first=r == 0)
    _label_time(axes[-1], time_col, model)
    _legend(fig, axes)
    return fig


def plot_series(
    data: SeriesDataset | pd.DataFrame,
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
    id_col, time_col = _data_names(data, id_col, time_col)
    frame = _wide(data, id_col, time_col)
    all_channels = _data_channels(data, frame, id_col, time_col)
    ids = _pick_series(frame, id_col, series)
    chans = _pick_channels(frame, all_channels, channels)
    truth = _truth_paths(data, "dense_values", chans) if show_truth else {}
    fig, axes = _grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        rows = _rows(frame, id_col, sid)
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in truth:
                ax.plot(truth[sid][0], truth[sid][1][:, k], **_TRUTH_STYLE)
            obs = rows[[time_col, ch]].dropna()
            ax.plot(
                obs[time_col],
                obs[ch],
                color=_MEAN_COLOR,
                marker="o",
                markersize=3,
                linewidth=0.8,
                label="observed",
            )
        _label_row(axes[r], id_col, sid, chans, first=r == 0)
    _label_time(axes[-1], time_col, None)
    _legend(fig, axes)
    return fig


def plot_sampling(
    data: SeriesDataset | pd.DataFrame,
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
    id_col, time_col = _data_names(data, id_col, time_col)
    frame = _wide(data, id_col, time_col)
    chans = (
        list(channels) if channels is not None else _data_channels(data, frame, id_col, time_col)
    )
    _check_known(chans, _data_channels(data, frame, id_col, time_col), "channel")
    ids = _pick_series(frame, id_col, series)
    height = max(1.2, 0.18 * len(chans) + 0.6)
    fig = Figure(figsize=(width, height * len(ids)), layout="constrained")
    axes = fig.subplots(len(ids), 1, squeeze=False, sharex=True)[:, 0]
    for ax, sid in zip(axes, ids):
        rows = _rows(frame, id_col, sid)
        observed = rows[chans].notna().to_numpy()  # [T, C]
        t_idx, c_idx = np.nonzero(observed)
        ax.scatter(rows[time_col].to_numpy()[t_idx], c_idx, marker="|", s=60, color="black")
        ax.set_yticks(range(len(chans)), chans, fontsize=8 if len(chans) < 20 else 6)
        ax.set_ylim(len(chans) - 0.5, -0.5)
        ax.set_title(f"{id_col} = {sid}: {observed.sum()} observed values", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(time_col)
    return fig


def plot_intensity(
    model: LatentODE,
    context: SeriesDataset | pd.DataFrame,
    times=None,
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
    ctx = _wide(context, id_col, time_col)
    ids = _pick_series(ctx, id_col, series)
    chans = _pick_channels(ctx, list(model.channels_), channels)
    if times is None:
        times = _grids(ids, [ctx], id_col, time_col, n_points)
    lam = model.intensity(_subset(context, ids, id_col), times, n_samples=n_samples, seed=seed)
    if isinstance(truth, pd.DataFrame):
        true_paths = {
            sid: (g[time_col].to_numpy(), g[chans].to_numpy())
            for sid, g in truth.groupby(id_col, sort=False)
        }
    elif truth is False:
        true_paths = {}
    else:
        true_paths = _truth_paths(context, "intensity", chans)
    fig, axes = _grid(len(ids), len(chans), panel_size)
    for r, sid in enumerate(ids):
        c_rows = _rows(ctx, id_col, sid)
        l_rows = _rows(lam, id_col, sid).sort_values(time_col)
        for k, ch in enumerate(chans):
            ax = axes[r, k]
            if sid in true_paths:
                t_true, v_true = true_paths[sid]
                ax.plot(t_true, v_true[:, k], **{**_TRUTH_STYLE, "label": "true λ"})
            ax.plot(l_rows[time_col], l_rows[ch], color=_MEAN_COLOR, linewidth=1.5, label="λ")
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
        _label_row(axes[r], id_col, sid, chans, first=r == 0)
    unit = getattr(model.time_axis_, "unit", "time unit")
    axes[0, 0].set_ylabel(f"{id_col} = {ids[0]}\nevents / {unit}")
    _label_time(axes[-1], time_col, model)
    _legend(fig, axes)
    return fig


def plot_latent(
    model: LatentODE,
    context: SeriesDataset | pd.DataFrame,
    times=None,
    *,
    series: int | Sequence[Hashable] | None = 10,
    color_by: str | Mapping[Hashable, float] | None = None,
    n_points: int = 100,
    n_samples: int = 20,
    seed: int | None = None,
    figsize: tuple[float, float] = (5.5, 4.5),
) -> Figure:
    """Posterior-mean latent paths z(t) in 2-D, one line per series (dot at the start).

    z is averaged over ``n_samples`` posterior samples of z0 at each time. With a
    latent dimension L > 2 the paths are projected on their first two principal
    components (scikit-learn PCA over every plotted point); L = 2 is drawn as is and
    L = 1 against time.

    Args:
        model: a fitted model.
        context: the observed points that set each series' z0.
        times: where to evaluate z (as in ``predict``); default: ``n_points`` evenly
            spaced times over each series' context span.
        series: as in :func:`plot_predictions`; default: the first 10.
        color_by: None (one colour per series), ``"label"`` (the series' label), a key
            of the dataset's per-series ``truth`` (e.g. ``"direction"`` for spirals),
            or a mapping {id: number}; numbers are mapped through a colormap.
    """
    id_col, time_col = model.id_name_, model.time_name_
    ctx = _wide(context, id_col, time_col)
    ids = _pick_series(ctx, id_col, series)
    if times is None:
        times = _grids(ids, [ctx], id_col, time_col, n_points)
    if getattr(model, "kind_", None) != "latent_ode":
        raise LatentODEError(
            f"plot_latent needs a model with a latent state z(t) (LatentODE), not "
            f"{type(model).__name__}."
        )
    frame = model.latent(_subset(context, ids, id_col), times, n_samples=n_samples, seed=seed)
    z_cols = [c for c in frame.columns if re.fullmatch(r"z\d+", str(c))]
    paths: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {
        sid: (np.asarray(rows[time_col]), rows[z_cols].to_numpy())
        for sid, rows in frame.groupby(id_col, sort=False)
    }
    latent_dim = next(iter(paths.values()))[1].shape[1]
    xlabel, ylabel = "z[0]", "z[1]"
    if latent_dim > 2:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2).fit(np.concatenate([p for _, p in paths.values()]))
        paths = {k: (t, pca.transform(p)) for k, (t, p) in paths.items()}
        var = pca.explained_variance_ratio_
        xlabel, ylabel = f"PC1 ({var[0]:.0%} of variance)", f"PC2 ({var[1]:.0%})"
    elif latent_dim == 1:
        paths = {k: (t, np.column_stack([t, p[:, 0]])) for k, (t, p) in paths.items()}
        xlabel, ylabel = time_col, "z"
    values = _color_values(color_by, context, list(paths))
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    cmap, norm = None, None
    if values is not None:
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        cmap = colormaps["coolwarm"]
        finite = values[np.isfinite(values)]
        norm = Normalize(finite.min(), finite.max()) if finite.size else Normalize(0, 1)
    starts = []
    for i, (sid, (_, p)) in enumerate(paths.items()):
        color = f"C{i % 10}" if values is None else cmap(norm(values[i]))
        ax.plot(p[:, 0], p[:, 1], color=color, linewidth=1.2, alpha=0.9, label=str(sid))
        starts.append((p[0, 0], p[0, 1], color))
    ax.scatter([s[0] for s in starts], [s[1] for s in starts], c=[s[2] for s in starts], s=25)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"latent paths (L = {latent_dim}), dot = first time", fontsize=10)
    if values is not None:
        from matplotlib.cm import ScalarMappable

        label = color_by if isinstance(color_by, str) else "colour"
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    elif len(paths) <= 10:
        ax.legend(title=id_col, fontsize=7, title_fontsize=8)
    return fig


def plot_training(
    model_or_history: LatentODE | pd.DataFrame | str | Path,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Training curves: losses per epoch and, with validation data, the validation MSE.

    ``model_or_history`` is a fitted model (its ``history_``), a history DataFrame, or
    a training log folder / ``metrics.csv`` written by ``fit`` (e.g. ``latentode fit
    --out DIR`` → ``DIR/logs``). Curves spanning over a decade use a log (or symlog) scale.
    """
    history = _history(model_or_history)
    losses = [c for c in ("train_loss", "val_loss") if c in history.columns]
    metrics = [
        c for c in history.columns if c.startswith("val_") and c != "val_loss" and c not in losses
    ]
    panels = [(losses, "loss (per observed value)")] if losses else []
    panels += [([m], m.replace("_", " ")) for m in metrics]
    if not panels:
        raise LatentODEError(
            f"the training history has no loss or validation columns (it has "
            f"{list(history.columns)})."
        )
    size = figsize or (4.2 * len(panels), 3.2)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    epoch = history["epoch"] if "epoch" in history.columns else np.arange(len(history))
    for ax, (cols, title) in zip(axes, panels):
        for col in cols:
            ok = history[col].notna().to_numpy()
            marker = "." if len(history) <= 50 else None
            ax.plot(np.asarray(epoch)[ok], history[col].to_numpy()[ok], marker=marker, label=col)
        _scale_y(ax, history[cols].to_numpy(dtype=float))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize=8)
    return fig


# ---- data helpers ------------------------------------------------------------------------
def _wide(data, id_col: str, time_col: str) -> pd.DataFrame:
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


def _names_from(pred: pd.DataFrame, context) -> tuple[str, str]:
    if isinstance(context, SeriesDataset):
        return context.id_name, context.time_name
    if pred.shape[1] < 2:
        raise LatentODEError("the prediction DataFrame needs id and time as its first columns.")
    return str(pred.columns[0]), str(pred.columns[1])


def _data_names(data, id_col: str, time_col: str) -> tuple[str, str]:
    if isinstance(data, SeriesDataset):
        return data.id_name, data.time_name
    return id_col, time_col


def _data_channels(data, frame: pd.DataFrame, id_col: str, time_col: str) -> list[str]:
    if isinstance(data, SeriesDataset):
        return list(data.channels)
    return [
        c
        for c in frame.columns
        if c not in (id_col, time_col) and pd.api.types.is_numeric_dtype(frame[c])
    ]


def _rows(frame: pd.DataFrame, id_col: str, sid) -> pd.DataFrame:
    return frame.loc[frame[id_col] == sid]


def _subset(data, ids: list, id_col: str):
    """Only the series ``ids`` (so predictions are not computed for series not shown)."""
    if isinstance(data, SeriesDataset):
        return data.loc[ids]
    return data.loc[data[id_col].isin(ids)]


def _pick_series(frame: pd.DataFrame, id_col: str, series) -> list:
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
    _check_known(wanted, ids, "series id")
    return wanted


def _pick_channels(frame: pd.DataFrame, all_channels: list[str], channels) -> list[str]:
    if channels is not None:
        wanted = [channels] if isinstance(channels, str) else list(channels)
        _check_known(wanted, all_channels, "channel")
        return wanted
    if len(all_channels) <= MAX_CHANNELS:
        return list(all_channels)
    present = [c for c in all_channels if c in frame.columns]
    counts = frame[present].notna().sum().sort_values(ascending=False, kind="stable")
    top = set(counts.index[:MAX_CHANNELS])
    return [c for c in all_channels if c in top]


def _check_known(wanted: list, known: list, what: str) -> None:
    unknown = [w for w in wanted if w not in set(known)]
    if unknown:
        shown = ", ".join(map(repr, known[:8])) + (", ..." if len(known) > 8 else "")
        raise LatentODEError(f"unknown {what}(s) {unknown}; known: {shown}.")


def _grids(ids: list, frames: list, id_col: str, time_col: str, n_points: int) -> dict:
    """{id: n_points evenly spaced times over the series' span in ``frames``}."""
    grids = {}
    for sid in ids:
        stamps = pd.concat([_rows(f, id_col, sid)[time_col] for f in frames if f is not None])
        lo, hi = stamps.min(), stamps.max()
        if pd.api.types.is_datetime64_any_dtype(stamps):
            grids[sid] = pd.date_range(lo, hi, periods=n_points)
        else:
            grids[sid] = np.linspace(float(lo), float(hi), n_points)
    return grids


def _truth_paths(data, key: str, chans: list[str]) -> dict:
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


def _band(rows: pd.DataFrame, ch: str, interval: tuple[float, float]):
    """(lower, upper, label) of the shaded band: quantile columns, else mean ± 2 std."""
    pattern = re.compile(rf"^{re.escape(ch)}_q(\d+(?:_\d+)?)$")
    quantiles = {
        float(m.group(1).replace("_", ".")) / 100: c
        for c in rows.columns
        if (m := pattern.match(str(c)))
    }
    if len(quantiles) >= 2:
        lo_q, hi_q = sorted(interval)
        lo = min(quantiles, key=lambda q: abs(q - lo_q))
        hi = min(quantiles, key=lambda q: abs(q - hi_q))
        if lo < hi:
            label = f"{hi - lo:.0%} interval"
            return rows[quantiles[lo]].to_numpy(), rows[quantiles[hi]].to_numpy(), label
    mean, std = rows[ch].to_numpy(), rows[f"{ch}_std"].to_numpy()
    return mean - 2 * std, mean + 2 * std, "±2 std"


def _is_forecast(c_rows, t_rows, p_rows, time_col: str) -> bool:
    if not len(c_rows):
        return False
    end = c_rows[time_col].max()
    if t_rows is not None and len(t_rows):
        return bool(t_rows[time_col].min() >= end)
    return bool(len(p_rows) and p_rows[time_col].max() > end)


def _color_values(color_by, data, ids: list) -> np.ndarray | None:
    """Per series in ``ids``: the number ``color_by`` names (labels and truth come from
    ``data`` when it is a SeriesDataset; a DataFrame carries neither)."""
    ds = data if isinstance(data, SeriesDataset) else SeriesDataset([], ["_"])
    if color_by is None:
        return None
    if isinstance(color_by, Mapping):
        return np.array([float(color_by.get(i, np.nan)) for i in ids])
    if color_by == "label":
        if not ds.has_labels:
            raise LatentODEError("color_by='label' but the data has no labels.")
        labels = {s.id: s.label for s in ds}
        return np.array([np.nan if labels[i] is None else labels[i] for i in ids], dtype=float)
    truth = ds.truth if isinstance(ds.truth, Mapping) else {}
    try:
        return np.array([float(truth[i][color_by]) for i in ids])
    except (KeyError, TypeError, ValueError):
        raise LatentODEError(
            f"color_by={color_by!r}: use 'label', a per-series scalar key of the dataset's "
            "truth (e.g. 'direction'), or a mapping {id: number}."
        ) from None


def _history(source) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        history = source
    elif isinstance(source, (str, Path)):
        from latentode.estimator import read_history

        path = Path(source)
        if not path.exists():
            raise LatentODEError(f"no metrics.csv found at {path}; pass the log folder of a fit.")
        history = read_history(path)
        if history.empty and not path.is_file():
            raise LatentODEError(f"no metrics.csv found at {path}; pass the log folder of a fit.")
    else:
        history = getattr(source, "history_", None)
        if history is None:
            raise LatentODEError(
                "this model has no training history (fitted and loaded models have "
                "history_): pass a fitted model, a history DataFrame or a fit's log folder."
            )
    if len(history) == 0:
        raise LatentODEError("the training history is empty.")
    return history


# ---- figure helpers ----------------------------------------------------------------------
def _scale_y(ax: Axes, values: np.ndarray) -> None:
    """Log scale for positive curves spanning over a decade; symlog when they cross zero."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    low, high = values.min(), values.max()
    if low > 0 and high > 10 * low:
        ax.set_yscale("log")
    elif low <= 0 and high - low > 10:
        ax.set_yscale("symlog", linthresh=1.0)


def _grid(n_rows: int, n_cols: int, panel_size: tuple[float, float]):
    fig = Figure(
        figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows + 0.5), layout="constrained"
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex="row")
    return fig, axes


def _scatter_observed(ax: Axes, rows: pd.DataFrame, time_col: str, ch: str, style: dict) -> None:
    obs = rows[[time_col, ch]].dropna()
    if len(obs):
        ax.scatter(obs[time_col], obs[ch], **style)


def _label_row(axes_row, id_col: str, sid, chans: list[str], first: bool) -> None:
    axes_row[0].set_ylabel(f"{id_col} = {sid}")
    if first:
        for ax, ch in zip(axes_row, chans):
            ax.set_title(ch, fontsize=10)
    for ax in axes_row:
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)


def _label_time(axes_row, time_col: str, model) -> None:
    axis = getattr(model, "time_axis_", None)
    unit = f" ({axis.unit})" if axis is not None and not axis.is_datetime else ""
    for ax in axes_row:
        ax.set_xlabel(f"{time_col}{unit}")


def _legend(fig: Figure, axes) -> None:
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


__all__ = [
    "plot_intensity",
    "plot_latent",
    "plot_predictions",
    "plot_sampling",
    "plot_series",
    "plot_training",
]
