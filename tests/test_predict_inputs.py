"""Inputs that cannot hurt: every bad argument to ``predict`` (and ``sample``, ``encode``,
``score``) gives a ``LatentODEError`` that names the offending series, time, column or
argument, before any solver runs; nothing is dropped silently.

Complements ``test_estimator.py`` (which covers missing id/time columns, unknown ids,
NaN/inf and non-numeric times, quantiles outside (0, 1), non-positive ``n_samples`` and
series without observations): here far-away times and the ``horizon`` rule, empty
contexts, channels that differ from training, wrong types, and datetime models.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import torch

import latentode as lo
from latentode.errors import LatentODEError

FIT = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "progress_bar": False}


@pytest.fixture(scope="module")
def spiral():
    return lo.datasets.spiral(30, seed=0)


@pytest.fixture(scope="module")
def model(spiral, tmp_path_factory):
    """A tiny latent ODE on numeric times (seconds; the longest series spans 6 s)."""
    torch.set_num_threads(1)
    return lo.LatentODE(latent_dim=2, seed=0).fit(
        spiral, log_dir=tmp_path_factory.mktemp("numeric"), **FIT
    )


@pytest.fixture(scope="module")
def ctx(spiral) -> pd.DataFrame:
    """Three series as a wide DataFrame (series_id, time, x, y)."""
    df = spiral.to_dataframe()
    return df[df["series_id"] < 3].reset_index(drop=True)


@pytest.fixture(scope="module")
def dated(spiral, tmp_path_factory):
    """A tiny latent ODE on tz-aware datetimes, fitted with time_unit='min'."""
    torch.set_num_threads(1)
    df = spiral[:10].to_dataframe()
    start = pd.Timestamp("2024-01-01", tz="Europe/Berlin")
    df["time"] = start + pd.to_timedelta(df["time"] * 60, unit="min")  # series span ~6 h
    model = lo.LatentODE(latent_dim=2, seed=0).fit(
        df,
        log_dir=tmp_path_factory.mktemp("dated"),
        id_col="series_id",
        time_col="time",
        time_unit="min",
        **FIT,
    )
    return model, df


def _raises(call, *parts: str) -> LatentODEError:
    """``call()`` raises LatentODEError (a ValueError) whose message holds every part."""
    with pytest.raises(LatentODEError) as info:
        call()
    assert isinstance(info.value, ValueError)
    for part in parts:
        assert part in str(info.value), (part, str(info.value))
    return info.value


# ---- times far outside any sensible range ------------------------------------------------
@pytest.mark.parametrize(
    "t, side", [(1e12, "after"), (-1e12, "before"), (1e300, "after"), (72.5, "after")]
)
def test_far_times_are_refused_before_any_solve(model, ctx, t, side, monkeypatch) -> None:
    def no_solve(*args, **kwargs):
        raise AssertionError("the latent ODE was solved before the far time was refused")

    # (the solver would run for many seconds to such a time)
    monkeypatch.setattr("latentode.models.latent_ode.solve_at_times", no_solve)
    for call in (
        lambda: model.predict(ctx, times=[1.0, t]),
        lambda: model.sample(ctx, times={1: [t]}, n_samples=2),
    ):
        _raises(call, f"time {t:g}", "series", side, "horizon=10", "60 s", "horizon=")


def test_times_within_the_horizon_work_and_horizon_raises_the_limit(model, ctx) -> None:
    span = model.scaler_.time_scale  # 6 s: the longest training series
    last = ctx[ctx["series_id"] == 0]["time"].max()
    near = model.predict(ctx[ctx["series_id"] == 0], times=[last + 9.5 * span], n_samples=3)
    assert len(near) == 1 and np.isfinite(near[["x", "y"]]).all().all()
    far = [last + 100 * span]
    _raises(lambda: model.predict(ctx, times=far), "100 training spans after", "series 0")
    for horizon in (200, None):
        out = model.predict(ctx, times=far, n_samples=3, horizon=horizon)
        assert len(out) == 3 and np.isfinite(out[["x", "y"]]).all().all()
    draws = model.sample(ctx, times=far, n_samples=2, horizon=None)
    assert len(draws) == 6


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "10", True])
def test_horizon_must_be_a_positive_number_or_none(model, ctx, bad) -> None:
    _raises(lambda: model.predict(ctx, times=[1.0], horizon=bad), "horizon", repr(bad))


def test_a_context_spanning_far_too_long_is_refused(model, ctx) -> None:
    typo = pd.DataFrame({"series_id": [1], "time": [1e12], "x": [0.5], "y": [0.5]})
    bad = pd.concat([ctx, typo], ignore_index=True)
    _raises(lambda: model.predict(bad), "context series 1 spans", "1e+12", "horizon=")
    _raises(lambda: model.score(bad, task="extrap"), "series 1", "1e+12", "horizon=")


def test_datetimes_centuries_away_or_beyond_pandas_are_refused(dated) -> None:
    model, df = dated
    _raises(
        lambda: model.predict(df, times=["1900-06-01"]),
        "1900-06-01",
        "before its context",
        "horizon=10 training spans",
        "min",
    )
    _raises(lambda: model.predict(df, times=["2200-01-01"]), "2200-01-01", "after its context")
    for far in ("3000-01-01", pd.Timestamp("2500-01-01"), datetime.datetime(1, 1, 1)):
        _raises(lambda far=far: model.predict(df, times=[far]), "1678-2261", "series 0")
    # 324 years before the data: inside pandas' range, but too far to subtract in ns
    _raises(lambda: model.predict(df, times=["1700-01-01"], horizon=None), "292 years")
    _raises(lambda: model.predict(df, times=[pd.NaT]), "missing or infinite", "series 0")


def test_datetime_model_reads_contexts_in_its_own_time_unit(dated) -> None:
    """A model fitted with time_unit='min' must not read a DataFrame context in hours."""
    model, df = dated
    from_frame = model.predict(df, n_samples=5, seed=0)
    for unit in ("min", "d", "h"):
        ds = lo.from_dataframe(df, id_col="series_id", time_col="time", time_unit=unit)
        same = model.predict(ds, n_samples=5, seed=0)
        assert (same["time"] == from_frame["time"]).all()
        np.testing.assert_allclose(same[["x", "y"]], from_frame[["x", "y"]], atol=1e-5)


# ---- empty contexts ---------------------------------------------------------------------
def test_a_context_without_series_is_refused_everywhere(model, spiral, ctx) -> None:
    nothing = spiral.with_series([])
    for call in (
        lambda: model.predict(nothing),
        lambda: model.predict(nothing, times=[1.0]),
        lambda: model.sample(nothing),
        lambda: model.encode(nothing),
        lambda: model.score(nothing),
    ):
        _raises(call, "has no series", "at least one series")
    for call in (lambda: model.predict(ctx.iloc[:0]), lambda: model.encode(ctx.iloc[:0])):
        _raises(call, "no data rows")


def test_a_dataframe_series_without_observed_values_is_named(model, ctx) -> None:
    blank = ctx.assign(
        x=ctx["x"].where(ctx["series_id"] != 2), y=ctx["y"].where(ctx["series_id"] != 2)
    )
    _raises(lambda: model.predict(blank), "1 series with no observed value (2)")


# ---- ids --------------------------------------------------------------------------------
def test_ids_of_another_type_get_a_hint(model, ctx) -> None:
    hint = "the text '7' is not the number 7"
    _raises(lambda: model.predict(ctx, times={"0": [1.0]}), "['0']", "e.g. 0, 1, 2", hint)
    frame = pd.DataFrame({"series_id": ["1"], "time": [1.0]})
    _raises(lambda: model.predict(ctx, times=frame), "['1']", hint)


def test_a_times_row_without_an_id_is_not_dropped(model, ctx) -> None:
    frame = pd.DataFrame({"series_id": [0, np.nan], "time": [1.0, 2.0]}, index=[10, 11])
    _raises(lambda: model.predict(ctx, times=frame), "'series_id'", "index 11", "1 row(s)")


# ---- channels ---------------------------------------------------------------------------
def test_channels_that_differ_from_training_in_a_dataframe(model, ctx) -> None:
    _raises(
        lambda: model.predict(ctx.assign(z=1.0)),
        "column(s) ['z']",
        "not trained on",
        "drop(columns=['z'])",
    )
    _raises(
        lambda: model.predict(ctx.rename(columns={"x": "X"})),
        "missing channel column(s) ['x']",
        "other column(s) ['X']",
    )
    long = ctx.melt(["series_id", "time"])
    _raises(lambda: model.predict(long), "missing channel column(s) ['x', 'y']")
    reordered = model.predict(ctx[["y", "time", "x", "series_id"]], n_samples=3)
    pd.testing.assert_frame_equal(reordered, model.predict(ctx, n_samples=3))


def test_channels_that_differ_from_training_in_a_dataset(model, ctx) -> None:
    def read(df: pd.DataFrame, channels=None) -> lo.SeriesDataset:
        return lo.from_dataframe(df, id_col="series_id", time_col="time", channels=channels)

    _raises(
        lambda: model.predict(read(ctx.assign(z=1.0))), "['x', 'y', 'z']", "not in the model: ['z']"
    )
    _raises(lambda: model.predict(read(ctx.drop(columns="y"))), "missing ['y']")
    _raises(
        lambda: model.encode(read(ctx.rename(columns={"y": "w"}))),
        "missing ['y']; not in the model: ['w']",
    )
    _raises(
        lambda: model.predict(read(ctx, channels=["y", "x"])),
        "same names, other order",
        "channels=['x', 'y']",
    )


# ---- wrong types ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "times, parts",
    [
        ("1.0", ["times is a single string", "times=['1.0']"]),
        ({0: "2.0"}, ["times for series 0 is a single string"]),
        ({0: {"a": 1}}, ["times for series 0", "got dict"]),
        ({0: None}, ["times for series 0", "got NoneType"]),
        ({1: {1.0, 2.0}}, ["times for series 1", "got set"]),
        ({0: object()}, ["times for series 0", "got object"]),
        ({0: [[1.0, 2.0], [3.0, 4.0]]}, ["times for series 0", "flat list", "(2, 2)"]),
        ([[1.0], [2.0, 3.0]], ["times for series 0", "flat list", "ragged"]),
        (np.ones((2, 2)), ["flat list", "(2, 2)"]),
        ([True, False], ["times for series 0", "booleans"]),
        ([1 + 2j], ["times for series 0", "non-real"]),
        (np.array([1.0, True], dtype=object), ["non-real"]),
    ],
)
def test_times_of_the_wrong_type(model, ctx, times, parts) -> None:
    _raises(lambda: model.predict(ctx, times=times), *parts)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_samples": "3"}, "n_samples"),
        ({"n_samples": None}, "n_samples"),
        ({"n_samples": True}, "n_samples"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),  # used to return an empty frame
        ({"batch_size": 2.5}, "batch_size"),
        ({"seed": "a"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_counts_and_seeds_of_the_wrong_type(model, ctx, kwargs, name) -> None:
    value = repr(next(iter(kwargs.values())))
    _raises(lambda: model.predict(ctx, **kwargs), name, value)
    if name != "batch_size" or kwargs["batch_size"] != -1:
        _raises(lambda: model.sample(ctx, **kwargs), name, value)


def test_score_checks_n_samples_too(model, ctx) -> None:
    _raises(lambda: model.score(ctx, n_samples=0), "n_samples", "0")


@pytest.mark.parametrize(
    "quantiles, part",
    [(0.5, "0.5"), ("0.5", "'0.5'"), (["a"], "'a'"), ({"q": 0.5}, "{'q': 0.5}"), ([np.nan], "nan")],
)
def test_bad_quantiles(model, ctx, quantiles, part) -> None:
    _raises(lambda: model.predict(ctx, quantiles=quantiles), "quantiles", part)


def test_quantiles_as_an_array_work(model, ctx) -> None:
    out = model.predict(ctx, quantiles=np.array([0.1, 0.9]), n_samples=5)
    assert {"x_q10", "x_q90", "y_q10", "y_q90"} <= set(out.columns)
    assert (out["x_q10"] <= out["x_q90"]).all()
