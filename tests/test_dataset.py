"""SeriesDataset: splits by series, per-series tasks, lookup by id, against hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import latentode as lo
from latentode import LatentODEError
from latentode.data import make_series


def make_frame(n_series: int = 12, seed: int = 0) -> pd.DataFrame:
    """Series of 1..15 irregular points over two channels, with gaps in each."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_series):
        n = 1 + (k * 7) % 15
        times = np.sort(rng.choice(1000, size=n, replace=False)) / 8.0
        for t in times:
            a, b = rng.normal(size=2)
            if rng.random() < 0.3:
                a = np.nan
            elif rng.random() < 0.3:
                b = np.nan
            rows.append((f"s{k:02d}", t, a, b))
    return pd.DataFrame(rows, columns=["id", "time", "a", "b"])


@pytest.fixture(scope="module")
def ds() -> lo.SeriesDataset:
    return lo.from_dataframe(make_frame())


def points(data) -> set:
    """{(id, time, channel, value)} of every observed value."""
    out = set()
    for s in data:
        for i, j in zip(*np.nonzero(s.mask)):
            out.add((s.id, float(s.times[i]), int(j), float(s.values[i, j])))
    return out


def rows(s) -> set:
    """A series' time points with their values and masks, as hashable rows."""
    return {
        (float(t), tuple(np.nan_to_num(v, nan=1e300)), tuple(m))
        for t, v, m in zip(s.times, s.values, s.mask)
    }


# ---- split ------------------------------------------------------------------------------


def test_split_is_by_series_disjoint_complete_and_reproducible(ds):
    train, test = ds.split(test_size=0.25, seed=1)
    assert len(test) == 3 and len(train) == 9
    assert set(train.ids).isdisjoint(test.ids)
    assert sorted(train.ids + test.ids) == sorted(ds.ids)
    assert train.ids == sorted(train.ids) and test.ids == sorted(test.ids)  # dataset order
    for part in (train, test):
        assert part.channels == ds.channels and part.time_axis == ds.time_axis
        for s in part:
            assert s is ds.loc[s.id]  # whole series, untouched
    again = ds.split(test_size=0.25, seed=1)
    assert again[0].ids == train.ids and again[1].ids == test.ids
    others = {tuple(ds.split(test_size=0.25, seed=seed)[1].ids) for seed in range(8)}
    assert len(others) > 1
    assert len(ds.split(test_size=5, seed=0)[1]) == 5  # a count works too


def test_split_errors(ds):
    with pytest.raises(LatentODEError, match="at least 2"):
        ds[:1].split()
    with pytest.raises(LatentODEError, match="cannot split 12 series"):
        ds.split(test_size=1.5)
    with pytest.raises(LatentODEError, match="cannot split"):
        ds.split(test_size=40)


# ---- subsample --------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.8, 1.0])
def test_subsample_partitions_each_series_points(ds, frac):
    context, targets = ds.subsample(frac, seed=3)
    assert context.ids == ds.ids == targets.ids
    assert points(context) | points(targets) == points(ds)
    assert points(context).isdisjoint(points(targets))
    for s, c, t in zip(ds, context, targets):
        assert rows(c) | rows(t) == rows(s)
        assert not set(c.times) & set(t.times)
        assert len(c) + len(t) == len(s)
        assert len(c) >= 1
        assert abs(len(c) - frac * len(s)) <= 0.5 or len(c) == 1  # this series' own fraction
        assert np.all(np.diff(c.times) > 0) and np.all(np.diff(t.times) > 0)
        assert c.static is s.static and c.label == s.label
    if frac == 1.0:
        assert all(len(t) == 0 for t in targets)


def test_subsample_is_seeded(ds):
    a = ds.subsample(0.5, seed=7)[0]
    b = ds.subsample(0.5, seed=7)[0]
    assert all(np.array_equal(x.times, y.times) for x, y in zip(a, b))
    c = ds.subsample(0.5, seed=8)[0]
    assert any(not np.array_equal(x.times, y.times) for x, y in zip(a, c))


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.5])
def test_subsample_rejects_bad_fractions(ds, frac):
    with pytest.raises(LatentODEError, match="frac"):
        ds.subsample(frac)


# ---- split_time -------------------------------------------------------------------------


