"""Sample quantiles of the predictive summaries against torch.quantile."""

from __future__ import annotations

import pytest
import torch

from latentode.estimator.summaries import sample_quantiles


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 101])
def test_sample_quantiles_equal_torch_quantile(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    samples = torch.randn(n, 4, 7, 3, generator=g, dtype=torch.float64)
    samples[:, 0, 0, 0] = 1.0  # ties
    quantiles = (0.0, 0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975, 1.0)
    got = sample_quantiles(samples, quantiles)
    want = torch.quantile(samples, torch.tensor(quantiles, dtype=samples.dtype), dim=0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
