"""A short seeded CPU training on sparse spirals beats the naive baselines clearly.

Interpolation: half of each test spiral's points are hidden; the latent ODE must fill
them in better than per-series linear interpolation. Forecasting: the second half of
each test spiral must be predicted far better than by repeating the last value.
Both are checked against the generator's noisy observations, and the central 90%
predictive interval must cover between 85% and 95% of the hidden values when
interpolating, 80% to 97% when forecasting.
"""

import numpy as np
import pytest
import torch

import latentode as lo

pytestmark = pytest.mark.slow


def linear_interpolation_mse(context, target) -> float:
    errors = [
        np.stack([np.interp(t.times, c.times, c.values[:, j]) for j in range(2)], 1) - t.values
        for c, t in zip(context, target)
    ]
    return float(np.mean(np.concatenate(errors) ** 2))


def last_value_mse(context, target) -> float:
    errors = [t.values - c.values[-1] for c, t in zip(context, target)]
    return float(np.mean(np.concatenate(errors) ** 2))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = lo.datasets.spiral(n_series=300, n_observed=20, seed=0)
        train, test = data.split(test_size=0.2, seed=0)
        model = lo.LatentODE(seed=0).fit(
            train, max_epochs=100, progress_bar=False, log_dir=tmp_path_factory.mktemp("fit")
        )
    finally:
        torch.set_num_threads(threads)
    return model, test


def test_interpolation_beats_linear_interpolation(fitted):
    model, test = fitted
    context, target = test.subsample(0.5, seed=0)
    baseline = linear_interpolation_mse(context, target)
    scores = model.evaluate(test, task="interp", frac=0.5, seed=0)
    print(f"interp: latent ODE {scores['mse']:.4f} vs linear {baseline:.4f}")
    assert scores["mse"] < 0.7 * baseline
    # the calibrated central 90% interval means what it says on held-out points
    assert 0.85 <= scores["coverage_90"] <= 0.95


def test_forecast_beats_last_value(fitted):
    model, test = fitted
    context, target = test.split_time(frac=0.5)
    baseline = last_value_mse(context, target)
    scores = model.evaluate(test, task="extrap", frac=0.5)
    print(f"extrap: latent ODE {scores['mse']:.4f} vs last value {baseline:.4f}")
    assert scores["mse"] < 0.1 * baseline
    # forecast intervals are calibrated on the validation series' own cuts (48 spirals),
    # so on 60 test spirals their coverage varies more than interpolation's: measured
    # 0.92-0.96 over cuts at 30-90% of the span; the target of issue 13 is 80-97%
    assert 0.80 <= scores["coverage_90"] <= 0.97
