"""Training curves: the losses per epoch and any validation metrics, from a fitted model,
a history DataFrame or the logs a fit wrote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from latentode.errors import LatentODEError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from latentode.estimator import LatentODE


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


def _history(source: LatentODE | pd.DataFrame | str | Path) -> pd.DataFrame:
    """The history DataFrame of a model, a DataFrame, or a fit's log folder / metrics.csv."""
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
