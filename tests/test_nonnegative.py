"""Predictions of a channel never negative in training are bounded below by 0."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

import latentode as lo
from latentode.data import Scaler


def decays(n_series: int, seed: int) -> pd.DataFrame:
    """Concentration-like ``conc`` (>= 0, most values near 0) and a signed ``temp``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_series):
        t = np.sort(rng.uniform(0, 10, size=8))
        conc = np.abs(rng.uniform(1, 3) * np.exp(-t) + rng.normal(0, 0.05, size=8))
        temp = rng.normal(0, 1, size=8)
        rows.append(pd.DataFrame({"id": k, "time": t, "conc": conc, "temp": temp}))
    return pd.concat(rows, ignore_index=True)


def fit_small(tmp_path) -> lo.LatentODE:
    model = lo.LatentODE(latent_dim=4, encoder_hidden=8, hidden=16, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(decays(24, seed=0), max_epochs=1, progress_bar=False, log_dir=tmp_path / "r")
    return model


def test_a_nonnegative_channel_s_mean_and_quantiles_are_the_unbounded_ones_raised_to_0(
    tmp_path,
):
    model = fit_small(tmp_path)
    assert model.scaler_.nonnegative == (True, False)  # channels sorted: conc, temp
    context = decays(5, seed=1)
    times = np.linspace(0, 12, 25)
    bounded = model.predict(context, times=times, quantiles=(0.05, 0.5, 0.95), seed=3)
    loaded = lo.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.scaler_.nonnegative == (True, False)  # kept in the file
    again = loaded.predict(context, times=times, quantiles=(0.05, 0.5, 0.95), seed=3)
    pd.testing.assert_frame_equal(again, bounded)
    drawn = model.sample(context, times=times, n_samples=4, seed=3, with_noise=True)
    model.scaler_ = dataclasses.replace(model.scaler_, nonnegative=None)
    free = model.predict(context, times=times, quantiles=(0.05, 0.5, 0.95), seed=3)
    free_drawn = model.sample(context, times=times, n_samples=4, seed=3, with_noise=True)
    np.testing.assert_array_equal(drawn["conc"], np.maximum(free_drawn["conc"], 0.0))
    np.testing.assert_array_equal(drawn["temp"], free_drawn["temp"])
    assert (free_drawn["conc"] < 0).any()
    for col in ("conc", "conc_q5", "conc_q50", "conc_q95"):
        np.testing.assert_array_equal(bounded[col], np.maximum(free[col], 0.0))
    assert (free["conc_q5"] < 0).mean() > 0.5  # the bound had work to do
    assert (free["temp_q5"] < 0).any()
    for col in ("temp", "temp_q5", "temp_q95", "conc_std", "temp_std"):
        np.testing.assert_array_equal(bounded[col], free[col])  # left alone


def test_intervals_are_calibrated_on_the_unbounded_quantiles(tmp_path, monkeypatch):
    """The calibration factor stretches the mixture's quantiles before the bound applies,
    so it must be measured on them: the same fit without the bound gets the same factors.
    (The bound is switched off, not the flags: they also give the residual process its
    level scale, which must stay the same.)"""
    below = np.array([[-1.0, -1.0]])
    bounded = fit_small(tmp_path / "a")
    assert bounded.scaler_.nonnegative == (True, False)
    np.testing.assert_array_equal(bounded.scaler_.bound(below), [[0.0, -1.0]])
    monkeypatch.setattr(Scaler, "bound", lambda self, values: values)
    free = fit_small(tmp_path / "b")
    np.testing.assert_array_equal(free.scaler_.bound(below), below)  # the bound is off
    assert bounded.interval_scale_ == free.interval_scale_
    assert bounded.forecast_interval_scale_ == free.forecast_interval_scale_
    assert bounded.interval_scale_ != (1.0, 1.0)  # calibrated, not the default
