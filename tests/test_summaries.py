"""Quantiles of the predictive summaries: order statistics against torch.quantile, the
samples' Gaussian mixture against root finding on its CDF (scipy)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from latentode.estimator.summaries import mixture_quantiles, sample_quantiles


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 101])
def test_sample_quantiles_equal_torch_quantile(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    samples = torch.randn(n, 4, 7, 3, generator=g, dtype=torch.float64)
    samples[:, 0, 0, 0] = 1.0  # ties
    quantiles = (0.0, 0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975, 1.0)
    got = sample_quantiles(samples, quantiles)
    want = torch.quantile(samples, torch.tensor(quantiles, dtype=samples.dtype), dim=0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def _mixture_quantile_by_root(means: np.ndarray, sd: float, q: float) -> float:
    """The q quantile of (1/S) Σ N(means[s], sd²), by bracketing root finding (scipy)."""
    cdf = lambda x: stats.norm.cdf((x - means) / sd).mean() - q  # noqa: E731
    return optimize.brentq(cdf, means.min() - 10 * sd, means.max() + 10 * sd, xtol=1e-12)


@pytest.mark.parametrize("spread", [0.0, 0.3, 3.0, 30.0])
def test_mixture_quantiles_solve_the_mixture_cdf(spread: float) -> None:
    g = torch.Generator().manual_seed(7)
    means = 2.0 + spread * torch.randn(25, 3, 4, generator=g, dtype=torch.float64)  # [S, ...]
    sd = 0.2 + torch.rand(3, 4, generator=g, dtype=torch.float64)
    quantiles = (0.01, 0.05, 0.5, 0.95)
    got = mixture_quantiles(means, sd, quantiles)  # [Q, 3, 4]
    for k, q in enumerate(quantiles):
        for i in range(3):
            for j in range(4):
                want = _mixture_quantile_by_root(means[:, i, j].numpy(), float(sd[i, j]), q)
                assert abs(float(got[k, i, j]) - want) < 1e-5 * float(sd[i, j]), (q, i, j)


def test_mixture_quantiles_of_one_component_are_gaussian() -> None:
    means = torch.tensor([[1.0, -2.0]])  # [S=1, 2]
    sd = torch.tensor([0.5, 3.0])
    got = mixture_quantiles(means, sd, (0.05, 0.95))
    z = NormalDist().inv_cdf(0.95)
    want = torch.tensor([[1.0 - 0.5 * z, -2.0 - 3.0 * z], [1.0 + 0.5 * z, -2.0 + 3.0 * z]])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_mixture_quantiles_without_noise_are_the_samples_quantiles() -> None:
    g = torch.Generator().manual_seed(3)
    means = torch.randn(40, 5, generator=g)
    sd = torch.tensor([0.0, 0.0, 1.0, 0.0, 1e-4])  # std 0: the samples themselves
    got = mixture_quantiles(means, sd, (0.05, 0.5))
    want = torch.quantile(means, torch.tensor([0.05, 0.5]), dim=0)
    torch.testing.assert_close(got[:, [0, 1, 3]], want[:, [0, 1, 3]], rtol=0, atol=1e-6)
    # a nearly discrete mixture (std 1e-4) still converges (q off F's plateaus at k/40)
    odd = (0.063, 0.51)
    got = mixture_quantiles(means[:, 4:].double(), sd[4:].double(), odd)
    for k, q in enumerate(odd):
        root = _mixture_quantile_by_root(means[:, 4].double().numpy(), 1e-4, q)
        assert abs(float(got[k, 0]) - root) < 1e-8
