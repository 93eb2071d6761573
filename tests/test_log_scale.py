"""Log-scale channels: which channels ``log_scale="auto"`` picks, exact inverses, the
log-normal mixture's moments, calibration on the log scale, and a fitted model that
equals the same network fitted on the logarithms."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import latentode as lo
from latentode import LatentODEError
from latentode.data import Scaler, Series
from latentode.data.scaling import choose_log_channels, skewness
from latentode.estimator.evaluation import HeldOutPrediction, interval_scale


def _values(n: int = 400, seed: int = 0) -> np.ndarray:
    """[n, 3]: log-normal (sigma 1.2), normal around 50, and log-normal with one 0."""
    rng = np.random.default_rng(seed)
    out = np.stack(
        [rng.lognormal(2.0, 1.2, n), rng.normal(50.0, 5.0, n), rng.lognormal(0.0, 1.2, n)], 1
    )
    out[7, 2] = 0.0
    return out


def test_skewness_matches_scipy() -> None:
    x = _values()[:, 0]
    assert skewness(x) == pytest.approx(stats.skew(x), rel=1e-12)
    assert skewness(np.full(5, 3.0)) == 0.0


def test_auto_picks_positive_right_skewed_channels_only() -> None:
    x = _values()
    names = ("load", "score", "count")
    # log-normal: raw skewness ~ 6, logs ~ 0; normal: ~ 0; the third has a 0
    assert choose_log_channels(x, names, "auto") == (True, False, False)
    assert choose_log_channels(x[:19], names, "auto") == (False, False, False)  # too few
    assert choose_log_channels(x, names, False) == (False, False, False)
    assert choose_log_channels(x, names, None) == (False, False, False)
    assert choose_log_channels(x, names, ["score"]) == (False, True, False)
    assert choose_log_channels(x[:, :2], names[:2], True) == (True, True)


def test_explicit_log_scale_errors_name_the_channel() -> None:
    x, names = _values(), ("load", "score", "count")
    with pytest.raises(LatentODEError, match=r"channel 'count' has the value 0"):
        choose_log_channels(x, names, ["count"])
    with pytest.raises(LatentODEError, match=r"channel 'count' has the value 0"):
        choose_log_channels(x, names, True)
    with pytest.raises(LatentODEError, match=r"\['nope'\].*channels are"):
        choose_log_channels(x, names, ["nope"])
    with pytest.raises(LatentODEError, match="log_scale='yes' is not understood"):
        choose_log_channels(x, names, "yes")


def _dataset(values: np.ndarray, names=("load", "score")) -> lo.SeriesDataset:
    series = [
        Series(k, np.arange(20.0), values[20 * k : 20 * (k + 1)], np.ones((20, len(names)), bool))
        for k in range(len(values) // 20)
    ]
    return lo.SeriesDataset(series, names)


def test_scaler_standardises_the_logarithm_and_inverts_exactly() -> None:
    x = _values()[:, :2]
    scaler = Scaler.fit(_dataset(x), "auto")
    assert scaler.log == (True, False) and scaler.channels == ("load", "score")
    logged = np.log(x[:, 0])
    assert scaler.mean[0] == pytest.approx(logged.mean(), rel=1e-12)
    assert scaler.std[0] == pytest.approx(logged.std(), rel=1e-12)
    z = scaler.transform_values(x)
    np.testing.assert_allclose(z[:, 0], (logged - logged.mean()) / logged.std(), rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse_values(z), x, rtol=1e-12)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again == scaler
    # a file from before log scales has no "log": every channel linear
    old = {k: v for k, v in scaler.to_dict().items() if k not in ("log", "channels")}
    assert Scaler.from_dict(old).log is None
    assert not Scaler.fit(_dataset(x)).log  # the data layer's default: none


def test_a_value_at_or_below_zero_in_a_log_channel_is_refused_by_name() -> None:
    scaler = Scaler.fit(_dataset(_values()[:, :2]), "auto")
    bad = np.array([[3.0, 50.0], [-1.0, 49.0], [np.nan, 1.0]])
    with pytest.raises(LatentODEError, match=r"channel 'load' .*log scale.*-1.*log_scale=False"):
        scaler.transform_values(bad)
    # NaN (not observed) passes through
    assert np.isnan(scaler.transform_values(np.array([[np.nan, 50.0]]))[0, 0])


def test_mixture_moments_are_the_log_normal_mixture_s() -> None:
    scaler = Scaler((1.0, 2.0), (0.5, 3.0), 1.0, (True, False))
    means = np.array([[[0.2, 0.1]], [[-0.4, 0.7]], [[1.1, -0.3]]])  # [S=3, 1, C]
    sd = np.array([[0.3, 0.2]])
    mean, std = scaler.mixture_moments(means, sd)
    # channel 0 by quadrature of the mixture density of exp(1 + 0.5 * N(m_s, 0.3²))
    a, b = 1.0 + 0.5 * means[:, 0, 0], 0.5 * 0.3

    def density(x):
        return np.mean(stats.lognorm.pdf(x, s=b, scale=np.exp(a)))

    m1 = integrate.quad(lambda x: x * density(x), 0, np.inf)[0]
    m2 = integrate.quad(lambda x: x * x * density(x), 0, np.inf)[0]
    assert mean[0, 0] == pytest.approx(m1, rel=1e-7)
    assert std[0, 0] == pytest.approx(math.sqrt(m2 - m1 * m1), rel=1e-6)
    # channel 1 (linear): the Gaussian mixture's mean and std in original units
    lin = 2.0 + 3.0 * means[:, 0, 1]
    assert mean[0, 1] == pytest.approx(lin.mean(), rel=1e-12)
    assert std[0, 1] == pytest.approx(math.sqrt(lin.var() + (3.0 * 0.2) ** 2), rel=1e-12)


def test_interval_scale_of_a_log_channel_works_on_the_logarithms() -> None:
    n = 40
    truth = np.full((n, 1), 4.0)  # log 4 = 2 log 2: twice the upper arm
    held = HeldOutPrediction(
        truth=truth,
        mean=np.full((n, 1), 1.5),
        std=np.full((n, 1), 1.0),
        lower=np.full((n, 1), 0.5),
        upper=np.full((n, 1), 2.0),
        outside=np.zeros(n, bool),
        centre=np.full((n, 1), 1.0),
        nfe=None,
    )
    assert interval_scale(held, np.array([True])) == [pytest.approx(2.0)]
    # on the original scale around the same centre: (4 - 1) / (2 - 1) = 3
    assert interval_scale(held, np.array([False])) == [pytest.approx(3.0)]


def _long_frame(values: np.ndarray, per_series: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = len(values)
    ids = np.repeat(np.arange(n // per_series), per_series)
    times = np.tile(np.arange(per_series, dtype=float), n // per_series) + rng.uniform(0, 0.3, n)
    return pd.DataFrame({"id": ids, "time": times, "x": values})


@pytest.fixture(scope="module")
def twin_fits():
    """One network fitted on x with log_scale=["x"], one on log(x) with log_scale=False:
    the same standardised values, so the same training (no validation series, so no
    calibration to differ)."""
    rng = np.random.default_rng(3)
    level = np.repeat(rng.normal(0.0, 1.0, 12), 8)
    x = np.exp(level + 0.3 * np.sin(np.tile(np.arange(8.0), 12)) + rng.normal(0, 0.05, 96))
    frame = _long_frame(x)
    params = dict(latent_dim=2, encoder_hidden=8, hidden=8, depth=1, val_frac=0.0, seed=0)
    fit = dict(max_epochs=3, log_dir=None)
    on_log = lo.LatentODE(**params, log_scale=["x"]).fit(frame, **fit)
    logged = frame.assign(x=np.log(frame["x"]))
    plain = lo.LatentODE(**params, log_scale=False).fit(logged, **fit)
    return frame, on_log, plain


def test_a_log_scale_fit_is_the_fit_of_the_logarithms(twin_fits) -> None:
    frame, on_log, plain = twin_fits
    assert on_log.scaler_.log == (True,) and plain.scaler_.log is None
    context = frame[frame["id"] < 3].iloc[::2]
    times = {k: np.linspace(0, 8, 5) for k in range(3)}
    q = (0.05, 0.5, 0.95)
    a = on_log.predict(context, times, quantiles=q, n_samples=16, seed=1)
    b = plain.predict(
        context.assign(x=np.log(context["x"])), times, quantiles=q, n_samples=16, seed=1
    )
    for col in ("x_q5", "x_q50", "x_q95"):  # quantiles: exactly exp of the log model's
        np.testing.assert_allclose(a[col], np.exp(b[col]), rtol=1e-5)
    # the mean of a log-normal mixture lies above its median
    assert (a["x"] > a["x_q50"]).all()


def test_a_log_scale_model_survives_save_and_load(twin_fits, tmp_path) -> None:
    frame, on_log, _ = twin_fits
    path = on_log.save(tmp_path / "m.safetensors")
    again = lo.LatentODE.load(path)
    assert again.scaler_ == on_log.scaler_
    context = frame[frame["id"] < 2]
    pd.testing.assert_frame_equal(
        again.predict(context, seed=0, n_samples=8), on_log.predict(context, seed=0, n_samples=8)
    )
    with pytest.raises(LatentODEError, match=r"channel 'x' is modelled on the log scale"):
        on_log.predict(context.assign(x=0.0))
