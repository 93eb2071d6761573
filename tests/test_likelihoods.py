"""Likelihoods, KL and bounds against torch.distributions and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from latentode.nn.likelihoods import (
    bernoulli_log_likelihood,
    elbo,
    gaussian_log_likelihood,
    iwae_bound,
    kl_normal,
    masked_mse,
    normal_log_density,
    poisson_log_likelihood,
)

DT = torch.float64
S, B, T, C = 3, 4, 5, 2


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(S, B, T, C, generator=gen, dtype=DT)
    target = torch.randn(B, T, C, generator=gen, dtype=DT)
    mask = (torch.rand(B, T, C, generator=gen) < 0.5).to(DT)
    mask[:, -1] = 0.0  # padding
    return mean, target, mask


@pytest.mark.parametrize("noise_std", [0.3, torch.tensor([0.2, 1.5], dtype=DT)])
def test_gaussian_matches_torch_normal(noise_std: float | torch.Tensor) -> None:
    mean, target, mask = _data()
    got = gaussian_log_likelihood(mean, target, mask, noise_std)
    assert got.shape == (S, B)
    scale = torch.as_tensor(noise_std, dtype=DT).expand(C)
    expected = torch.zeros(S, B, dtype=DT)
    for s in range(S):
        for b in range(B):
            for t in range(T):
                for c in range(C):
                    if mask[b, t, c]:
                        dist = Normal(mean[s, b, t, c], scale[c])
                        expected[s, b] += dist.log_prob(target[b, t, c])
    torch.testing.assert_close(got, expected)


def _value_and_grads(loss_fn, *inputs: torch.Tensor) -> list[torch.Tensor]:
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    value = loss_fn(*leaves)
    value.sum().backward()
    return [value.detach()] + [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("garbage", [float("nan"), float("inf"), 1e30])
def test_gaussian_ignores_masked_entries_in_value_and_gradient(garbage: float) -> None:
    mean, target, mask = _data()
    hidden = mask == 0

    def loss(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gaussian_log_likelihood(m, x, mask, 0.5)

    reference = _value_and_grads(loss, mean, target)
    perturbed = _value_and_grads(
        loss, torch.where(hidden, garbage, mean), torch.where(hidden, garbage, target)
    )
    for ref, got in zip(reference, perturbed):
        torch.testing.assert_close(got, ref, atol=0, rtol=0)
    assert torch.isfinite(perturbed[1]).all()


def test_poisson_constant_intensity_by_hand() -> None:
    rate, window = 2.5, 3.0
    mask = torch.zeros(B, T, C, dtype=DT)
    mask[0, :3, 0] = 1.0  # 3 events on channel 0 of series 0
    mask[1, :5, 1] = 1.0  # 5 events on channel 1 of series 1
    log_lambda = torch.full((S, B, T, C), math.log(rate), dtype=DT)
    integral = torch.full((S, B, C), rate * window, dtype=DT)
    got = poisson_log_likelihood(log_lambda, mask, integral)
    n_events = torch.tensor([3.0, 5.0, 0.0, 0.0], dtype=DT)
    expected = n_events * math.log(rate) - C * rate * window  # n log λ − Σ_c λ T
    torch.testing.assert_close(got, expected.expand(S, B))


def test_poisson_linear_intensity_by_hand() -> None:
    a, b, window = 0.5, 2.0, 1.5
    event_times = torch.tensor([0.1, 0.4, 1.2], dtype=DT)
    log_lambda = torch.log(a + b * event_times).reshape(1, 1, 3, 1)  # [S, B, T, C]
    mask = torch.ones(1, 3, 1, dtype=DT)
    integral = torch.tensor([[[a * window + b * window**2 / 2]]], dtype=DT)
    got = poisson_log_likelihood(log_lambda, mask, integral)
    expected = sum(math.log(a + b * t) for t in event_times.tolist()) - (a * 1.5 + b * 1.5**2 / 2)
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_poisson_ignores_masked_entries() -> None:
    _, _, mask = _data()
    gen = torch.Generator().manual_seed(1)
    log_lambda = torch.randn(S, B, T, C, generator=gen, dtype=DT)
    integral = torch.rand(S, B, C, generator=gen, dtype=DT)

    def loss(ll: torch.Tensor, integ: torch.Tensor) -> torch.Tensor:
        return poisson_log_likelihood(ll, mask, integ)

    reference = _value_and_grads(loss, log_lambda, integral)
    perturbed = _value_and_grads(loss, torch.where(mask == 0, float("nan"), log_lambda), integral)
    for ref, got in zip(reference, perturbed):
        torch.testing.assert_close(got, ref, atol=0, rtol=0)


@pytest.mark.parametrize("prior", [(0.0, 1.0), (0.7, 2.0)])
def test_kl_normal_matches_torch(prior: tuple[float, float]) -> None:
    gen = torch.Generator().manual_seed(2)
    mean_q = torch.randn(B, 3, generator=gen, dtype=DT)
    std_q = torch.rand(B, 3, generator=gen, dtype=DT) + 0.1
    mean_p, std_p = prior
    got = kl_normal(mean_q, std_q, mean_p, std_p)
    expected = kl_divergence(
        Normal(mean_q, std_q),
        Normal(torch.full_like(mean_q, mean_p), torch.full_like(std_q, std_p)),
    ).sum(-1)
    torch.testing.assert_close(got, expected)
    assert kl_normal(torch.zeros(2, 3), torch.ones(2, 3)).abs().max() == 0


def test_normal_log_density_matches_torch() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(S, B, 3, generator=gen, dtype=DT)
    mean = torch.randn(B, 3, generator=gen, dtype=DT)
    std = torch.rand(B, 3, generator=gen, dtype=DT) + 0.1
    got = normal_log_density(x, mean, std)
    assert got.shape == (S, B)
    torch.testing.assert_close(got, Normal(mean, std).log_prob(x).sum(-1))
    standard = Normal(torch.zeros(()), torch.ones(())).log_prob(x).sum(-1)
    torch.testing.assert_close(normal_log_density(x, 0.0, 1.0), standard)


def test_elbo_is_mean_reconstruction_minus_weighted_kl() -> None:
    gen = torch.Generator().manual_seed(3)
    log_px = torch.randn(S, B, generator=gen, dtype=DT) * 10
    kl = torch.rand(B, generator=gen, dtype=DT)
    for weight in (0.0, 0.3, 1.0):
        expected = torch.stack([sum(log_px[:, b]) / S - weight * kl[b] for b in range(B)])
        torch.testing.assert_close(elbo(log_px, kl, weight), expected)


@pytest.mark.parametrize("n_samples", [1, 4])
def test_iwae_bound_by_hand(n_samples: int) -> None:
    """log of the mean importance weight p(x|z) p(z)^w / q(z|x)^w, one series at a time."""
    gen = torch.Generator().manual_seed(4)
    mean_q = torch.randn(B, 3, generator=gen, dtype=DT)
    std_q = torch.rand(B, 3, generator=gen, dtype=DT) + 0.2
    z0 = mean_q + std_q * torch.randn(n_samples, B, 3, generator=gen, dtype=DT)
    log_px = torch.randn(n_samples, B, generator=gen, dtype=DT) * 3
    for weight in (0.25, 1.0):
        got = iwae_bound(log_px, z0, mean_q, std_q, weight)
        assert got.shape == (B,)
        for b in range(B):
            weights = []
            for k in range(n_samples):
                prior = Normal(0.0, 1.0).log_prob(z0[k, b]).sum()
                posterior = Normal(mean_q[b], std_q[b]).log_prob(z0[k, b]).sum()
                weights.append(math.exp(log_px[k, b] + weight * (prior - posterior)))
            expected = math.log(sum(weights) / n_samples)
            assert float(got[b]) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_bernoulli_unknown_labels_contribute_nothing() -> None:
    logits = torch.tensor(
        [[0.3, -1.2, 2.0, 0.0], [1.0, 1.0, -3.0, 0.5]], dtype=DT, requires_grad=True
    )
    labels = torch.tensor([1.0, 0.0, float("nan"), 1.0], dtype=DT)
    got = bernoulli_log_likelihood(logits, labels)
    expected = torch.where(
        torch.isnan(labels), 0.0, labels * torch.nn.functional.logsigmoid(logits)
    ) + torch.where(
        torch.isnan(labels), 0.0, (1 - labels) * torch.nn.functional.logsigmoid(-logits)
    )
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    assert (logits.grad[:, 2] == 0).all() and torch.isfinite(logits.grad).all()
    assert (logits.grad[:, [0, 1, 3]] != 0).all()


def test_masked_mse() -> None:
    pred = torch.tensor([[[1.0, 2.0], [3.0, float("nan")]]], dtype=DT)  # [B, T, C]
    target = torch.tensor([[[0.0, 0.0], [1.0, 5.0]]], dtype=DT)
    mask = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]], dtype=DT)
    assert masked_mse(pred, target, mask).item() == pytest.approx((1.0 + 4.0) / 2)
    assert masked_mse(pred.expand(3, 1, 2, 2), target, mask).item() == pytest.approx(2.5)
    assert masked_mse(pred, target, torch.zeros_like(mask)).item() == 0.0
