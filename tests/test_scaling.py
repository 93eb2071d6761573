"""Scaler: fitted on observed training values only, exact inverses, plain-number serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import latentode as lo
from latentode import LatentODEError
from latentode.data import Scaler, Series
from latentode.data.scaling import common_start

CHANNELS = ("a", "b", "c")


def series_with_garbage(
    k: int, rng: np.random.Generator, garbage: float
) -> tuple[Series, np.ndarray]:
    """A series whose unobserved cells hold ``garbage``; also returns the NaN-masked values."""
    n = 3 + k
    times = np.cumsum(rng.uniform(0.1, 2.0, size=n)) + 10.0 * k
    values = rng.normal(loc=[5.0, -3.0, 100.0], scale=[1.0, 0.01, 30.0], size=(n, 3))
    mask = rng.random((n, 3)) < 0.6
    mask[0] = True  # every channel observed somewhere
    mask[:, 2] = False
    mask[1, 2] = True  # channel c: one observed value per series, always 42
    values[:, 2] = 42.0
    clean = np.where(mask, values, np.nan)
    return Series(k, times, np.where(mask, values, garbage), mask), clean


def datasets(garbage: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    pairs = [series_with_garbage(k, rng, garbage) for k in range(5)]
    return lo.SeriesDataset([s for s, _ in pairs], CHANNELS), np.concatenate([c for _, c in pairs])


def test_fit_uses_observed_values_only_and_matches_numpy():
    data, clean = datasets(garbage=np.nan)
    scaler = Scaler.fit(data)
    np.testing.assert_allclose(scaler.mean, np.nanmean(clean, axis=0), rtol=1e-13)
    std = np.nanstd(clean, axis=0)  # population std, as StandardScaler
    np.testing.assert_allclose(scaler.std[:2], std[:2], rtol=1e-12)
    assert std[2] == 0.0 and scaler.std[2] == 1.0  # a constant channel is not divided by 0
    for garbage in (1e300, -7.0, 0.0, np.inf):
        masked, _ = datasets(garbage=garbage)
        assert Scaler.fit(masked) == scaler, garbage


def test_time_scale_is_the_longest_training_span():
    data, _ = datasets(garbage=np.nan)
    spans = [s.times[-1] - s.times[0] for s in data]
    assert Scaler.fit(data).time_scale == max(spans)
    single = lo.SeriesDataset(
        [Series("x", np.array([4.0]), np.ones((1, 1)), np.ones((1, 1), bool))], ["v"]
    )
    assert Scaler.fit(single).time_scale == 1.0


def test_transforms_invert_exactly():
    data, clean = datasets(garbage=np.nan)
    scaler = Scaler.fit(data)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 7, 3)) * np.array([1.0, 0.01, 30.0]) + np.array([5.0, -3.0, 100.0])
    z = scaler.transform_values(x)
    np.testing.assert_allclose(
        z, (x - np.nanmean(clean, axis=0)) / np.array(scaler.std), rtol=1e-12
    )
    np.testing.assert_allclose(scaler.inverse_values(z), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse_std(np.ones(3)), scaler.std, rtol=0)
    for j in (0, 1):  # observed training values come out standardised
        column = np.full((int(np.sum(~np.isnan(clean[:, j]))), 3), 0.0)
        column[:, j] = clean[~np.isnan(clean[:, j]), j]
        standardised = scaler.transform_values(column)[:, j]
        np.testing.assert_allclose(standardised.mean(), 0.0, atol=1e-12)
        np.testing.assert_allclose(standardised.std(), 1.0, rtol=1e-12)
    t = np.array([3.0, 7.5, 12.25])
    m = scaler.transform_times(t, origin=3.0)
    np.testing.assert_allclose(m, (t - 3.0) / scaler.time_scale, rtol=1e-15)
    np.testing.assert_allclose(scaler.inverse_times(m, origin=3.0), t, rtol=1e-12)
    assert np.isnan(scaler.transform_values(np.full((1, 3), np.nan))).all()


def test_round_trip_through_json_as_plain_numbers():
    data, _ = datasets(garbage=np.nan)
    scaler = Scaler.fit(data)
    d = scaler.to_dict()
    assert all(type(v) is float for v in d["mean"] + d["std"]) and type(d["time_scale"]) is float
    again = Scaler.from_dict(json.loads(json.dumps(d)))
    assert again == scaler
    x = np.linspace(-2, 2, 9).reshape(3, 3)
    np.testing.assert_array_equal(again.inverse_values(x), scaler.inverse_values(x))


def test_fit_on_train_only_ignores_the_test_series():
    data, _ = datasets(garbage=np.nan)
    train = data.split(test_size=2, seed=0)[0]
    train_values = np.concatenate([np.where(s.mask, s.values, np.nan) for s in train])
    np.testing.assert_allclose(Scaler.fit(train).mean, np.nanmean(train_values, axis=0), rtol=1e-13)
    assert Scaler.fit(train) != Scaler.fit(data)


def test_fit_errors():
    with pytest.raises(LatentODEError, match="empty dataset"):
        Scaler.fit(lo.SeriesDataset([], CHANNELS))
    s = Series(
        "x",
        np.array([0.0, 1.0]),
        np.array([[1.0, 5.0], [2.0, 5.0]]),
        np.array([[True, False], [True, False]]),
    )
    with pytest.raises(LatentODEError, match=r"channel.*v.*no observed value"):
        Scaler.fit(lo.SeriesDataset([s], ["u", "v"]))


def test_series_origin_is_the_shared_start_for_series_within_one_span_of_it():
    own = Scaler(mean=(0.0,), std=(1.0,), time_scale=10.0)
    first = np.array([1.0, 2.0, 5.0, 12.0, 12.5, 30.0])
    np.testing.assert_array_equal(own.series_origin(first), first)  # each its own start
    shared = Scaler(mean=(0.0,), std=(1.0,), time_scale=10.0, time_origin=2.0)
    # before the shared origin, or more than one span (10) after it: its own start
    np.testing.assert_array_equal(shared.series_origin(first), [1.0, 2.0, 2.0, 2.0, 12.5, 30.0])


def test_a_shared_origin_is_the_earliest_training_time_and_survives_json():
    data = _starting_at([1.5, 1.5, 2.0, 30.0])  # most start together
    assert Scaler.fit(data).time_origin is None
    scaler = Scaler.fit(data, shared_origin=True)
    assert scaler.time_origin == 1.5
    d = json.loads(json.dumps(scaler.to_dict()))
    assert d["time_origin"] == scaler.time_origin
    assert Scaler.from_dict(d) == scaler
    without = {k: v for k, v in d.items() if k != "time_origin"}  # an older model file
    assert Scaler.from_dict(without).time_origin is None
    for bad in ("3", float("nan"), float("inf"), True, [1.0]):
        with pytest.raises(ValueError, match="time_origin"):
            Scaler.from_dict({**d, "time_origin": bad})


def _starting_at(firsts) -> lo.SeriesDataset:
    one = np.ones((2, 1))
    series = [
        Series(k, np.array([t, t + 10.0]), one, one.astype(bool)) for k, t in enumerate(firsts)
    ]
    return lo.SeriesDataset(series, ["v"])


def test_a_common_start_needs_half_the_series_to_start_together():
    # spans are 10: half of the series within 2.5 of the earliest start share it
    assert common_start(_starting_at([3.0, 3.0, 5.5, 40.0]), 10.0) == 3.0
    assert common_start(_starting_at([3.0, 5.6, 20.0, 40.0]), 10.0) is None  # 1 of 4
    staggered = _starting_at(np.random.default_rng(0).uniform(0, 100, 20))  # calendar time
    assert Scaler.fit(staggered, shared_origin=True).time_origin is None
    assert Scaler.fit(_starting_at([0.0] * 5 + [4.0]), shared_origin=True).time_origin == 0.0


def test_nonnegative_channels_are_those_never_negative_where_observed():
    data, clean = datasets(garbage=-1e6)  # negative garbage under the mask must not count
    scaler = Scaler.fit(data)
    expected = tuple(bool(v >= 0) for v in np.nanmin(clean, axis=0))
    assert expected == (True, False, True)  # a ~ N(5, 1), b ~ N(-3, 0.01), c = 42
    assert scaler.nonnegative == expected
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again.nonnegative == expected


def test_bound_raises_only_a_nonnegative_channel_s_negative_values_to_zero():
    scaler = Scaler((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), nonnegative=(True, False, True))
    x = np.array([[-1.5, -1.5, -0.0], [2.0, 2.0, 3.0], [np.nan, -np.inf, -np.inf]])
    want = np.array([[0.0, -1.5, 0.0], [2.0, 2.0, 3.0], [np.nan, -np.inf, 0.0]])
    np.testing.assert_array_equal(scaler.bound(x), want)
    np.testing.assert_array_equal(scaler.bound(x[None]), want[None])  # any leading shape
    unbounded = Scaler((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert unbounded.bound(x) is x


def test_scaler_files_without_or_with_bad_nonnegative_flags():
    d = Scaler.fit(datasets(garbage=np.nan)[0]).to_dict()
    old = {k: v for k, v in d.items() if k != "nonnegative"}  # files written before the bound
    assert Scaler.from_dict(old).nonnegative is None
    with pytest.raises(ValueError, match="nonnegative must be a list of true/false"):
        Scaler.from_dict({**d, "nonnegative": [1, 0, 1]})
    with pytest.raises(ValueError, match="nonnegative must be a list of true/false"):
        Scaler.from_dict({**d, "nonnegative": "yes"})
    with pytest.raises(ValueError, match="nonnegative has 2 entries for 3 channels"):
        Scaler.from_dict({**d, "nonnegative": [True, False]})
