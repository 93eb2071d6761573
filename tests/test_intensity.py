"""The Poisson head: Λ carried as extra ODE state and read out per series, against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from latentode.nn.intensity import (
    AugmentedDynamics,
    PoissonIntensity,
    intensity_at_times,
    log_softplus,
)
from latentode.nn.likelihoods import poisson_log_likelihood
from latentode.nn.readout import solve_at_times
from latentode.nn.solve import SolverConfig
from latentode.nn.vector_fields import MLPVectorField

DT = torch.float64
TIGHT = SolverConfig("dopri5", rtol=1e-10, atol=1e-12)


def test_log_softplus_is_stable() -> None:
    a = torch.tensor([-500.0, -30.0, -5.0, 0.0, 3.0, 50.0], dtype=DT)
    got = log_softplus(a)
    assert torch.isfinite(got).all()
    assert got[0] == -500.0
    torch.testing.assert_close(got[1:], torch.log(torch.nn.functional.softplus(a[1:])))


def test_intensity_shapes_and_positivity() -> None:
    head = PoissonIntensity(latent_dim=3, n_channels=2, hidden=8).double()
    z = torch.randn(4, 5, 6, 3, dtype=DT)  # [S, B, T, L]
    lam = head(z)
    assert lam.shape == (4, 5, 6, 2) and (lam > 0).all()
    torch.testing.assert_close(head.log_intensity(z), torch.log(lam))


def _constant_head(rate: float, latent_dim: int, n_channels: int) -> PoissonIntensity:
    head = PoissonIntensity(latent_dim, n_channels, hidden=4).double()
    with torch.no_grad():
        last = head.net[-1]
        last.weight.zero_()
        last.bias.fill_(math.log(math.expm1(rate)))  # softplus(bias) = rate
    return head


def test_constant_intensity_through_the_augmented_solve() -> None:
    rate = 1.7
    torch.manual_seed(0)
    field = MLPVectorField(3, hidden=8, depth=1).double()
    dynamics = AugmentedDynamics(field, _constant_head(rate, 3, 2))
    z0 = torch.randn(2, 3, dtype=DT)  # [B, L]
    window_end = torch.tensor([[2.0], [0.6]], dtype=DT)  # [B, 1] each series' own window
    state = solve_at_times(dynamics, dynamics.initial_state(z0), window_end, TIGHT)
    z, integral = dynamics.split(state)  # [B, 1, L], [B, 1, C]
    assert z.shape == (2, 1, 3) and integral.shape == (2, 1, 2)
    torch.testing.assert_close(integral[:, 0], rate * window_end.expand(2, 2), atol=1e-9, rtol=0)

    mask = torch.zeros(2, 4, 2, dtype=DT)
    mask[0, :3, 0] = 1.0
    mask[1, :1, 1] = 1.0
    log_lambda = torch.full((1, 2, 4, 2), math.log(rate), dtype=DT)
    got = poisson_log_likelihood(log_lambda, mask, integral[:, 0].unsqueeze(0))
    expected = torch.tensor(
        [3 * math.log(rate) - 2 * rate * 2.0, 1 * math.log(rate) - 2 * rate * 0.6], dtype=DT
    )
    torch.testing.assert_close(got[0], expected, atol=1e-9, rtol=0)


class _Ramp(nn.Module):
    """State (z, u) with u = a + b t and z = softplus⁻¹(u), so softplus(z) = a + b t."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        u = state[..., 1:]
        dz = self.slope / -torch.expm1(-u)  # d/dt log(expm1(u)) = u' / (1 - e^{-u})
        return torch.cat([dz, torch.full_like(u, self.slope)], dim=-1)


def test_linear_intensity_through_the_augmented_solve() -> None:
    slope = 0.8
    head = PoissonIntensity(latent_dim=2, n_channels=1, hidden=4).double()
    head.net = nn.Sequential(nn.Linear(2, 1)).double()  # λ = softplus(z): the first state
    with torch.no_grad():
        head.net[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.net[0].bias.zero_()
    dynamics = AugmentedDynamics(_Ramp(slope), head)
    a = torch.tensor([0.9, 1.2, 2.0], dtype=DT)  # λ(0); λ > 0 over the batch span [-1, 3]
    z0 = torch.stack([torch.log(torch.expm1(a)), a], dim=-1)  # [B, 2]
    events = torch.tensor(
        [[0.1, 0.4, 1.2, 1.5], [-0.5, 0.3, 0.3, 0.3], [-1.0, 0.2, 2.5, 3.0]], dtype=DT
    )  # [B, T]; window [first, last] event; series 1 padded by repetition
    state = solve_at_times(dynamics, dynamics.initial_state(z0), events, TIGHT)  # [B, T, 3]
    z, big_lambda = dynamics.split(state)

    lam = head(z)[..., 0]  # [B, T]
    torch.testing.assert_close(lam, a[:, None] + slope * events, atol=1e-6, rtol=0)
    exact_big_lambda = a[:, None] * events + slope * events**2 / 2  # Λ(t) = a t + b t²/2
    torch.testing.assert_close(big_lambda[..., 0], exact_big_lambda, atol=1e-6, rtol=0)

    lengths = torch.tensor([4, 2, 4])
    last = (lengths - 1)[:, None, None]
    window = big_lambda.gather(1, last).squeeze(1) - big_lambda[:, 0]  # Λ(t_end) − Λ(t_start)
    mask = (torch.arange(4) < lengths[:, None]).to(DT)[..., None]  # [B, T, 1]
    got = poisson_log_likelihood(head.log_intensity(z)[None], mask, window[None])[0]
    expected = []
    for i, n in enumerate(lengths.tolist()):
        t = events[i, :n].tolist()
        t0, t1 = t[0], t[-1]
        integral = a[i].item() * (t1 - t0) + slope * (t1**2 - t0**2) / 2
        expected.append(sum(math.log(a[i].item() + slope * s) for s in t) - integral)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=DT), atol=1e-6, rtol=0)


def test_augmented_dynamics_shares_the_latent_counter() -> None:
    field = MLPVectorField(3, hidden=8, depth=1).double()
    dynamics = AugmentedDynamics(field, PoissonIntensity(3, 2, hidden=4).double())
    assert dynamics.nfe is field.nfe
    state = dynamics.initial_state(torch.randn(5, 4, 3, dtype=DT))  # [S, B, L]
    assert state.shape == (5, 4, 5) and (state[..., 3:] == 0).all()
    solve_at_times(dynamics, state, torch.rand(4, 6, dtype=DT), SolverConfig("rk4"), n_grid=8)
    assert field.nfe.forward == 4 * 7  # rk4 on the 8-point grid; the read-out adds none


@pytest.mark.parametrize("lead", [(), (2,)])
def test_intensity_at_arbitrary_times(lead: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    field = MLPVectorField(3, hidden=8, depth=1).double()
    head = PoissonIntensity(3, 2, hidden=4).double()
    z0 = torch.randn(*lead, 4, 3, dtype=DT)
    times = torch.linspace(-0.5, 2.0, 50, dtype=DT).expand(4, 50)  # a plotting grid
    lam = intensity_at_times(field, head, z0, times, TIGHT)
    assert lam.shape == (*lead, 4, 50, 2) and (lam > 0).all()
    z = solve_at_times(field, z0, times, TIGHT)
    torch.testing.assert_close(lam, head(z))
