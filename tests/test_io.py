"""read_csv / from_dataframe against independent truth: round trips, located errors, duplicates.

Expected results are written out by hand or computed from the input frame with plain
pandas, never with latentode's own helpers.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import latentode as lo
from latentode import LatentODEError
from latentode.data.io import HEAD_BYTES

# ---- helpers ------------------------------------------------------------------------


def assert_same_dataset(a: lo.SeriesDataset, b: lo.SeriesDataset, zone_name: bool = True) -> None:
    """Two datasets hold the same series, values, metadata and time axis, exactly.

    ``zone_name=False``: the time zones may differ in name only (a CSV file keeps UTC
    offsets, not zone names such as Europe/Paris); the float times must still agree.
    """
    assert a.ids == b.ids
    assert [type(i) for i in a.ids] == [type(i) for i in b.ids]
    assert a.channels == b.channels
    if zone_name:
        assert a.time_axis == b.time_axis
    else:
        assert replace(a.time_axis, tz=None) == replace(b.time_axis, tz=None)
    assert a.static_names == b.static_names
    assert a.label_name == b.label_name
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.times, t.times)
        np.testing.assert_array_equal(s.mask, t.mask)
        np.testing.assert_array_equal(s.values, t.values)  # NaN == NaN here
        assert (s.static is None) == (t.static is None)
        if s.static is not None:
            np.testing.assert_array_equal(s.static, t.static)
        assert s.label == t.label


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def reread_csv(ds: lo.SeriesDataset, tmp_path, fmt: str = "wide", **kwargs) -> lo.SeriesDataset:
    """Write ``ds.to_dataframe(fmt)`` to a CSV and read it back."""
    path = tmp_path / f"again_{fmt}.csv"
    ds.to_dataframe(fmt).to_csv(path, index=False)
    return lo.read_csv(path, id_col=ds.id_name, time_col=ds.time_name, format=fmt, **kwargs)


def observed_cells(ds: lo.SeriesDataset) -> dict:
    """{(str id, time in user units, channel): value} for every observed value."""
    long = ds.to_dataframe("long")
    return {
        (str(i), t, v): x
        for i, t, v, x in zip(long[ds.id_name], long[ds.time_name], long["variable"], long["value"])
    }


# ---- round trips ----------------------------------------------------------------------

WIDE = pd.DataFrame(
    {
        "id": [2, 1, 1, 2, 1, 2, 1],
        "time": [0.5, 3.25, 0.1, 0.0, 1.7, 7.125, 2.0],
        "hr": [71.5, np.nan, 60.0, 88.25, 1e-300, np.nan, np.nan],
        "bp": [120.0, 118.3, np.nan, np.nan, -3.0e12, 0.1 + 0.2, np.nan],
    }
)  # unsorted; the last row observes nothing


def expected_wide(df: pd.DataFrame, channels=("hr", "bp")) -> pd.DataFrame:
    """What the data is once read: rows observing nothing go, sorted by (id, time)."""
    out = df.dropna(how="all", subset=list(channels)).sort_values(["id", "time"], kind="stable")
    return out.reset_index(drop=True)


def test_wide_csv_round_trip_keeps_every_value_exactly(tmp_path):
    path = tmp_path / "wide.csv"
    WIDE.to_csv(path, index=False)
    ds = lo.read_csv(path, id_col="id", time_col="time")
    assert ds.ids == [1, 2] and all(type(i) is int for i in ds.ids)
    assert ds.channels == ("hr", "bp")
    assert ds.n_observed == int(WIDE[["hr", "bp"]].notna().sum().sum())
    out = ds.to_dataframe()
    pd.testing.assert_frame_equal(out, expected_wide(WIDE), check_dtype=False)
    assert out["id"].dtype == np.int64
    # each series on its own clock, strictly increasing
    np.testing.assert_array_equal(ds.loc[1].times, [0.1, 1.7, 3.25])
    np.testing.assert_array_equal(ds.loc[2].times, [0.0, 0.5, 7.125])
    assert_same_dataset(reread_csv(ds, tmp_path), ds)
    # long format orders channels by name unless told: ask for the wide order
    assert_same_dataset(reread_csv(ds, tmp_path, "long", channels=list(ds.channels)), ds)


def test_wide_dataframe_round_trip(tmp_path):
    ds = lo.from_dataframe(WIDE, id_col="id", time_col="time")
    pd.testing.assert_frame_equal(ds.to_dataframe(), expected_wide(WIDE), check_dtype=False)
    assert_same_dataset(lo.from_dataframe(ds.to_dataframe()), ds)
    long = ds.to_dataframe("long")
    assert_same_dataset(lo.from_dataframe(long, format="long", channels=["hr", "bp"]), ds)
    assert_same_dataset(reread_csv(ds, tmp_path), ds)


def test_unsorted_rows_give_sorted_series_with_the_same_values():
    ordered = expected_wide(WIDE)
    shuffled = ordered.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled.equals(ordered)
    assert_same_dataset(lo.from_dataframe(shuffled), lo.from_dataframe(ordered))
    for s in lo.from_dataframe(shuffled):
        assert np.all(np.diff(s.times) > 0)


LONG = pd.DataFrame(
    {
        "pid": ["007", "007", "42", "007", "42", "42", "007", "42"],
        "t": [3.0, 1.0, 0.5, 1.0, 0.25, 0.5, 2.0, 9.0],
        "param": ["HR", "HR", "Temp", "Temp", "HR", "HR", "Temp", "Temp"],
        "val": [80.0, 72.0, 36.6, 37.1, 90.5, 91.0, np.nan, -0.0],
    }
)


def test_long_csv_round_trip_with_own_column_names(tmp_path):
    path = tmp_path / "long.csv"
    LONG.to_csv(path, index=False)
    kw = dict(id_col="pid", time_col="t", format="long", variable_col="param", value_col="val")
    ds = lo.read_csv(path, **kw)
    assert ds.ids == ["007", "42"]  # "007" stays a string, so "42" does too
    assert ds.channels == ("HR", "Temp")
    assert ds.n_observed == 7  # the NaN value is not an observation
    got = ds.to_dataframe("long").sort_values(["pid", "t", "param"]).reset_index(drop=True)
    want = LONG.dropna(subset=["val"]).sort_values(["pid", "t", "param"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # wide view of the same data: one row per (id, time)
    wide = ds.to_dataframe("wide")
    assert list(wide.columns) == ["pid", "t", "HR", "Temp"]
    row = wide[(wide.pid == "007") & (wide.t == 1.0)].iloc[0]
    assert (row.HR, row.Temp) == (72.0, 37.1)
    # reading the output back (same arguments) gives the identical dataset
    again = tmp_path / "again.csv"
    ds.to_dataframe("long").to_csv(again, index=False)
    assert_same_dataset(lo.read_csv(again, **kw), ds)
    assert_same_dataset(lo.from_dataframe(ds.to_dataframe("long"), **kw), ds)
    assert_same_dataset(lo.read_csv(again, **kw), lo.from_dataframe(LONG, **kw))


def matrix_frame(times: str, ids: str) -> pd.DataFrame:
    """Wide frame: 3 series, unsorted, gaps, one row observing nothing."""
    stamps = {
        "numeric": [0.25, 3.0, 1.5, 0.0, 2.75, 9.5, 4.0, 1.0],
        "naive": pd.to_datetime(
            [
                "2024-01-01 10:00",
                "2024-01-02 00:15",
                "2024-01-01 12:30:30",
                "2023-12-31 23:59",
                "2024-01-01 09:00",
                "2024-01-05 00:00",
                "2024-01-03 06:00",
                "2024-01-01 11:00",
            ],
            format="ISO8601",
        ),
    }
    stamps["aware"] = stamps["naive"].tz_localize("Europe/Paris")
    id_values = {
        "int": [3, 10, 3, 10, 2, 3, 10, 2],
        "str": ["007", "42", "007", "42", "x", "007", "42", "x"],
    }
    return pd.DataFrame(
        {
            "id": id_values[ids],
            "time": stamps[times],
            "a": [1.5, np.nan, -2.0, 1e-3, 7.0, np.nan, 0.1 + 0.2, np.nan],
            "b": [np.nan, 4.0, 8.5, np.nan, -1e9, 2.0, np.nan, np.nan],
        }
    )


def records(frame: pd.DataFrame) -> list[tuple]:
    """Observed values as sorted (id, time, variable, value), times as UTC instants."""
    long = frame.melt(id_vars=["id", "time"], value_vars=["a", "b"]).dropna(subset=["value"])
    out = []
    for i, t, var, v in long.itertuples(index=False):
        t = pd.Timestamp(t) if not isinstance(t, float) else t
        key = t.tz_convert("UTC").tz_localize(None) if getattr(t, "tz", None) else t
        out.append((str(i), key, var, v))
    return sorted(out, key=repr)


@pytest.mark.parametrize("times", ["numeric", "naive", "aware"])
@pytest.mark.parametrize("ids", ["int", "str"])
@pytest.mark.parametrize("fmt", ["wide", "long"])
@pytest.mark.parametrize("source", ["csv", "frame"])
def test_round_trip_matrix(times, ids, fmt, source, tmp_path):
    wide = matrix_frame(times, ids)
    frame = wide if fmt == "wide" else wide.melt(id_vars=["id", "time"]).dropna()
    if source == "csv":
        path = tmp_path / "in.csv"
        frame.to_csv(path, index=False)
        ds = lo.read_csv(path, format=fmt)
    else:
        ds = lo.from_dataframe(frame, format=fmt)
    assert ds.ids == sorted(set(wide["id"]))
    assert ds.time_axis.is_datetime == (times != "numeric")
    out = ds.to_dataframe()
    assert records(out) == records(wide)  # every observed value, exactly, in user units
    if times == "aware" and source == "frame":
        assert str(out["time"].dt.tz) == "Europe/Paris"
    for s in ds:
        assert np.all(np.diff(s.times) > 0)
    named_zone = times == "aware" and source == "frame"
    assert_same_dataset(reread_csv(ds, tmp_path, fmt), ds, zone_name=not named_zone)
    assert_same_dataset(lo.from_dataframe(ds.to_dataframe(fmt), format=fmt), ds)


def test_string_ids_with_leading_zeros_stay_strings(tmp_path):
    path = write(tmp_path, "ids.csv", "id,time,x\n007,0,1\n7,0,2\n0,1,3\n007,1,4\n")
    ds = lo.read_csv(path)
    assert ds.ids == ["0", "007", "7"]
    np.testing.assert_array_equal(ds.loc["007"].values[:, 0], [1.0, 4.0])
    np.testing.assert_array_equal(ds.loc["7"].values[:, 0], [2.0])
    assert ds.to_dataframe()["id"].tolist() == ["0", "007", "007", "7"]
    assert_same_dataset(reread_csv(ds, tmp_path), ds)


def test_plain_integer_ids_become_ints_and_text_ids_strings(tmp_path):
    ints = lo.read_csv(write(tmp_path, "a.csv", "id,time,x\n10,0,1\n-3,0,2\n9,0,3\n"))
    assert ints.ids == [-3, 9, 10]
    zeros = lo.read_csv(write(tmp_path, "z.csv", "id,time,x\n0,0,1\n-0,0,2\n+0,0,3\n"))
    assert zeros.ids == ["+0", "-0", "0"]  # three different texts, three series
    text = lo.read_csv(write(tmp_path, "b.csv", "id,time,x\nb,0,1\na,0,2\n a ,1,3\n"))
    assert text.ids == ["a", "b"]
    assert text.loc["a"].n_observed == 2
    frame = pd.DataFrame({"id": [2.0, 1.0], "time": [0, 0], "x": [1.0, 2.0]})
    assert lo.from_dataframe(frame).ids == [1, 2]  # whole floats are integer ids
    frame = pd.DataFrame({"id": [2.5, 1.5], "time": [0, 0], "x": [1.0, 2.0]})
    ds = lo.from_dataframe(frame)
    assert ds.ids == [1.5, 2.5]
    assert_same_dataset(lo.from_dataframe(ds.to_dataframe()), ds)


def test_naive_datetimes_come_back_in_the_users_units(tmp_path):
    text = (
        "id,time,x\n"
        "a,2024-01-31 13:45,1.5\n"
        "a,2024-01-31 12:00,2.5\n"
        "b,2024-02-01 00:01,3.5\n"
        "a,2024-02-02 08:30,4.5\n"
    )
    ds = lo.read_csv(write(tmp_path, "dt.csv", text))
    assert ds.time_axis.is_datetime and ds.time_unit == "h"
    # hours since midnight of the first day: 12:00 → 12, 13:45 → 13.75
    np.testing.assert_allclose(ds.loc["a"].times, [12.0, 13.75, 12.0 + 24.0 + 20.5], rtol=0)
    np.testing.assert_allclose(ds.loc["b"].times, [24.0 + 1 / 60], rtol=1e-15)
    out = ds.to_dataframe()
    want = pd.to_datetime(
        ["2024-01-31 12:00", "2024-01-31 13:45", "2024-02-02 08:30", "2024-02-01 00:01"]
    )
    assert list(out["time"]) == list(want)
    assert out["x"].tolist() == [2.5, 1.5, 4.5, 3.5]
    assert_same_dataset(reread_csv(ds, tmp_path), ds)
    minutes = lo.read_csv(tmp_path / "dt.csv", time_unit="min")
    np.testing.assert_array_equal(minutes.loc["a"].times, [720.0, 825.0, 2880 + 510.0])
    assert list(minutes.to_dataframe()["time"]) == list(want)


def test_tz_aware_dataframe_round_trip_across_daylight_saving():
    times = pd.to_datetime(
        ["2024-03-30 23:15", "2024-03-31 04:00", "2024-03-31 12:30:05", "2024-03-30 09:00"],
        format="ISO8601",
    ).tz_localize("Europe/Paris")  # the clocks moved at 02:00 on 31 March
    df = pd.DataFrame({"id": [1, 1, 1, 2], "time": times, "x": [1.0, 2.0, 3.0, 4.0]})
    ds = lo.from_dataframe(df)
    assert ds.time_axis.tz == "Europe/Paris"
    # 23:15 CET = 22:15 UTC, 04:00 CEST = 02:00 UTC: 3.75 h apart, not 4.75
    np.testing.assert_allclose(np.diff(ds.loc[1].times)[0], 3.75, rtol=1e-15)
    out = ds.to_dataframe()
    assert str(out["time"].dt.tz) == "Europe/Paris"
    assert list(out["time"]) == list(times)
    assert_same_dataset(lo.from_dataframe(out), ds)


def test_tz_aware_csv_round_trip(tmp_path):
    text = "id,time,x\n1,2024-01-01 10:00:00+01:00,1\n1,2024-01-01 08:30:00+01:00,2\n"
    ds = lo.read_csv(write(tmp_path, "tz.csv", text))
    out = ds.to_dataframe()
    assert list(out["time"]) == [
        pd.Timestamp("2024-01-01 08:30+01:00"),
        pd.Timestamp("2024-01-01 10:00+01:00"),
    ]
    assert out["time"].dt.strftime("%H:%M%z").tolist() == ["08:30+0100", "10:00+0100"]
    assert_same_dataset(reread_csv(ds, tmp_path), ds)


def test_csv_with_two_utc_offsets_reads_as_the_same_instants(tmp_path):
    # what to_csv writes for Europe/Paris times on both sides of a DST change
    text = "id,time,x\n1,2024-03-30 12:00:00+01:00,1\n1,2024-03-31 12:00:00+02:00,2\n"
    ds = lo.read_csv(write(tmp_path, "dst.csv", text))
    np.testing.assert_allclose(np.diff(ds[0].times), [23.0], rtol=1e-15)
    got = list(ds.to_dataframe()["time"])
    assert got == [pd.Timestamp("2024-03-30 11:00Z"), pd.Timestamp("2024-03-31 10:00Z")]
    assert_same_dataset(reread_csv(ds, tmp_path), ds)


def test_static_covariates_and_label_column_round_trip(tmp_path):
    df = pd.DataFrame(
        {
            "id": ["p1", "p1", "p2", "p2", "p3"],
            "time": [0.0, 1.0, 0.0, 2.0, 5.0],
            "age": [61.0, 61.0, np.nan, 45.0, np.nan],  # NaN = unknown, not a conflict
            "sex": [1.0, 1.0, 0.0, 0.0, 1.0],
            "death": [0, 0, 1, 1, np.nan],
            "hr": [80.0, 82.0, np.nan, 70.0, 65.0],
        }
    )
    kw = dict(static_cols=["age", "sex"], label_col="death")
    ds = lo.from_dataframe(df, **kw)
    assert ds.channels == ("hr",)
    assert ds.static_names == ("age", "sex")
    np.testing.assert_array_equal(ds.loc["p1"].static, [61.0, 1.0])
    np.testing.assert_array_equal(ds.loc["p2"].static, [45.0, 0.0])
    np.testing.assert_array_equal(ds.loc["p3"].static, [np.nan, 1.0])
    assert [s.label for s in ds] == [0.0, 1.0, None]
    assert ds.has_labels
    # p2's first row observes nothing: it is no time point
    np.testing.assert_array_equal(ds.loc["p2"].times, [2.0])
    out = ds.to_dataframe()
    assert out["age"].tolist()[:2] == [61.0, 61.0]
    assert_same_dataset(lo.from_dataframe(out, **kw), ds)
    assert_same_dataset(reread_csv(ds, tmp_path, **kw), ds)
    assert_same_dataset(lo.from_dataframe(ds.to_dataframe("long"), format="long", **kw), ds)


def test_static_variable_given_as_long_rows():
    df = pd.DataFrame(
        {
            "id": [1, 1, 1, 2, 2],
            "time": [0.0, 0.0, 1.0, 0.0, 3.0],
            "variable": ["Age", "HR", "HR", "HR", "Age"],
            "value": [70.0, 88.0, 90.0, 60.0, 33.0],
        }
    )
    ds = lo.from_dataframe(df, format="long", static_cols=["Age"])
    assert ds.channels == ("HR",)
    assert [float(s.static[0]) for s in ds] == [70.0, 33.0]
    # series 2's only row at t=3 was the static value, not a measurement
    np.testing.assert_array_equal(ds.loc[2].times, [0.0])
    bad = df.assign(value=[70.0, 88.0, 90.0, 60.0, 33.0])
    bad.loc[len(bad)] = [1, 5.0, "Age", 71.0]
    with pytest.raises(LatentODEError, match=r"'Age'.*series 1.*70 and 71"):
        lo.from_dataframe(bad, format="long", static_cols=["Age"])


@pytest.mark.parametrize("as_file", [True, False])
def test_labels_from_a_separate_table(tmp_path, as_file):
    data = write(tmp_path, "d.csv", "id,time,x\n007,0,1\n008,0,2\n009,0,3\n")
    table = pd.DataFrame({"id": ["008", "007", "999"], "mortality": [1, 0, 1]})
    if as_file:
        labels = tmp_path / "labels.csv"
        table.to_csv(labels, index=False)
    else:
        labels = table
    with pytest.warns(UserWarning, match="1 label"):
        ds = lo.read_csv(data, labels=labels)
    assert ds.label_name == "mortality"
    assert {s.id: s.label for s in ds} == {"007": 0.0, "008": 1.0, "009": None}
    out = ds.to_dataframe()
    assert out["mortality"].tolist()[:2] == [0.0, 1.0]
    assert_same_dataset(lo.from_dataframe(out, label_col="mortality"), ds)


def test_label_table_with_integer_ids_matches_integer_ids():
    df = pd.DataFrame({"id": [3, 1], "time": [0.0, 0.0], "x": [1.0, 2.0]})
    ds = lo.from_dataframe(df, labels=pd.DataFrame({"id": [1.0, 3.0], "y": [0, 1]}))
    assert [s.label for s in ds] == [0.0, 1.0]


def test_channels_selects_and_orders_columns_and_variables():
    ds = lo.from_dataframe(WIDE, channels=["bp"])
    assert ds.channels == ("bp",)
    assert ds.n_observed == int(WIDE["bp"].notna().sum())
    long = lo.from_dataframe(
        LONG,
        id_col="pid",
        time_col="t",
        format="long",
        variable_col="param",
        value_col="val",
        channels=["Temp", "HR"],
    )
    assert long.channels == ("Temp", "HR")
    assert long.n_observed == 7


def test_numeric_time_strings_and_compressed_files(tmp_path):
    path = tmp_path / "w.csv.gz"
    WIDE.to_csv(path, index=False)
    assert_same_dataset(lo.read_csv(path), lo.from_dataframe(WIDE))
    df = WIDE.assign(time=WIDE["time"].map(repr).astype(object))
    assert_same_dataset(lo.from_dataframe(df), lo.from_dataframe(WIDE))


def test_semicolon_file_reads_with_sep(tmp_path):
    path = write(tmp_path, "semi.csv", "id;time;x\n1;0.5;2\n1;0.25;3\n")
    ds = lo.read_csv(path, sep=";")
    np.testing.assert_array_equal(ds[0].times, [0.25, 0.5])


# ---- duplicates -----------------------------------------------------------------------


def test_identical_duplicates_and_complementary_rows_merge_without_loss():
    df = pd.DataFrame(
        {
            "id": [1, 1, 1, 1, 2],
            "time": [0.0, 0.0, 0.0, 1.0, 0.0],
            "a": [5.0, 5.0, np.nan, 1.0, 2.0],  # rows 0 and 1 repeat the same value
            "b": [np.nan, np.nan, 7.0, np.nan, 3.0],  # row 2 fills the other channel
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = lo.from_dataframe(df)
    np.testing.assert_array_equal(ds.loc[1].times, [0.0, 1.0])
    np.testing.assert_array_equal(ds.loc[1].values, [[5.0, 7.0], [1.0, np.nan]])
    long = df.melt(id_vars=["id", "time"]).dropna()
    ds_long = lo.from_dataframe(long, format="long")
    assert_same_dataset(ds_long, ds)


DUP_WIDE = pd.DataFrame(
    {
        "id": [1, 2, 1, 2, 1, 1],
        "time": [0.0, 0.0, 0.0, 5.0, 0.0, 1.0],
        "a": [1.0, 9.0, 4.0, 9.5, 7.0, 0.5],
        "b": [np.nan, 8.0, 2.0, np.nan, np.nan, np.nan],
    }
)  # id 1 at time 0 is on rows 0, 2 and 4 (file order): a = 1, 4, 7 and b = 2


@pytest.mark.parametrize(
    "policy, a, b", [("mean", 4.0, 2.0), ("first", 1.0, 2.0), ("last", 7.0, 2.0)]
)
@pytest.mark.parametrize("fmt", ["wide", "long"])
def test_duplicate_policies_give_hand_computed_values(policy, a, b, fmt, tmp_path):
    df = DUP_WIDE
    if fmt == "long":
        # one row per value, in the same file order per cell
        df = DUP_WIDE.reset_index().melt(id_vars=["index", "id", "time"]).dropna()
        df = df.sort_values(["index", "variable"]).drop(columns="index").reset_index(drop=True)
    ds = lo.from_dataframe(df, format=fmt, duplicates=policy)
    one = ds.loc[1]
    np.testing.assert_array_equal(one.times, [0.0, 1.0])
    np.testing.assert_array_equal(one.values[0], [a, b])
    np.testing.assert_array_equal(one.values[1], [0.5, np.nan])
    np.testing.assert_array_equal(ds.loc[2].values, [[9.0, 8.0], [9.5, np.nan]])
    path = tmp_path / "dups.csv"
    df.to_csv(path, index=False)
    assert_same_dataset(lo.read_csv(path, format=fmt, duplicates=policy), ds)


def test_conflicting_duplicates_raise_naming_series_time_channel_and_lines(tmp_path):
    path = tmp_path / "dups.csv"
    DUP_WIDE.to_csv(path, index=False)
    with pytest.raises(LatentODEError) as err:
        lo.read_csv(path)
    msg = str(err.value)
    for part in ["series 1", "time 0.0", "channel 'a'", "line 2", "line 4", "duplicates="]:
        assert part in msg, (part, msg)
    with pytest.raises(LatentODEError, match=r"row with index 'r2'"):
        lo.from_dataframe(DUP_WIDE.set_axis([f"r{i}" for i in range(6)]))
    # the same cells as unsorted long rows: (1, 0.0, a) is on data rows 0, 3 and 6
    long = DUP_WIDE.reset_index().melt(id_vars=["index", "id", "time"]).dropna()
    long = long.sort_values(["index", "variable"]).drop(columns="index")
    long.to_csv(path, index=False)
    with pytest.raises(LatentODEError) as err:
        lo.read_csv(path, format="long")
    for part in [
        "series 1",
        "channel 'a'",
        "values 1, 4, 7",
        "line 2 of",
        "line 5 of",
        "line 8 of",
    ]:
        assert part in str(err.value), (part, str(err.value))


def test_conflicting_long_duplicates_name_datetime_in_user_units(tmp_path):
    text = (
        "id,time,variable,value\n"
        "x,2024-05-01 10:00,HR,80\n"
        "x,2024-05-01 10:00,BP,120\n"
        "x,2024-05-01 10:00,HR,81\n"
    )
    with pytest.raises(LatentODEError) as err:
        lo.read_csv(write(tmp_path, "l.csv", text), format="long")
    msg = str(err.value)
    for part in ["series 'x'", "2024-05-01 10:00:00", "channel 'HR'", "line 2", "line 4"]:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(
    ("names", "want"),
    [
        (["01", "2", "01"], ["01", "2"]),  # pandas alone would read 1 and 2
        (["True", "False", "True"], ["False", "True"]),  # ... or booleans
        (["1.50", "hr", "1.50"], ["1.50", "hr"]),  # mixed: text as written
    ],
)
def test_long_variable_names_stay_text_as_written(tmp_path, names, want):
    rows = "".join(f"a,{t},{n},{t + 1}\n" for t, n in enumerate(names))
    ds = lo.read_csv(write(tmp_path, "l.csv", "id,time,variable,value\n" + rows), format="long")
    assert list(ds.channels) == want
    for t, n in enumerate(names):  # each value under its own name, at its own time
        assert ds[0].values[t, want.index(n)] == t + 1


def test_categorical_columns_read_as_their_values():
    """Categorical id and variable columns are read by their codes: the dataset of the
    same columns as text, and a category that no row holds is no series or channel."""
    kw = dict(id_col="pid", time_col="t", format="long", variable_col="param", value_col="val")
    coded = LONG.assign(
        pid=pd.Categorical(LONG["pid"], categories=["x9", "42", "007"]),
        param=pd.Categorical(LONG["param"], categories=["unused", "Temp", "HR"]),
    )
    got = lo.from_dataframe(coded, **kw)
    assert got.ids == ["007", "42"] and got.channels == ("HR", "Temp")
    assert_same_dataset(got, lo.from_dataframe(LONG, **kw))
    # a missing name is still refused, with its row
    gap = coded.assign(param=coded["param"].where(np.arange(len(coded)) != 5))
    with pytest.raises(LatentODEError, match="row with index 5: missing variable name"):
        lo.from_dataframe(gap, **kw)


SPACED_LONG = [  # (the file's text, the same data without the spaces)
    (
        "id, time, variable, value\n007, 1.5, HR, 80\n007,\t2, HR, 81\n 42, 1, Temp, 36.6\n",
        "id,time,variable,value\n007,1.5,HR,80\n007,2,HR,81\n42,1,Temp,36.6\n",
    ),
    (  # quoted after a space: "HR,mean" is one name, "007" one id
        'id,time,variable,value\n "007",1, "HR,mean",80\n"007",2,"HR,mean", 81\n',
        'id,time,variable,value\n007,1,"HR,mean",80\n007,2,"HR,mean",81\n',
    ),
    (  # datetimes, a missing value written " NA", names pandas would read as numbers
        "id,time,variable,value\na, 2024-01-01 10:00, 01,1\na,2024-01-01 10:30, 2, NA\n"
        "a,2024-01-01 10:30,01, 3\na,2024-01-01 11:00,2,5\n",
        "id,time,variable,value\na,2024-01-01 10:00,01,1\na,2024-01-01 10:30,2,\n"
        "a,2024-01-01 10:30,01,3\na,2024-01-01 11:00,2,5\n",
    ),
]


@pytest.fixture
def parses(monkeypatch) -> list:
    """The ``skipinitialspace`` of each ``pandas.read_csv`` call, in order."""
    calls = []
    read = pd.read_csv

    def counted(*args, **kwargs):
        calls.append(kwargs.get("skipinitialspace"))
        return read(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counted)
    return calls


@pytest.mark.parametrize("spaced, plain", SPACED_LONG)
@pytest.mark.parametrize("where", ["first lines", "deep in the file"])
def test_spaces_after_delimiters_are_skipped(tmp_path, parses, spaced, plain, where):
    """A file whose first lines have no spaces after delimiters is parsed first with
    them kept, which is faster; text that begins with a space (or a quote after one) is
    read again skipping them. Either way the data is that of the same file without the
    spaces, and a file without such spaces is parsed once."""
    header, rows = plain.split("\n", 1)
    stamp = "2024-02-01 0{}:00" if "2024" in rows else "{}"  # the case's kind of time
    filler = "".join(f"z{k // 4},{stamp.format(k % 4)},HR,{k}\n" for k in range(8_000))
    assert len(filler) > HEAD_BYTES  # "deep in the file" is past what the sniff reads
    if where == "deep in the file":
        spaced = header + "\n" + filler + spaced.split("\n", 1)[1]
        plain = header + "\n" + filler + rows
    want = lo.read_csv(write(tmp_path, "plain.csv", plain), format="long")
    assert parses[:1] == [False] and True not in parses  # no second reading
    parses.clear()
    got = lo.read_csv(write(tmp_path, "spaced.csv", spaced), format="long")
    assert parses[0] is (where == "first lines") and parses[-1] is True
    assert_same_dataset(got, want)


def test_spaced_wide_file_and_header_read_as_without_spaces(tmp_path):
    spaced = "id, time, hr, bp\n1, 0.5, 71, \n1, 1.0, , 120\n2, 0.0, 80, 110\n"
    want = lo.read_csv(write(tmp_path, "w.csv", spaced.replace(" ", "")))
    assert_same_dataset(lo.read_csv(write(tmp_path, "ws.csv", spaced)), want)
    assert want.channels == ("hr", "bp") and want.n_observed == 4


# ---- empty series and channels --------------------------------------------------------


EMPTY = pd.DataFrame(
    {
        "id": ["a", "a", "b", "c", "c"],
        "time": [0.0, 1.0, 0.0, 0.0, 2.0],
        "x": [1.0, np.nan, np.nan, 3.0, 4.0],
        "never": [np.nan] * 5,
        "y": [np.nan, 2.0, np.nan, np.nan, 5.0],
    }
)  # series b and channel "never" observe nothing


def test_empty_series_and_channels_raise_by_default():
    with pytest.raises(LatentODEError) as err:
        lo.from_dataframe(EMPTY)
    msg = str(err.value)
    assert "1 series with no observed value ('b')" in msg
    assert "['never']" in msg and "drop_empty=True" in msg


def test_drop_empty_warns_with_counts_and_drops_nothing_else():
    with pytest.warns(UserWarning, match=r"dropped 1 of 3 series and 1 channel"):
        ds = lo.from_dataframe(EMPTY, drop_empty=True)
    assert ds.ids == ["a", "c"]
    assert ds.channels == ("x", "y")
    assert ds.n_observed == int(EMPTY[["x", "y"]].notna().sum().sum())
    np.testing.assert_array_equal(ds.loc["a"].values, [[1.0, np.nan], [np.nan, 2.0]])
    np.testing.assert_array_equal(ds.loc["c"].values, [[3.0, np.nan], [4.0, 5.0]])


def test_nothing_observed_at_all_is_an_error_even_with_drop_empty():
    df = EMPTY.assign(x=np.nan, y=np.nan)
    with pytest.raises(LatentODEError, match="no series left"), pytest.warns(UserWarning):
        lo.from_dataframe(df, drop_empty=True)


def test_series_whose_only_rows_are_other_channels_is_not_silently_lost():
    with pytest.raises(LatentODEError, match=r"series with no observed value \('b'\)"):
        lo.from_dataframe(EMPTY.drop(columns="never"), channels=["x"])
    long = pd.DataFrame(
        {"id": [1, 2], "time": [0.0, 0.0], "variable": ["HR", "BP"], "value": [1.0, 2.0]}
    )
    with pytest.raises(LatentODEError, match=r"series with no observed value \(2\)"):
        lo.from_dataframe(long, format="long", channels=["HR"])


# ---- located errors -------------------------------------------------------------------


def raises(match_all: list[str], fn, *args, **kwargs) -> str:
    with pytest.raises(LatentODEError) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    for part in match_all:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def test_missing_path_directory_and_not_a_dataframe(tmp_path):
    raises(["file not found", "nope.csv"], lo.read_csv, tmp_path / "nope.csv")
    raises([str(tmp_path), "folder"], lo.read_csv, tmp_path)
    raises(["expected a pandas DataFrame", "dict"], lo.from_dataframe, {"id": [1]})


def test_zero_byte_header_only_and_binary_files(tmp_path):
    raises(["empty.csv", "is empty"], lo.read_csv, write(tmp_path, "empty.csv", ""))
    raises(["head.csv", "no data rows"], lo.read_csv, write(tmp_path, "head.csv", "id,time,x\n"))
    rng = np.random.default_rng(0)
    garbage = bytes([0x89, 0x50, 0x4E, 0x47, 0xFF, 0xFE]) + rng.bytes(4096)
    raises(["blob.csv"], lo.read_csv, write(tmp_path, "blob.csv", garbage))
    nul = b"id,time,x\n\x00\x01\x02,\x03,\x04\n"
    raises(["nul.csv"], lo.read_csv, write(tmp_path, "nul.csv", nul))


def test_ragged_and_badly_quoted_rows_name_the_line(tmp_path):
    ragged = write(tmp_path, "ragged.csv", "id,time,x\n1,0,1\n1,1,2\n1,2,3,4,5\n")
    raises(["ragged.csv", "line 4", "sep="], lo.read_csv, ragged)
    quoted = write(tmp_path, "quote.csv", 'id,time,x\n1,0,"1\n1,1,2\n')
    raises(["quote.csv", "quoting"], lo.read_csv, quoted)


def test_missing_id_or_time_columns_list_the_columns(tmp_path):
    path = write(tmp_path, "cols.csv", "ID,t,x\n1,0,1\n")
    raises(["['id', 'time']", "['ID', 't', 'x']", "cols.csv", "id_col="], lo.read_csv, path)
    raises(
        ["['variable', 'value']", "variable_col="],
        lo.read_csv,
        path,
        id_col="ID",
        time_col="t",
        format="long",
    )
    raises(["['hr']", "static"], lo.read_csv, path, id_col="ID", time_col="t", static_cols=["hr"])
    raises(["['death']"], lo.read_csv, path, id_col="ID", time_col="t", label_col="death")


def test_semicolon_file_hints_at_the_delimiter(tmp_path):
    path = write(tmp_path, "semi.csv", "id;time;x\n1;0;1\n")
    raises(["single column", "'id;time;x'", "sep=';'"], lo.read_csv, path)
    tabs = write(tmp_path, "tabs.csv", "id\ttime\tx\n1\t0\t1\n")
    raises(["sep='\\t'"], lo.read_csv, tabs)


def test_no_channel_columns(tmp_path):
    raises(
        ["only.csv", "no channel columns"],
        lo.read_csv,
        write(tmp_path, "only.csv", "id,time\n1,0\n"),
    )
    df = pd.DataFrame({"id": [1], "time": [0.0], "age": [3.0]})
    raises(["no channel columns"], lo.from_dataframe, df, static_cols=["age"])


def test_text_in_a_channel_quotes_the_value_and_line(tmp_path):
    path = write(tmp_path, "text.csv", "id,time,hr,bp\n1,0,60,120\n1,1,61,121\n1,2,high,122\n")
    raises(["line 4", "text.csv", "'hr'", "'high'"], lo.read_csv, path)
    df = pd.DataFrame({"id": [1, 1], "time": [0.0, 1.0], "hr": [1.0, "7 bpm"]}, index=[10, 11])
    raises(["row with index 11", "'7 bpm'", "'hr'"], lo.from_dataframe, df)
    long = write(tmp_path, "long.csv", "id,time,variable,value\n1,0,HR,60\n1,1,HR,n/a?\n")
    raises(["line 3", "'n/a?'", "'value'"], lo.read_csv, long, format="long")
    label = write(tmp_path, "lab.csv", "id,time,x,y\n1,0,1,yes\n")
    raises(["line 2", "'yes'", "label column 'y'"], lo.read_csv, label, label_col="y")


def test_spaces_only_cells_are_empty_not_text():
    df = pd.DataFrame({"id": [1, 1], "time": [0.0, 1.0], "x": [1.0, "   "]})
    ds = lo.from_dataframe(df)
    assert ds.n_observed == 1


@pytest.mark.parametrize(
    "cell, parts",
    [
        ("yesterday", ["'yesterday'", "line 3", "as a number"]),
        ("", ["missing time", "line 3"]),
        ("inf", ["infinite time", "line 3"]),
    ],
)
def test_bad_numeric_times(tmp_path, cell, parts):
    path = write(tmp_path, "t.csv", f"id,time,x\n1,0,1\n1,{cell},2\n1,2,3\n")
    raises([*parts, "'time'", "t.csv"], lo.read_csv, path)


def test_bad_datetime_times(tmp_path):
    text = "id,time,x\na,2024-01-01 10:00,1\na,2024-01-01 11:00,2\na,2024-13-45 99:00,3\n"
    raises(
        ["line 4", "'2024-13-45 99:00'", "date/time"], lo.read_csv, write(tmp_path, "d.csv", text)
    )
    mixed = "id,time,x\na,2024-01-01 10:00+01:00,1\na,2024-01-01 11:00,2\n"
    raises(["line 3", "time zone"], lo.read_csv, write(tmp_path, "m.csv", mixed))
    far = "id,time,x\na,2024-01-01,1\na,3024-01-01,2\n"
    raises(["line 3", "3024", "1678-2261"], lo.read_csv, write(tmp_path, "f.csv", far))
    df = pd.DataFrame({"id": [1, 1], "time": [True, False], "x": [1.0, 2.0]})
    raises(["True/False"], lo.from_dataframe, df)


def test_missing_ids(tmp_path):
    path = write(tmp_path, "ids.csv", "id,time,x\n1,0,1\n1,1,2\n,2,3\n")
    raises(["line 4", "missing series id", "'id'"], lo.read_csv, path)
    df = pd.DataFrame({"id": ["a", None], "time": [0.0, 1.0], "x": [1.0, 2.0]})
    raises(["row with index 1", "missing series id"], lo.from_dataframe, df)
    blank = pd.DataFrame({"id": ["a", "  "], "time": [0.0, 1.0], "x": [1.0, 2.0]})
    raises(["row with index 1", "missing series id"], lo.from_dataframe, blank)


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e999"])
def test_infinite_values(tmp_path, cell):
    path = write(tmp_path, "inf.csv", f"id,time,x,y\n1,0,1,2\n1,1,{cell},2\n")
    raises(["line 3", "column 'x'", "infinite"], lo.read_csv, path)


def test_missing_variable_name_and_missing_static(tmp_path):
    text = "id,time,variable,value\n1,0,HR,1\n1,1,,2\n"
    raises(
        ["line 3", "missing variable name"],
        lo.read_csv,
        write(tmp_path, "v.csv", text),
        format="long",
    )
    blank = 'id,time,variable,value\n1,0,HR,1\n1,1," ",2\n'  # a quoted blank is no name
    raises(
        ["line 3", "missing variable name"],
        lo.read_csv,
        write(tmp_path, "b.csv", blank),
        format="long",
    )
    text = "id,time,variable,value\n1,0,HR,1\n"
    raises(
        ["['Age']", "neither"],
        lo.read_csv,
        write(tmp_path, "s.csv", text),
        format="long",
        static_cols=["Age"],
    )


def test_static_column_must_be_constant_within_a_series(tmp_path):
    text = "id,time,x,age\n1,0,1,60\n1,1,2,60\n2,0,3,30\n2,1,4,31\n"
    raises(
        ["'age'", "series 2", "30 and 31", "line 5"],
        lo.read_csv,
        write(tmp_path, "a.csv", text),
        static_cols=["age"],
    )


def test_bad_arguments():
    raises(["format", "'tall'"], lo.from_dataframe, WIDE, format="tall")
    raises(["duplicates='sum'", "mean"], lo.from_dataframe, WIDE, duplicates="sum")
    raises(["time_unit='weeks'"], lo.from_dataframe, WIDE, time_unit="weeks")
    raises(["channel(s) ['pulse']", "['hr', 'bp']"], lo.from_dataframe, WIDE, channels=["pulse"])
    raises(["more than once"], lo.from_dataframe, WIDE, channels=["hr", "hr"])
    raises(["different column"], lo.from_dataframe, WIDE, id_col="time")
    raises(["label_col= or labels="], lo.from_dataframe, WIDE, label_col="hr", labels=WIDE)
    twice = pd.DataFrame([[1, 0.0, 1.0, 2.0]], columns=["id", "time", "x", "x"])
    raises(["more than one column named ['x']"], lo.from_dataframe, twice)


def test_bad_label_tables(tmp_path):
    raises(["labels file not found"], lo.from_dataframe, WIDE, labels=tmp_path / "nope.csv")
    raises(["labels file not found"], lo.from_dataframe, WIDE, labels=tmp_path)
    raises(
        ["no id column 'id'", "['pid', 'y']"],
        lo.from_dataframe,
        WIDE,
        labels=pd.DataFrame({"pid": [1], "y": [0]}),
    )
    raises(
        ["one label column"],
        lo.from_dataframe,
        WIDE,
        labels=pd.DataFrame({"id": [1], "y": [0], "z": [1]}),
    )
    raises(
        ["more than one label for id 1"],
        lo.from_dataframe,
        WIDE,
        labels=pd.DataFrame({"id": [1, 1], "y": [0, 1]}),
    )
    raises(["labels= must be"], lo.from_dataframe, WIDE, labels={"1": 0})
    raises(
        ["'dead'", "line 2"],
        lo.from_dataframe,
        WIDE,
        labels=write(tmp_path, "l.csv", "id,y\n1,dead\n"),
    )


def test_errors_are_value_errors_and_never_pandas_errors(tmp_path):
    assert issubclass(LatentODEError, ValueError)
    with pytest.raises(LatentODEError) as err:
        lo.read_csv(write(tmp_path, "r.csv", "id,time,x\n1,0\n1,1,2,3\n"))
    assert type(err.value) is LatentODEError
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize("fmt", ["wide", "long"])
def test_threaded_key_parse_reads_the_same_and_reports_ids_first(tmp_path, monkeypatch, fmt):
    """Ids and times of large files are parsed in two threads: the same dataset as the
    sequential parse, and with a bad id and a bad time the id's error, as before."""
    from latentode.data import build as data_build

    if fmt == "wide":
        text = "id,time,x,y\nb,2024-01-01 00:05,1,\nb,2024-01-01 00:01,2,3\na,2024-01-02,,4\n"
    else:
        text = (
            "id,time,variable,value\nb,2024-01-01 00:05,x,1\nb,2024-01-01 00:01,x,2\n"
            "b,2024-01-01 00:01,y,3\na,2024-01-02,y,4\n"
        )
    path = write(tmp_path, "keys.csv", text)
    read = {}
    for mode, threshold in (("threads", 1), ("sequential", 10**9)):
        monkeypatch.setattr(data_build, "THREADED_PARSE_MIN_ROWS", threshold)
        read[mode] = lo.read_csv(path, format=fmt)
    for got, want in zip(read["threads"], read["sequential"]):
        assert got.id == want.id
        np.testing.assert_array_equal(got.times, want.times)
        np.testing.assert_array_equal(got.values, want.values)
    assert [s.id for s in read["threads"]] == ["a", "b"]
    bad = write(tmp_path, "bad.csv", "id,time,x\nb,noon,1\n,2024-01-01,2\n")
    monkeypatch.setattr(data_build, "THREADED_PARSE_MIN_ROWS", 1)
    raises(["missing series id"], lo.read_csv, bad)


