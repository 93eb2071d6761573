"""The horizon warm-up: training targets near the context's start first, the whole series
later, by a schedule that depends on the epoch alone."""

from __future__ import annotations

import numpy as np
import pytest

import latentode as lo
from latentode import LatentODEError
from latentode.data import Series
from latentode.data.datamodule import SeriesDataModule
from latentode.data.tasks import HORIZON_START, horizon, within_horizon
from latentode.estimator.fitting import horizon_schedule


def test_horizon_widens_by_one_share_an_epoch_up_to_the_whole_series() -> None:
    assert horizon(0, 30) == pytest.approx(HORIZON_START)
    assert horizon(15, 30) == pytest.approx(HORIZON_START + 0.5)
    assert horizon(24, 30) == pytest.approx(1.0)
    assert horizon(99, 30) == 1.0
    assert horizon(0, 0) == 1.0  # off


def test_within_horizon_keeps_the_points_near_the_context_start_on_both_sides() -> None:
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0])
    values = np.arange(7.0).reshape(-1, 1)
    series = Series("s", times, values, np.ones((7, 1), bool))
    context = series.take(np.isin(times, [3.0, 10.0]))
    # span 10, share 0.2: within 2 of t = 3
    kept = within_horizon(series, context, 0.2)
    np.testing.assert_array_equal(kept.times, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(kept.values[:, 0], [1.0, 2.0, 3.0, 4.0])
    assert within_horizon(series, context, 1.0) is series


def _series(n: int) -> lo.SeriesDataset:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        times = np.sort(rng.uniform(0, 10, 12))
        out.append(Series(k, times, rng.normal(size=(12, 1)), np.ones((12, 1), bool)))
    return lo.SeriesDataset(out, ["x"])


def test_training_targets_follow_the_schedule_by_epoch() -> None:
    data = _series(8)
    dm = SeriesDataModule(data, seed=3, horizon_epochs=10, min_epoch_examples=0)
    dm.setup("fit")
    for epoch in (0, 4, 8, 20):
        dm.set_epoch(epoch)
        share = horizon(epoch, 10)
        for i in range(len(dm._train)):
            context, target = dm._train[i]
            whole = next(s for s in data if s.id == context.id)
            reach = share * (whole.times[-1] - whole.times[0])
            expected = whole.times[np.abs(whole.times - context.times[0]) <= reach]
            np.testing.assert_array_equal(target.times, expected)
            if epoch >= 8:  # 0.2 + 8 / 10 = 1: the whole series
                assert len(target) == len(whole)
    # without the schedule the target is always the whole series
    plain = SeriesDataModule(data, seed=3, min_epoch_examples=0)
    plain.setup("fit")
    assert all(len(t) == 12 for _, t in (plain._train[i] for i in range(8)))


def test_horizon_schedule_is_a_share_of_max_epochs() -> None:
    assert horizon_schedule(0.3, 100) == 30
    assert horizon_schedule(0.3, 20) == 6
    assert horizon_schedule(0.01, 20) == 1  # on means at least one epoch
    assert horizon_schedule(0.0, 100) == 0
    for bad in (-0.1, 1.5, "0.3", True):
        with pytest.raises(LatentODEError, match="horizon_warmup must be a number in"):
            horizon_schedule(bad, 100)
