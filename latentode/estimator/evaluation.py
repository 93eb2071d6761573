"""Hide points, predict them, compare: the one hold-out evaluation.

``evaluate`` and ``score`` (metrics on a task), ``fit``'s interval calibration (on the
validation series) and the command-line demo (against baselines) all run
:func:`predict_held_out` on a (context, target) pair and read its
:class:`HeldOutPrediction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError

TASKS = ("interp", "extrap")
_ARRAYS = ("truth", "mean", "std", "lower", "upper", "outside", "centre")


@dataclass(frozen=True)
class HeldOutPrediction:
    """Predictions at the hidden points, aligned with the truth (original units).

    Attributes:
        truth: [N, C] the hidden values, NaN where not observed.
        mean, std, lower, upper: [N, C] predicted mean, std, 5% and 95% quantiles.
        outside: [N] True where the hidden time lies outside its series' context window
            (before its first or after its last context time).
        centre: [N, C] what the intervals widen around: the mean, or for a log-scale
            channel the predictive median.
        nfe: the solver's function evaluations.
    """

    truth: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    outside: np.ndarray
    centre: np.ndarray
    nfe: int | None

    def rows(self, keep: np.ndarray) -> HeldOutPrediction:
        """The predictions at the rows where ``keep`` [N] is True."""
        return HeldOutPrediction(*(getattr(self, f)[keep] for f in _ARRAYS), self.nfe)

    @classmethod
    def concat(cls, parts: list[HeldOutPrediction]) -> HeldOutPrediction:
        """The rows of several held-out predictions together (nfe summed)."""
        nfe = [p.nfe for p in parts]
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _ARRAYS),
            None if None in nfe else sum(nfe),
        )

    @property
    def observed(self) -> np.ndarray:
        """[N, C] True where a hidden value was observed."""
        return ~np.isnan(self.truth)


def task_split(
    data: SeriesDataset, task: str, frac: float, seed: int
) -> tuple[SeriesDataset, SeriesDataset]:
    """(context, target) of a task: ``"interp"`` hides a random ``1 - frac`` of each
    series' points (seeded); ``"extrap"`` hides everything after ``frac`` of each span.
    Series without an observed value on both sides are left out.

    Raises:
        LatentODEError: for an unknown task, or when no series is left.
    """
    if task == "interp":
        context, target = data.subsample(frac, seed=seed)
    elif task == "extrap":
        context, target = data.split_time(frac=frac)
    else:
        raise LatentODEError(f"task must be 'interp' or 'extrap', got {task!r}.")
    context, target = usable_pairs(context, target)
    if not len(context):
        raise LatentODEError("no series has points both in the context and to predict.")
    return context, target


def usable_pairs(
    context: SeriesDataset, target: SeriesDataset
) -> tuple[SeriesDataset, SeriesDataset]:
    """The (context, target) series pairs with an observed value on both sides."""
    keep = [i for i, (c, t) in enumerate(zip(context, target)) if c.n_observed and t.n_observed]
    return context[keep], target[keep]


def predict_held_out(
    model, context: SeriesDataset, target: SeriesDataset, n_samples: int, seed: int, **override
) -> HeldOutPrediction:
    """``model.predict`` from ``context`` at ``target``'s times, with 5% and 95% quantiles
    (and the median, where the model has log-scale channels)."""
    times = {t.id: context.time_axis.to_user(t.times) for t in target}
    log = model.scaler_.log_mask
    quantiles = (0.05, 0.5, 0.95) if log.any() else (0.05, 0.95)
    pred = model.predict(
        context, times, n_samples=n_samples, quantiles=quantiles, seed=seed, **override
    )
    truth = np.concatenate([t.values for t in target])  # [N, C], NaN = not observed
    if len(pred) != len(truth):
        raise RuntimeError(f"predict returned {len(pred)} rows for {len(truth)} target times")
    channels = list(model.channels_)

    def columns(suffix: str) -> np.ndarray:
        return pred[[f"{c}{suffix}" for c in channels]].to_numpy()

    outside = np.concatenate(
        [(t.times < c.times[0]) | (t.times > c.times[-1]) for c, t in zip(context, target)]
    )
    mean = columns("")
    centre = np.where(log, columns("_q50"), mean) if log.any() else mean
    return HeldOutPrediction(
        truth,
        mean,
        columns("_std"),
        columns("_q5"),
        columns("_q95"),
        outside,
        centre,
        pred.attrs["nfe"],
    )


def metrics(held_out: HeldOutPrediction) -> dict:
    """``mse``, ``mae``, ``nll`` (Gaussian, per value), ``coverage_90`` (share inside the
    central 90% interval), ``n_values`` and ``nfe``, over the observed hidden values."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    obs = held_out.observed
    y, m, s = held_out.truth[obs], held_out.mean[obs], held_out.std[obs]
    inside = (y >= held_out.lower[obs]) & (y <= held_out.upper[obs])
    return {
        "mse": float(mean_squared_error(y, m)),
        "mae": float(mean_absolute_error(y, m)),
        "nll": float(np.mean(0.5 * np.log(2 * np.pi * s**2) + 0.5 * ((y - m) / s) ** 2)),
        "coverage_90": float(np.mean(inside)),
        "n_values": int(obs.sum()),
        "nfe": held_out.nfe,
    }


def interval_scale(
    held_out: HeldOutPrediction, log: np.ndarray | None = None, min_values: int = 20
) -> list[float]:
    """Per channel, the factor that makes the central 90% interval cover 90% of the
    hidden values, widening or narrowing it around its centre; 1.0 for a channel with
    fewer than ``min_values`` of them. For a log-scale channel (``log`` [C]) the factor
    applies to the logarithms, as predictions apply it."""
    scale = []
    for j in range(held_out.truth.shape[1]):
        obs = held_out.observed[:, j]
        if obs.sum() < min_values:
            scale.append(1.0)
            continue
        y, m = held_out.truth[obs, j], held_out.centre[obs, j]
        lo, hi = held_out.lower[obs, j], held_out.upper[obs, j]
        if log is not None and log[j]:
            y, m, lo, hi = np.log(y), np.log(m), np.log(lo), np.log(hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.where(y >= m, (y - m) / (hi - m), (m - y) / (m - lo))
        needed = needed[np.isfinite(needed)]
        scale.append(float(np.quantile(needed, 0.9)) if needed.size else 1.0)
    return scale
