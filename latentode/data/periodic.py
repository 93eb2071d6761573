"""Noisy sinusoids on irregular times: the 1-D toy data set of Rubanova et al. 2019.

Each series is ``offset + amplitude·sin(2π·frequency·t + phase)`` with its own random
frequency, amplitude, phase and offset, observed with Gaussian noise at times drawn
uniformly at random (then sorted) on ``[0, t_max]``.
"""

from __future__ import annotations

import numpy as np

from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError

#: Ranges of the per-series parameters, each drawn uniformly.
FREQUENCY_RANGE = (0.2, 1.0)  # cycles per time unit (Hz)
AMPLITUDE_RANGE = (0.5, 1.5)
OFFSET_RANGE = (-0.5, 0.5)


def sinusoid(
    t: np.ndarray,
    frequency: np.ndarray,
    amplitude: np.ndarray,
    phase: np.ndarray,
    offset: np.ndarray,
) -> np.ndarray:
    """``offset + amplitude·sin(2π·frequency·t + phase)``, broadcast over all arguments."""
    return offset + amplitude * np.sin(2.0 * np.pi * frequency * t + phase)


def periodic(
    n_series: int = 500,
    n_points: int = 100,
    noise_std: float = 0.1,
    t_max: float = 5.0,
    n_dense: int = 200,
    seed: int = 0,
) -> SeriesDataset:
    """Sinusoids with random frequency, amplitude, phase and offset on irregular times.

    Each series is observed at ``n_points`` times drawn uniformly on ``[0, t_max]``
    (unit ``"s"``, a plain number) and sorted, with Gaussian noise of standard deviation
    ``noise_std``. Frequencies are uniform on [0.2, 1.0] cycles per unit, amplitudes on
    [0.5, 1.5], phases on [0, 2π) and offsets on [-0.5, 0.5].

    Args:
        n_series: number of series.
        n_points: observed time points per series.
        noise_std: standard deviation of the observation noise.
        t_max: end of the time window, in time units.
        n_dense: points of the regular ground-truth grid on ``[0, t_max]``.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        A :class:`SeriesDataset` with ids ``0 .. n_series-1`` (id column ``"series_id"``,
        time column ``"time"``, unit ``"s"``) and the one channel ``("value",)``.
        ``truth`` maps each id to::

            "dense_times":  float64 [n_dense]       the regular grid on [0, t_max]
            "dense_values": float64 [n_dense, 1]    noiseless values on that grid
            "values":       float64 [n_points, 1]   noiseless values at the observed times
            "frequency", "amplitude", "phase", "offset": float64 scalars

        and holds the dataset-level entry ``"noise_std"`` (float).

    Raises:
        LatentODEError: if a size is not positive, ``t_max <= 0`` or ``noise_std < 0``.
    """
    if n_series < 1 or n_points < 1 or n_dense < 2:
        raise LatentODEError(
            f"periodic needs n_series >= 1, n_points >= 1 and n_dense >= 2; got "
            f"n_series={n_series}, n_points={n_points}, n_dense={n_dense}."
        )
    if not t_max > 0 or not noise_std >= 0:
        raise LatentODEError(
            f"periodic needs t_max > 0 and noise_std >= 0; got t_max={t_max}, "
            f"noise_std={noise_std}."
        )
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(*FREQUENCY_RANGE, n_series)  # [N]
    amplitude = rng.uniform(*AMPLITUDE_RANGE, n_series)  # [N]
    phase = rng.uniform(0.0, 2.0 * np.pi, n_series)  # [N]
    offset = rng.uniform(*OFFSET_RANGE, n_series)  # [N]
    times = np.sort(rng.uniform(0.0, t_max, (n_series, n_points)), axis=1)  # [N, T]
    params = (frequency[:, None], amplitude[:, None], phase[:, None], offset[:, None])
    clean = sinusoid(times, *params)  # [N, T]
    noisy = clean + noise_std * rng.standard_normal(clean.shape)  # [N, T]
    dense_times = np.linspace(0.0, t_max, n_dense)  # [G]
    dense = sinusoid(dense_times[None, :], *params)  # [N, G]

    series, truth = [], {}
    for i in range(n_series):
        series.append(make_series(i, times[i], noisy[i]))
        truth[i] = {
            "dense_times": dense_times,
            "dense_values": dense[i][:, None],
            "values": clean[i][:, None],
            "frequency": frequency[i],
            "amplitude": amplitude[i],
            "phase": phase[i],
            "offset": offset[i],
        }
    truth["noise_std"] = float(noise_std)
    return SeriesDataset(
        series,
        channels=("value",),
        time_axis=TimeAxis(unit="s"),
        id_name="series_id",
        time_name="time",
        truth=truth,
    )
