"""The Dormand-Prince loop against exact solutions, torchdiffeq's dopri5 and exact gradients."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq

from latentode.errors import LatentODEError
from latentode.nn.dopri5 import _dense_output, _step, dopri5_solve

DT = torch.float64


def _rotation() -> tuple[torch.Tensor, torch.Tensor]:
    """dy/dt = A y with a damped rotation A, and a batch of starts y0 [4, 2]."""
    a = torch.tensor([[-0.2, -3.0], [3.0, -0.2]], dtype=DT)
    y0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.3], [2.0, 1.0]], dtype=DT)
    return a, y0


def _exact(a: torch.Tensor, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nij,bj->nbi", torch.linalg.matrix_exp(t[:, None, None] * a), y0)


def _one_step_dense(func, y0: torch.Tensor, dt: float, thetas: list[float]) -> torch.Tensor:
    def call(t: float, y: torch.Tensor) -> torch.Tensor:
        return func(torch.tensor(t, dtype=DT), y)

    _, stages = _step(call, 0.0, y0, call(0.0, y0), dt)
    return _dense_output(y0, stages, thetas, dt, (-1, y0.numel())).view(len(thetas), *y0.shape)


def test_dense_output_is_exact_for_quartic_solutions() -> None:
    # y' = 4 t^3 + 3 t^2 (y = t^4 + t^3): a 4th-order continuous extension reproduces it
    thetas = [0.0, 0.13, 0.5, 0.77, 1.0]
    got = _one_step_dense(
        lambda t, y: (4 * t**3 + 3 * t**2).expand_as(y), torch.zeros(1, dtype=DT), 0.9, thetas
    )
    t = 0.9 * torch.tensor(thetas, dtype=DT)
    torch.testing.assert_close(got[:, 0], t**4 + t**3, atol=1e-14, rtol=0)


def test_dense_output_error_falls_as_the_fifth_power_of_the_step() -> None:
    a, y0 = _rotation()
    thetas = [0.3, 0.5, 0.8]
    errors = []
    for dt in (0.2, 0.1):
        got = _one_step_dense(lambda t, y: y @ a.T, y0, dt, thetas)
        exact = _exact(a, y0, dt * torch.tensor(thetas, dtype=DT))
        errors.append(float((got - exact).abs().max()))
    assert 2**4.5 < errors[0] / errors[1] < 2**6  # local error O(h^5)


@pytest.mark.parametrize("end", [2.0, -1.5])
def test_solution_matches_matrix_exponential_both_ways(end: float) -> None:
    a, y0 = _rotation()
    t = torch.linspace(0.0, end, 33, dtype=DT)
    got = dopri5_solve(lambda t, y: y @ a.T, y0, t, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(got, _exact(a, y0, t), atol=2e-8, rtol=0)


def test_same_steps_and_values_as_torchdiffeq() -> None:
    """Same controller and the same interpolating polynomial: the same evaluations and,
    to rounding, the same values (far closer than either is to the true solution)."""
    a, y0 = _rotation()

    def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(y @ a.T) + 0.1 * torch.sin(t)

    t = torch.linspace(0.0, 3.0, 25, dtype=DT)
    reference = torchdiffeq.odeint(field, y0, t, rtol=1e-12, atol=1e-12)
    calls = []
    ours = dopri5_solve(field, y0, t, rtol=1e-4, atol=1e-6, on_eval=lambda: calls.append(1))
    counted = []

    def counting(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        counted.append(1)
        return field(t, y)

    theirs = torchdiffeq.odeint(counting, y0, t, rtol=1e-4, atol=1e-6)
    assert len(calls) == len(counted)
    assert float((theirs - reference).abs().max()) > 1e-5  # the tolerance shows
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)


def test_gradient_matches_exact_sensitivity() -> None:
    """d/dy0 of Σ_n w_n · y(t_n) is Σ_n expm(A t_n)^T w_n for a linear field."""
    a, y0 = _rotation()
    t = torch.linspace(0.0, 1.5, 9, dtype=DT)
    weights = torch.randn(9, *y0.shape, generator=torch.Generator().manual_seed(0), dtype=DT)
    start = y0.clone().requires_grad_(True)
    out = dopri5_solve(lambda t, y: y @ a.T, start, t, rtol=1e-10, atol=1e-12)
    (out * weights).sum().backward()
    expm = torch.linalg.matrix_exp(t[:, None, None] * a)  # [N, 2, 2]
    expected = torch.einsum("nij,nbi->bj", expm, weights)
    torch.testing.assert_close(start.grad, expected, atol=1e-8, rtol=0)


def test_parameter_gradient_matches_torchdiffeq() -> None:
    a, y0 = _rotation()
    t = torch.linspace(0.0, 2.0, 17, dtype=DT)
    grads = []
    for solver in ("ours", "torchdiffeq"):
        param = a.clone().requires_grad_(True)

        def field(t: torch.Tensor, y: torch.Tensor, param=param) -> torch.Tensor:
            return torch.tanh(y @ param.T)

        if solver == "ours":
            out = dopri5_solve(field, y0, t, rtol=1e-10, atol=1e-12)
        else:
            out = torchdiffeq.odeint(field, y0, t, rtol=1e-10, atol=1e-12)
        out.square().sum().backward()
        grads.append(param.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-7, rtol=1e-7)


def test_times_out_of_order_are_refused() -> None:
    with pytest.raises(LatentODEError, match="strictly increasing"):
        dopri5_solve(
            lambda t, y: -y, torch.ones(2, dtype=DT), torch.tensor([0.0, 1.0, 0.5]), 1e-3, 1e-4
        )


def test_single_time_returns_the_start() -> None:
    y0 = torch.ones(3, dtype=DT)
    out = dopri5_solve(lambda t, y: -y, y0, torch.zeros(1, dtype=DT), rtol=1e-3, atol=1e-4)
    assert out.shape == (1, 3) and torch.equal(out[0], y0)
    empty = dopri5_solve(lambda t, y: -y, torch.ones(0, 3), torch.linspace(0, 1, 4), 1e-3, 1e-4)
    assert empty.shape == (4, 0, 3)  # an empty batch: nothing to integrate, no step loop


def test_error_norm_steers_the_steps() -> None:
    """A norm that reads only the first series takes the steps that series needs alone."""
    a, y0 = _rotation()
    t = torch.tensor([0.0, 4.0], dtype=DT)
    rates = torch.tensor([[1.0], [4.0]], dtype=DT)  # the second series turns 4x faster

    def first_series(scaled: torch.Tensor) -> torch.Tensor:
        return scaled[0].square().mean().sqrt()

    counts = []
    for n, norm in ((1, None), (2, first_series), (2, None)):
        calls = []
        dopri5_solve(
            lambda t, y, n=n: rates[:n] * (y @ a.T),
            y0[:n],
            t,
            1e-6,
            1e-9,
            norm=norm,
            on_eval=lambda calls=calls: calls.append(1),
        )
        counts.append(len(calls))
    assert counts[0] == counts[1] < counts[2]
