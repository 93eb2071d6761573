"""collate: every series keeps its own clock; padding is masked and costs no union grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentode as lo
from latentode import LatentODEError
from latentode.data import Scaler, Series
from latentode.data.batching import collate
from latentode.data.scaling import StaticScaler


def irregular_series() -> list[Series]:
    """Three series with different lengths and no time stamp in common."""
    rng = np.random.default_rng(0)
    out = []
    for k, n in enumerate([5, 2, 8]):
        times = np.sort(rng.choice(10_000, size=n, replace=False)) / 97.0 + k / 7.0
        values = rng.normal(size=(n, 2)) * [2.0, 0.5] + [10.0, -1.0]
        mask = rng.random((n, 2)) < 0.7
        mask[0] = True
        static = np.array([40.0 + k, np.nan])
        out.append(
            Series(
                f"s{k}", times, np.where(mask, values, np.nan), mask, static, [1.0, None, 0.0][k]
            )
        )
    return out


SCALER = Scaler(mean=(10.0, -1.0), std=(2.0, 0.5), time_scale=25.0)


def test_each_row_keeps_its_own_times_and_length_not_the_union():
    series = irregular_series()
    union = np.unique(np.concatenate([s.times for s in series]))
    assert len(union) == 15
    b = collate(series, SCALER)
    assert b.times.shape == (3, 8)  # the longest series, not 15 union stamps
    assert b.values.shape == b.mask.shape == (3, 8, 2)
    assert b.lengths.tolist() == [5, 2, 8]
    assert b.ids == ["s0", "s1", "s2"] and len(b) == 3
    for i, s in enumerate(series):
        n = len(s)
        own = (s.times - s.times[0]) / 25.0
        np.testing.assert_allclose(b.times[i, :n].double().numpy(), own, rtol=1e-6, atol=1e-7)
        assert b.times[i, 0] == 0.0  # each series' clock starts at its first context time
        assert float(b.origin[i]) == s.times[0] and b.origin.dtype == torch.float64
        # padding repeats the last real time (zero gap) and is masked
        assert torch.all(b.times[i, n:] == b.times[i, n - 1])
        assert torch.all(b.mask[i, n:] == 0) and torch.all(b.values[i, n:] == 0)
        np.testing.assert_array_equal(b.mask[i, :n].numpy(), s.mask.astype(np.float32))
        expected = np.where(s.mask, (s.values - [10.0, -1.0]) / [2.0, 0.5], 0.0)
        np.testing.assert_allclose(b.values[i, :n].numpy(), expected, rtol=1e-6, atol=1e-6)
    # without targets the context is also the target
    assert torch.equal(b.target_times, b.times) and torch.equal(b.target_values, b.values)
    assert torch.equal(b.target_mask, b.mask) and torch.equal(b.target_lengths, b.lengths)
    assert not torch.isnan(b.values).any()


def test_targets_have_their_own_times_on_the_context_clock():
    ds = lo.SeriesDataset(irregular_series(), ["u", "v"], static_names=["age", "w"])
    context, targets = ds.subsample(0.5, seed=2)
    b = collate(list(context), SCALER, list(targets))
    assert b.times.shape[1] == max(len(c) for c in context)
    assert b.target_times.shape[1] == max(len(t) for t in targets)
    for i, (c, t) in enumerate(zip(context, targets)):
        assert float(b.origin[i]) == c.times[0]
        own = (t.times - c.times[0]) / 25.0  # relative to the context's first time
        got = b.target_times[i, : len(t)].double().numpy()
        np.testing.assert_allclose(got, own, rtol=1e-6, atol=1e-6)
        assert int(b.target_lengths[i]) == len(t)
        assert torch.all(b.target_mask[i, len(t) :] == 0)
        expected = np.where(t.mask, (t.values - [10.0, -1.0]) / [2.0, 0.5], 0.0)
        np.testing.assert_allclose(
            b.target_values[i, : len(t)].numpy(), expected, rtol=1e-6, atol=1e-6
        )


def test_a_series_with_no_context_starts_its_clock_at_its_first_target():
    s = irregular_series()[0]
    empty = s.take(np.zeros(len(s), dtype=bool))
    b = collate([empty], SCALER, [s], dtype=torch.float64)
    assert float(b.origin[0]) == s.times[0]
    assert b.lengths.tolist() == [0] and b.times.shape == (1, 1)
    assert b.mask.sum() == 0
    np.testing.assert_allclose(b.target_times[0].numpy(), (s.times - s.times[0]) / 25.0, rtol=1e-15)
    assert b.target_values.dtype == torch.float64


def test_static_covariates_and_labels():
    series = irregular_series()
    b = collate(series, SCALER, static_scaler=StaticScaler((41.0, 0.0), (2.0, 1.0)))
    np.testing.assert_allclose(b.static.numpy(), [[-0.5, 0.0], [0.0, 0.0], [0.5, 0.0]])
    raw = collate(series, SCALER)
    np.testing.assert_allclose(raw.static.numpy(), [[40.0, 0.0], [41.0, 0.0], [42.0, 0.0]])
    assert raw.labels[0] == 1.0 and torch.isnan(raw.labels[1]) and raw.labels[2] == 0.0
    plain = [Series(s.id, s.times, s.values, s.mask) for s in series]
    b = collate(plain, SCALER)
    assert b.static is None and b.labels is None


def test_batch_moves_between_devices():
    b = collate(irregular_series(), SCALER).to("cpu")
    assert b.times.device.type == "cpu" and b.ids == ["s0", "s1", "s2"]


def test_context_and_targets_must_match():
    series = irregular_series()
    with pytest.raises(LatentODEError, match="3 context series but 2 target"):
        collate(series, SCALER, series[:2])
    with pytest.raises(LatentODEError, match="differ at ids"):
        collate(series, SCALER, series[::-1])


def test_a_shared_origin_puts_points_before_the_context_at_positive_times():
    s = irregular_series()[2]
    context, hidden = s.take(np.arange(len(s)) >= 3), s.take(np.arange(len(s)) < 3)
    start = s.times[0] - 1.0  # the training data began a little before this series
    scaler = Scaler(mean=(10.0, -1.0), std=(2.0, 0.5), time_scale=25.0, time_origin=start)
    b = collate([context], scaler, [s], dtype=torch.float64)
    assert float(b.origin[0]) == start
    np.testing.assert_allclose(b.times[0].numpy(), (context.times - start) / 25.0, rtol=1e-15)
    np.testing.assert_allclose(b.target_times[0].numpy(), (s.times - start) / 25.0, rtol=1e-15)
    assert float(b.target_times[0, 0]) == pytest.approx(1.0 / 25.0)  # after the origin
    assert np.all(hidden.times < context.times[0])