def test_split_time_by_fraction_of_each_series_own_span(ds):
    context, targets = ds.split_time(frac=0.6)
    for s, c, t in zip(ds, context, targets):
        cut = s.times[0] + 0.6 * (s.times[-1] - s.times[0])
        assert np.all(c.times < cut) and np.all(t.times >= cut)
        assert rows(c) | rows(t) == rows(s) and len(c) + len(t) == len(s)
        if len(s) > 1:
            assert len(c) >= 1 and len(t) >= 1


def test_split_time_at_a_number(ds):
    context, targets = ds.split_time(at=60.0)
    assert points(context) | points(targets) == points(ds)
    assert all(np.all(c.times < 60.0) for c in context)
    assert all(np.all(t.times >= 60.0) for t in targets)
    assert sum(len(c) for c in context) == sum(int(np.sum(s.times < 60.0)) for s in ds)


@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_split_time_at_a_datetime_in_the_users_zone(tz):
    stamps = pd.date_range("2024-03-09 20:00", periods=30, freq="37min", tz=tz)
    frame = pd.DataFrame({"id": np.repeat([1, 2], 15), "time": stamps, "x": np.arange(30.0)})
    ds = lo.from_dataframe(frame)
    at = "2024-03-10 01:30"  # naive: read in the data's own zone
    cut = pd.Timestamp(at, tz=tz)
    for when in (at, cut, cut.to_pydatetime()):
        context, targets = ds.split_time(at=when)
        before = context.to_dataframe()
        after = targets.to_dataframe()
        assert (before["time"] < cut).all() and (after["time"] >= cut).all()
        assert len(before) + len(after) == 30
        assert sorted(before["x"].tolist() + after["x"].tolist()) == list(np.arange(30.0))
        assert len(before) == int((stamps < cut).sum())


def test_split_time_errors(ds):
    with pytest.raises(LatentODEError, match="exactly one"):
        ds.split_time()
    with pytest.raises(LatentODEError, match="exactly one"):
        ds.split_time(at=1.0, frac=0.5)
    with pytest.raises(LatentODEError, match="frac"):
        ds.split_time(frac=1.0)
    with pytest.raises(LatentODEError, match="numbers"):
        ds.split_time(at=pd.Timestamp("2024-01-01"))
    with pytest.raises(LatentODEError, match="'soon'"):
        ds.split_time(at="soon")
    with pytest.raises(LatentODEError, match="not missing"):
        ds.split_time(at=np.nan)
    dated = lo.from_dataframe(
        pd.DataFrame({"id": [1], "time": [pd.Timestamp("2024-01-01")], "x": [1.0]})
    )
    with pytest.raises(LatentODEError, match="datetime"):
        dated.split_time(at=3.0)


# ---- lookup and indexing ----------------------------------------------------------------


def test_loc_by_id_and_unknown_ids(ds):
    s = ds.loc["s03"]
    assert s.id == "s03" and s is ds[3]
    sub = ds.loc[["s05", "s01"]]
    assert sub.ids == ["s05", "s01"] and sub.channels == ds.channels
    with pytest.raises(LatentODEError, match=r"no series with id 's99'.*'s00'"):
        ds.loc["s99"]
    with pytest.raises(LatentODEError, match="no series with id 3"):
        ds.loc[3]
    ints = lo.from_dataframe(pd.DataFrame({"id": [7, 3], "time": [0.0, 0.0], "x": [1.0, 2.0]}))
    assert ints.loc[7].values[0, 0] == 1.0
    assert ints.loc[np.int64(3)].values[0, 0] == 2.0


def test_indexing_by_position_slice_list_and_mask(ds):
    assert ds[0].id == "s00" and ds[-1].id == "s11"
    assert ds[2:5].ids == ["s02", "s03", "s04"]
    assert ds[[4, 0]].ids == ["s04", "s00"]
    assert ds[np.array([4, 0])].ids == ["s04", "s00"]
    mask = np.zeros(len(ds), dtype=bool)
    mask[[1, 6]] = True
    assert ds[mask].ids == ["s01", "s06"]
    with pytest.raises(LatentODEError, match="boolean index of length 2"):
        ds[np.array([True, False])]
    assert len(ds) == 12 and list(iter(ds))[3] is ds[3]
    assert ds.n_observed == sum(int(s.mask.sum()) for s in ds)
    assert "12 series" in repr(ds)


