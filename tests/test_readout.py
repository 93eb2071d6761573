"""The one-solve read-out against solving each series at its own times directly."""

from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq
from torch import nn

from latentode.errors import LatentODEError
from latentode.nn.readout import (
    MIN_GRID,
    derivative_matrix,
    interpolation_weights,
    solve_at_times,
    time_grid,
)
from latentode.nn.solve import SolverConfig
from latentode.nn.vector_fields import MLPVectorField

DT = torch.float64
TIGHT = SolverConfig("dopri5", rtol=1e-9, atol=1e-11)


class Pendulum(nn.Module):
    """A nonlinear field on [..., 2]: (θ, ω)' = (ω, -sin θ - 0.1 ω)."""

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        theta, omega = z[..., :1], z[..., 1:]
        return torch.cat([omega, -torch.sin(theta) - 0.1 * omega], dim=-1)


def _direct(func: nn.Module, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Reference: torchdiffeq at this series' own times. z0 [L], times [T'] → [T', L]."""
    out = torch.empty(times.shape[0], z0.shape[-1], dtype=z0.dtype)
    for sign in (1.0, -1.0):
        chosen = (times * sign > 0).nonzero().flatten()
        if len(chosen):
            own = torch.unique(times[chosen])  # sorted, distinct
            own = own if sign > 0 else own.flip(0)
            t = torch.cat([own.new_zeros(1), own])
            sol = torchdiffeq.odeint(func, z0, t, rtol=1e-10, atol=1e-12, method="dopri5")[1:]
            out[chosen] = sol[torch.searchsorted(own * sign, times[chosen] * sign)]
    out[times == 0] = z0
    return out


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    z0 = torch.randn(3, 2, generator=gen, dtype=DT)  # [B, L]
    times = torch.tensor(
        [
            [0.0, 0.3, 1.7, 2.2, 4.0, 4.0],  # padded by repeating its last time
            [-1.5, -0.2, 0.0, 0.9, 1.1, 3.3],  # negative times
            [0.05, 2.9, 3.0, 3.0, 3.0, 3.0],
        ],
        dtype=DT,
    )  # [B, T']
    return z0, times


def test_matches_direct_solve_at_each_series_times() -> None:
    z0, times = _batch()
    field = Pendulum()
    got = solve_at_times(field, z0, times, TIGHT, n_grid=64)
    assert got.shape == (3, 6, 2)
    for i in range(3):
        expected = _direct(field, z0[i], times[i])
        torch.testing.assert_close(got[i], expected, atol=1e-8, rtol=0)


def test_dense_queries_converge_at_high_order() -> None:
    z0, _ = _batch()
    field = Pendulum()
    gen = torch.Generator().manual_seed(3)
    times = torch.rand(3, 200, generator=gen, dtype=DT) * 7 - 2  # [B, T'] in [-2, 5)
    expected = torch.stack([_direct(field, z0[i], times[i]) for i in range(3)])
    errors = [
        (solve_at_times(field, z0, times, TIGHT, n_grid=n) - expected).abs().max().item()
        for n in (32, 64)
    ]
    assert errors[1] < 2e-7 and errors[0] / errors[1] > 30, errors


@pytest.mark.parametrize("time_dependent", [False, True])
def test_mlp_field_with_samples_and_exact_ends(time_dependent: bool) -> None:
    torch.manual_seed(0)
    field = MLPVectorField(3, hidden=16, depth=2, time_dependent=time_dependent).double()
    z0 = torch.randn(2, 3, 3, dtype=DT)  # [S, B, L]
    times = torch.tensor(
        [[0.0, 0.5, 2.0], [-0.7, 0.0, 1.0], [-0.7, 1.3, 2.0]], dtype=DT
    )  # exact 0, exact min and max of the batch
    got = solve_at_times(field, z0, times, TIGHT, n_grid=64)
    assert got.shape == (2, 3, 3, 3)
    torch.testing.assert_close(got[:, 0, 0], z0[:, 0], atol=1e-12, rtol=0)
    torch.testing.assert_close(got[:, 1, 1], z0[:, 1], atol=1e-12, rtol=0)
    for s in range(2):
        for i in range(3):
            expected = _direct(field, z0[s, i], times[i])
            torch.testing.assert_close(got[s, i], expected, atol=2e-8, rtol=0)


def test_batch_equals_each_series_alone() -> None:
    z0, times = _batch()
    field = Pendulum()
    together = solve_at_times(field, z0, times, TIGHT)
    for i in range(3):
        alone = solve_at_times(field, z0[i : i + 1], times[i : i + 1], TIGHT)
        torch.testing.assert_close(together[i], alone[0], atol=1e-8, rtol=0)


def test_only_negative_or_only_zero_times() -> None:
    z0, _ = _batch()
    field = Pendulum()
    negative = torch.tensor([[-2.0, -1.0], [-0.5, 0.0], [-2.0, -2.0]], dtype=DT)
    got = solve_at_times(field, z0, negative, TIGHT)
    for i in range(3):
        torch.testing.assert_close(got[i], _direct(field, z0[i], negative[i]), atol=1e-9, rtol=0)
    zeros = torch.zeros(3, 4, dtype=DT)
    torch.testing.assert_close(solve_at_times(field, z0, zeros, TIGHT), z0[:, None].expand(3, 4, 2))


def test_gradients_flow_and_adjoint_agrees() -> None:
    torch.manual_seed(0)
    field = MLPVectorField(2, hidden=8, depth=1).double()
    z0, times = _batch()
    grads = []
    for adjoint in (False, True):
        field.zero_grad()
        config = SolverConfig("dopri5", rtol=1e-9, atol=1e-11, adjoint=adjoint)
        start = z0.clone().requires_grad_(True)
        solve_at_times(field, start, times, config).square().sum().backward()
        grads.append([start.grad, *(p.grad.clone() for p in field.parameters())])
    for g_direct, g_adjoint in zip(*grads):
        torch.testing.assert_close(g_direct, g_adjoint, atol=1e-5, rtol=1e-5)


def test_fixed_step_solver_counts_only_the_solve() -> None:
    field = MLPVectorField(2, hidden=8, depth=1).double()
    z0, times = _batch()
    solve_at_times(field, z0, times, SolverConfig("rk4"), n_grid=20)
    # h = 5.5 / 19: 6 grid steps back to -6h <= -1.5, 14 forward to 14h >= 4.0; rk4 steps
    # once per grid interval and the read-out calls the field no more.
    assert time_grid(-1.5, 4.0, 20) == (pytest.approx(5.5 / 19), -6, 14)
    assert field.nfe.forward == 4 * (6 + 14)


def test_time_grid_covers_the_queries_and_zero() -> None:
    for t_min, t_max, n_grid in [(-1.5, 4.0, 20), (0.3, 2.0, 64), (-2.0, -0.1, 64), (0.0, 1.0, 2)]:
        h, k_lo, k_hi = time_grid(t_min, t_max, n_grid)
        assert k_lo <= 0 <= k_hi and k_lo * h <= t_min + 1e-12 and k_hi * h >= t_max - 1e-12
        assert (k_lo + 1) * h > min(t_min, 0.0) and (k_hi - 1) * h < max(t_max, 0.0)
        assert max(n_grid, MIN_GRID) <= k_hi - k_lo + 1 <= max(n_grid, MIN_GRID) + 1


def test_derivative_matrices_are_exact_on_sextics() -> None:
    n = 12
    k = torch.arange(n, dtype=DT)
    first, second = derivative_matrix(n, 1, DT), derivative_matrix(n, 2, DT)
    for degree in range(7):
        tol = 1e-9 * n**degree
        slope = degree * k ** (degree - 1) if degree else torch.zeros(n, dtype=DT)
        curve = degree * (degree - 1) * k ** (degree - 2) if degree > 1 else 0 * k
        torch.testing.assert_close(first @ k**degree, slope, atol=tol, rtol=0)
        torch.testing.assert_close(second @ k**degree, curve, atol=tol, rtol=0)
    with pytest.raises(LatentODEError, match="at least"):
        derivative_matrix(MIN_GRID - 1, 1, DT)


def test_interpolation_weights_reproduce_quintics_and_grid_points() -> None:
    n = 9
    k = torch.arange(n, dtype=DT)
    position = torch.linspace(0.0, n - 1, 97, dtype=DT).reshape(1, -1)  # [B=1, T']
    weights = interpolation_weights(position, n)  # [1, T', n]
    assert weights.shape == (1, 97, n)
    assert ((weights != 0).sum(-1) <= 8).all()

    def quintic(x: torch.Tensor) -> torch.Tensor:
        return 0.3 - 1.2 * x + 0.5 * x**2 - 0.07 * x**3 + 0.01 * x**4 - 0.001 * x**5

    torch.testing.assert_close(weights[0] @ quintic(k), quintic(position[0]), atol=1e-12, rtol=0)
    exact = interpolation_weights(k.reshape(3, 3), n)  # integer positions, the last included
    torch.testing.assert_close(exact.reshape(n, n), torch.eye(n, dtype=DT), atol=0, rtol=0)


def test_interpolation_is_sixth_order() -> None:
    t_end = 3.0
    query = torch.linspace(0.0, t_end, 301, dtype=DT)
    errors = []
    for n in (16, 32, 64):
        h = t_end / (n - 1)
        grid = torch.linspace(0.0, t_end, n, dtype=DT)
        got = interpolation_weights(query / h, n) @ torch.sin(grid)  # [T']
        errors.append((got - torch.sin(query)).abs().max().item())
        # 10x below the bound of cubic Hermite with exact slopes, h^4 / 384 * max|sin''''|
        assert errors[-1] <= h**4 / 384 / 10
    assert errors[-1] < 1e-10  # the cubic bound at 64 points: 1.3e-8
    rates = [math.log2(errors[k] / errors[k + 1]) for k in range(2)]
    assert all(5.8 < rate < 8.0 for rate in rates), rates


def test_bad_inputs() -> None:
    z0, times = _batch()
    field = Pendulum()
    with pytest.raises(LatentODEError, match="finite"):
        solve_at_times(field, z0, times.clone().fill_(float("nan")), TIGHT)
    with pytest.raises(LatentODEError, match="same B"):
        solve_at_times(field, z0[:2], times, TIGHT)
    with pytest.raises(LatentODEError, match="n_grid"):
        solve_at_times(field, z0, times, TIGHT, n_grid=1)


def test_both_directions_in_one_solve_follow_a_time_dependent_field() -> None:
    """dz/dt = cos(t): z(t) = z0 + sin(t) below and above 0; each half of the joint solve
    must see its own real time (the sign included)."""

    def field(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cos(torch.as_tensor(t, dtype=z.dtype))[..., None] * torch.ones_like(z)

    z0, times = _batch()  # series 1 has negative times: both directions
    got = solve_at_times(field, z0, times, TIGHT)
    want = z0[:, None, :] + torch.sin(times)[..., None]
    torch.testing.assert_close(got, want, atol=1e-8, rtol=0)


def _two_sided_solves(field: MLPVectorField, z0: torch.Tensor, times: torch.Tensor):
    """(solve_at_times on ``times`` and its field evaluations, the two one-sided solves'
    result merged, their evaluations), at the default dopri5 settings."""
    field.nfe.reset()
    got = solve_at_times(field, z0, times, SolverConfig())
    got_nfe = field.nfe.forward
    field.nfe.reset()
    below = solve_at_times(field, z0, times.clamp(max=0.0), SolverConfig())
    above = solve_at_times(field, z0, times.clamp(min=0.0), SolverConfig())
    two = torch.where((times < 0)[..., None], below, above)
    return got, got_nfe, two, field.nfe.forward


def _field_and_two_sided_queries():
    torch.manual_seed(0)
    field = MLPVectorField(2, hidden=16, depth=2).double()
    z0 = torch.randn(4, 2, dtype=DT)
    return field, z0, torch.linspace(-1.0, 3.0, 9, dtype=DT).expand(4, 9)


@torch.no_grad()
def test_both_directions_take_fewer_evaluations_than_two_solves() -> None:
    """The joint solve (default dopri5) against the two one-sided solves it replaces:
    fewer vector-field calls, the same values to the solver's tolerance."""
    field, z0, times = _field_and_two_sided_queries()
    joint, joint_nfe, two, separate_nfe = _two_sided_solves(field, z0, times)
    assert joint_nfe < separate_nfe
    torch.testing.assert_close(joint, two, atol=5e-3, rtol=0)
    reference = torch.stack([_direct(field, z0[i], times[i]) for i in range(4)])
    for got in (joint, two):  # both within the default tolerance of the truth
        assert float((got - reference).abs().max()) < 5e-3


@torch.no_grad()
def test_large_states_keep_two_solves(monkeypatch) -> None:
    """Above JOINT_SOLVE_MAX_ELEMENTS (arithmetic-bound prediction batches) the two
    directions are solved apart: exactly the evaluations of the two one-sided solves."""
    from latentode.nn import readout

    field, z0, times = _field_and_two_sided_queries()
    monkeypatch.setattr(readout, "JOINT_SOLVE_MAX_ELEMENTS", z0.numel() - 1)
    apart, apart_nfe, two, separate_nfe = _two_sided_solves(field, z0, times)
    assert apart_nfe == separate_nfe
    torch.testing.assert_close(apart, two, atol=5e-3, rtol=0)
