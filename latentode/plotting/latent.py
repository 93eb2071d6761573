"""Latent trajectories z(t): each series' posterior-mean path in two dimensions
(principal components when the latent state is larger), coloured by series or by a
per-series number."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError
from latentode.plotting.inputs import Data, pick_series, subset, time_grids, wide

if TYPE_CHECKING:
    from latentode.estimator import LatentODE


def plot_latent(
    model: LatentODE,
    context: Data,
    times: Any = None,
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
    ctx = wide(context, id_col, time_col)
    ids = pick_series(ctx, id_col, series)
    if times is None:
        times = time_grids(ids, [ctx], id_col, time_col, n_points)
    if getattr(model, "kind_", None) != "latent_ode":
        raise LatentODEError(
            f"plot_latent needs a model with a latent state z(t) (LatentODE), not "
            f"{type(model).__name__}."
        )
    frame = model.latent(subset(context, ids, id_col), times, n_samples=n_samples, seed=seed)
    z_cols = [c for c in frame.columns if re.fullmatch(r"z\d+", str(c))]
    paths: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {
        sid: (np.asarray(group[time_col]), group[z_cols].to_numpy())
        for sid, group in frame.groupby(id_col, sort=False)
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


def _color_values(
    color_by: str | Mapping[Hashable, float] | None, data: Data, ids: list
) -> np.ndarray | None:
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