def test_subsets_keep_metadata_and_truth():
    frame = make_frame(4)
    frame["age"] = frame["id"].map({"s00": 50.0, "s01": 60.0, "s02": 70.0, "s03": 80.0})
    ds = lo.from_dataframe(frame, static_cols=["age"])
    ds = lo.SeriesDataset(
        list(ds), ds.channels, ds.time_axis, ds.static_names, truth={"s00": 1, "s02": 3}
    )
    for part in (
        ds[1:],
        ds.split(test_size=0.5)[0],
        ds.subsample(0.5)[0],
        ds.split_time(frac=0.5)[1],
    ):
        assert part.truth == {"s00": 1, "s02": 3}
        assert part.static_names == ("age",)
        assert part.channels == ("a", "b")


def test_to_dataframe_rejects_unknown_formats(ds):
    with pytest.raises(LatentODEError, match="'tidy'"):
        ds.to_dataframe("tidy")


def test_to_dataframe_of_an_empty_part_has_the_columns(ds):
    targets = ds.subsample(1.0)[1]
    out = targets.to_dataframe()
    assert len(out) == 0 and list(out.columns) == ["id", "time", "a", "b"]


# ---- the container's own checks ---------------------------------------------------------


def test_make_series_masks_nan_and_checks_its_input():
    s = make_series("x", [0.0, 1.5, 2.0], [[1.0, np.nan], [np.nan, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(s.mask, [[True, False], [False, True], [True, True]])
    assert s.n_observed == 4 and len(s) == 3
    masked = make_series("y", [0.0, 1.0], [1.0, 2.0], mask=[True, False])
    assert np.isnan(masked.values[1, 0]) and masked.n_observed == 1
    with pytest.raises(LatentODEError, match="strictly increasing"):
        make_series("z", [0.0, 0.0], [1.0, 2.0])
    with pytest.raises(LatentODEError, match="3 times but 2 rows"):
        make_series("z", [0.0, 1.0, 2.0], [1.0, 2.0])
    with pytest.raises(LatentODEError, match="mask has shape"):
        make_series("z", [0.0, 1.0], [[1.0, 2.0], [3.0, 4.0]], mask=[True, False])


def test_dataset_rejects_duplicate_ids_and_wrong_channel_counts():
    a = make_series("a", [0.0], [[1.0, 2.0]])
    with pytest.raises(LatentODEError, match="unique"):
        lo.SeriesDataset([a, a], ["u", "v"])
    with pytest.raises(LatentODEError, match="has 2 channels, dataset has 3"):
        lo.SeriesDataset([a], ["u", "v", "w"])


# ---- the user's times -------------------------------------------------------------------


def test_time_axis_reads_the_users_times_in_their_own_kind_and_zone():
    frame = pd.DataFrame(
        {
            "id": [1, 1],
            "time": pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-01 12:00"], tz="Europe/Paris"),
            "x": [1.0, 2.0],
        }
    )
    axis = lo.from_dataframe(frame).time_axis
    # 10:00 in Paris is 09:00 UTC, 9 h after the origin (midnight UTC of the first day)
    for same in (
        "2024-01-01 10:00",  # naive: read in the data's zone
        pd.Timestamp("2024-01-01 09:00", tz="UTC"),
        pd.DatetimeIndex(["2024-01-01 04:00"], tz="America/New_York"),
        np.array(["2024-01-01T10:00"], dtype="datetime64[ns]"),
    ):
        np.testing.assert_array_equal(axis.from_user(same), [9.0])
    np.testing.assert_array_equal(axis.from_user(["2024-01-01 11:00", None]), [10.0, np.nan])
    back = axis.to_user(axis.from_user(frame["time"]))
    assert list(back) == list(frame["time"])
    with pytest.raises(LatentODEError, match=r"could not read 5\.0 as a datetime"):
        axis.from_user([5.0])
    with pytest.raises(LatentODEError, match="'noon'"):
        axis.from_user(["noon"])

    numeric = lo.from_dataframe(pd.DataFrame({"id": [1], "time": [0.5], "x": [1.0]})).time_axis
    np.testing.assert_array_equal(numeric.from_user([0.5, "1.5", None]), [0.5, 1.5, np.nan])
    np.testing.assert_array_equal(numeric.from_user(np.arange(3)), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(numeric.to_user(np.array([0.25])), [0.25])
    for wrong in (
        [pd.Timestamp("2024-01-01")],
        np.array(["2024-01-01"], dtype="datetime64[ns]"),
        pd.to_timedelta([1], unit="h"),
    ):
        with pytest.raises(LatentODEError, match="numbers"):
            numeric.from_user(wrong)
    with pytest.raises(LatentODEError, match="'abc'"):
        numeric.from_user(["abc"])