def test_a_negative_zero_reads_as_zero_whether_its_column_is_numeric_or_text(tmp_path):
    """pandas reads "-0" as 0.0 in a numeric column; in a column it reads as text (a
    blank " " cell, spaces kept) the value is parsed from "-0" by us: both give +0.0,
    in values and in times, so the sign of a zero never depends on the reading."""
    path = tmp_path / "zeros.csv"
    path.write_text("id,time,x,y\na,-0,-0,1\na,1, ,-0\n")
    ds = lo.read_csv(path, id_col="id", time_col="time")
    (series,) = list(ds)
    assert np.array_equal(series.times, [0.0, 1.0]) and not np.signbit(series.times).any()
    assert not np.signbit(series.values[series.mask]).any()
    frame = pd.DataFrame({"id": ["a", "a"], "time": [-0.0, 1.0], "x": [-0.0, 2.0]})
    (from_frame,) = list(lo.from_dataframe(frame, id_col="id", time_col="time"))
    assert not np.signbit(from_frame.times).any() and not np.signbit(from_frame.values).any()


def test_missing_value_spellings_stay_missing_in_a_column_pandas_reads_as_text(tmp_path):
    """A negative integer, an integer too large for int64 and a decimal in one column make
    pandas read it as text, and then it may leave "nan" and "NA" as text: in a file they
    still mean "not observed", while other text still raises."""
    path = tmp_path / "big.csv"
    big = "123456789012345678901234567890"
    rows = ["-2", big, "1.5", "nan", "NA"]
    path.write_text("id,time,x,y\n" + "".join(f"a,{t},1,{y}\n" for t, y in enumerate(rows)))
    (series,) = list(lo.read_csv(path, id_col="id", time_col="time"))
    assert series.mask[:, 1].tolist() == [True, True, True, False, False]
    assert series.values[:3, 1].tolist() == [-2.0, float(big), 1.5]
    path.write_text(f"id,time,x,y\na,0,1,-2\na,1,1,{big}\na,2,1,1.5\na,3,1,oops\n")
    with pytest.raises(LatentODEError, match=r"line 5 of big\.csv: column 'y' holds the text"):
        lo.read_csv(path, id_col="id", time_col="time")
    frame = pd.DataFrame({"id": ["a", "a"], "time": [0.0, 1.0], "y": ["1.5", "nan"]})
    with pytest.raises(LatentODEError, match="holds the text 'nan'"):  # a DataFrame's text
        lo.from_dataframe(frame, id_col="id", time_col="time")


def test_the_missing_value_spellings_are_pandas_defaults():
    """NA_SPELLINGS copies pandas' default NA values (a private constant, checked here)."""
    from latentode.data.parse import NA_SPELLINGS

    parsers = pytest.importorskip("pandas._libs.parsers")
    assert frozenset(parsers.STR_NA_VALUES) == NA_SPELLINGS
