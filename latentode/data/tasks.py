"""Training tasks: which points of a series the encoder sees and which the decoder must predict.

Each training example is a (context, target) pair of the same series. Targets are
all of the series' points, so the model learns to reconstruct what it saw, fill in
what it did not (interpolation) and continue past its context (extrapolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentode.data.dataset import Series
from latentode.errors import LatentODEError

TRAIN_TASKS = ("interp", "extrap", "mixed")
#: the training horizon's first width, as a share of each series' span (see ``horizon``)
HORIZON_START = 0.2


@dataclass(frozen=True)
class TaskConfig:
    """How context points are chosen for a training example.

    Attributes:
        task: ``"interp"`` (a random subset of points), ``"extrap"`` (the points
            before a random cut) or ``"mixed"`` (each example picks one at random).
        min_frac, max_frac: range of the observed fraction (interp) or of the cut's
            position in the series' span (extrap).
    """

    task: str = "mixed"
    min_frac: float = 0.3
    max_frac: float = 0.9

    def __post_init__(self):
        if self.task not in TRAIN_TASKS:
            raise LatentODEError(f"task={self.task!r} is unknown; use one of {TRAIN_TASKS}.")
        if not 0.0 < self.min_frac <= self.max_frac <= 1.0:
            raise LatentODEError(
                f"need 0 < min_frac <= max_frac <= 1, got {self.min_frac}, {self.max_frac}."
            )


def make_example(series: Series, config: TaskConfig, rng: np.random.Generator) -> Series:
    """The context for one training example of ``series`` (the target is the whole series).

    The context always keeps at least one point. When an interpolation context misses
    the series' first points, those targets lie before the model clock's origin.
    """
    n = len(series)
    if n <= 1:
        return series
    task = config.task
    if task == "mixed":
        task = "interp" if rng.random() < 0.5 else "extrap"
    frac = rng.uniform(config.min_frac, config.max_frac)
    if task == "interp":
        keep = rng.random(n) < frac
        if not keep.any():
            keep[rng.integers(n)] = True
    else:
        cut = series.times[0] + frac * (series.times[-1] - series.times[0])
        keep = series.times <= cut
    return series.take(keep)


def hidden_part(series: Series, context: Series) -> Series:
    """The points of ``series`` that ``context`` (one of its examples) left out."""
    return series.take(~np.isin(series.times, context.times))


def horizon(epoch: int, horizon_epochs: int) -> float:
    """The training horizon of ``epoch``, a share of each series' span: it starts at
    :data:`HORIZON_START` and widens by ``1 / horizon_epochs`` an epoch up to 1, the
    whole series (from the start when ``horizon_epochs`` is 0)."""
    if horizon_epochs <= 0:
        return 1.0
    return min(1.0, HORIZON_START + epoch / horizon_epochs)


def within_horizon(series: Series, context: Series, share: float) -> Series:
    """The points of ``series`` within ``share`` of its span from ``context``'s first time
    (before or after it): the targets of a training example while the horizon is short.

    An ODE fitted to a whole long series at once can settle on the wrong frequency or
    rate and stay there: the loss over a long horizon is far from convex in the
    dynamics. Targets near the time the latent state is inferred for come first.
    """
    if share >= 1.0 or len(series) < 2 or len(context) == 0:
        return series
    reach = share * (series.times[-1] - series.times[0])
    return series.take(np.abs(series.times - context.times[0]) <= reach)
