"""Noisy, irregularly-observed 2-D spirals turning either way (Chen et al. 2018's latent ODE toy).

Each series follows one of two Archimedean spirals ``r = a + b·θ`` that wind outward,
counter-clockwise or clockwise (its mirror image), from a random starting angle. The
angle grows at one radian per time unit, so the direction is the only thing that
separates the two dynamics and a model has to read it off the observed points.
"""

from __future__ import annotations

import numpy as np

from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError

#: Radius at angle 0 and radius growth per radian: ``r(θ) = RADIUS_AT_ZERO + RADIUS_PER_RADIAN·θ``.
RADIUS_AT_ZERO = 0.5
RADIUS_PER_RADIAN = 0.25
#: Starting angles are uniform on [0, MAX_START_ANGLE) radians.
MAX_START_ANGLE = 4.0 * np.pi


def spiral_position(t: np.ndarray, start_angle: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Noiseless position [..., 2] (x, y) at times ``t`` [...] for broadcastable angle/direction.

    ``θ = start_angle + t``, ``r = a + b·θ``; ``(x, y) = r·(cos θ, direction·sin θ)``, so
    ``direction = +1`` turns counter-clockwise and ``-1`` clockwise.
    """
    theta = start_angle + t
    radius = RADIUS_AT_ZERO + RADIUS_PER_RADIAN * theta
    return np.stack([radius * np.cos(theta), direction * radius * np.sin(theta)], axis=-1)


def spiral(
    n_series: int = 300,
    n_points: int = 100,
    n_observed: int = 40,
    noise_std: float = 0.1,
    t_max: float = 6.0,
    seed: int = 0,
) -> SeriesDataset:
    """Spirals turning both ways, each observed at a random irregular subset of its grid.

    Every series has its own window of time ``[0, t_max]`` (in "s", a plain number: the
    spiral turns one radian per unit) sampled on a regular grid of ``n_points`` points;
    ``n_observed`` of those points, drawn at random without replacement and sorted, are
    observed with independent Gaussian noise of standard deviation ``noise_std`` on x and y.
    Half the series (at random) turn counter-clockwise, the rest clockwise, and each starts
    at a random angle in ``[0, 4π)``, so the start offset along the spiral is random too.

    Args:
        n_series: number of series.
        n_points: points on each series' fine ground-truth grid.
        n_observed: observed time points per series (at most ``n_points``).
        noise_std: standard deviation of the observation noise, in the units of x and y.
        t_max: length of each series' window, in time units.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        A :class:`SeriesDataset` with ids ``0 .. n_series-1`` (id column ``"series_id"``,
        time column ``"time"``, unit ``"s"``), channels ``("x", "y")``, each series of
        ``n_observed`` points with both channels observed. ``truth`` maps each id to::

            "dense_times":  float64 [n_points]     the series' fine grid
            "dense_values": float64 [n_points, 2]  noiseless (x, y) on that grid
            "values":       float64 [n_observed, 2] noiseless (x, y) at the observed times
            "direction":    int64 scalar            +1 counter-clockwise, -1 clockwise
            "start_angle":  float64 scalar          angle θ at time 0, in radians

        and holds the dataset-level entries ``"noise_std"`` (float) and ``"radius"``
        (``(a, b)`` of ``r = a + b·θ``).

    Raises:
        LatentODEError: if a size is not positive, ``n_observed > n_points``, ``t_max <= 0``
            or ``noise_std < 0``.
    """
    if n_series < 1 or n_points < 1 or not 1 <= n_observed <= n_points:
        raise LatentODEError(
            f"spiral needs n_series >= 1 and 1 <= n_observed <= n_points; got n_series="
            f"{n_series}, n_points={n_points}, n_observed={n_observed}."
        )
    if not t_max > 0 or not noise_std >= 0:
        raise LatentODEError(
            f"spiral needs t_max > 0 and noise_std >= 0; got t_max={t_max}, noise_std={noise_std}."
        )
    rng = np.random.default_rng(seed)
    dense_times = np.linspace(0.0, t_max, n_points)  # [G]
    direction = np.where(rng.random(n_series) < 0.5, 1, -1).astype(np.int64)  # [N]
    start_angle = rng.uniform(0.0, MAX_START_ANGLE, n_series)  # [N]
    dense = spiral_position(
        dense_times[None, :], start_angle[:, None], direction[:, None]
    )  # [N, G, 2]
    # a random subset of grid points per series: the n_observed smallest of random keys
    keys = rng.random((n_series, n_points))
    observed = np.sort(np.argpartition(keys, n_observed - 1, axis=1)[:, :n_observed], axis=1)
    clean = np.take_along_axis(dense, observed[:, :, None], axis=1)  # [N, T, 2]
    noisy = clean + noise_std * rng.standard_normal(clean.shape)  # [N, T, 2]

    series, truth = [], {}
    for i in range(n_series):
        series.append(make_series(i, dense_times[observed[i]], noisy[i]))
        truth[i] = {
            "dense_times": dense_times,
            "dense_values": dense[i],
            "values": clean[i],
            "direction": direction[i],
            "start_angle": start_angle[i],
        }
    truth["noise_std"] = float(noise_std)
    truth["radius"] = (RADIUS_AT_ZERO, RADIUS_PER_RADIAN)
    return SeriesDataset(
        series,
        channels=("x", "y"),
        time_axis=TimeAxis(unit="s"),
        id_name="series_id",
        time_name="time",
        truth=truth,
    )
