"""The solve wrapper against closed forms: linear ODEs, adjoint gradients, step limits, NFE."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from torch import nn

from latentode.errors import LatentODEError
from latentode.nn.solve import (
    DIRECT_STEP_METHODS,
    METHODS,
    NFECounter,
    ODESolveError,
    ODEStepLimitError,
    SolverConfig,
    advance,
    solve,
)
from latentode.nn.vector_fields import FAST_TANH_MIN_ELEMENTS, MLPVectorField, Tanh

DT = torch.float64


class Linear(nn.Module):
    """dz/dt = A z on the last dim, with an NFE counter."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.nfe = NFECounter()

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return z @ self.a.T


def _system() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rotation = torch.tensor([[0.0, -2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=DT)
    a = rotation - 0.3 * torch.eye(3, dtype=DT) + 0.2 * torch.randn(3, 3, generator=gen, dtype=DT)
    y0 = torch.randn(4, 3, generator=gen, dtype=DT)  # [B, L]
    return a, y0


def _exact(a: torch.Tensor, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    expm = torch.linalg.matrix_exp(t[:, None, None] * a)  # [N, L, L]
    return torch.einsum("nij,bj->nbi", expm, y0)  # [N, B, L]


@pytest.mark.parametrize(
    ("config", "tol"),
    [
        (SolverConfig("dopri5", rtol=1e-9, atol=1e-11), 1e-7),
        (SolverConfig("rk4", step_size=0.01), 1e-8),
        (SolverConfig("euler", step_size=1e-3), 2e-2),
        (SolverConfig("rk4"), 1e-3),  # step_size None: one step per requested interval
    ],
)
def test_linear_ode_matches_matrix_exponential(config: SolverConfig, tol: float) -> None:
    a, y0 = _system()
    t = torch.linspace(0.0, 2.0, 41, dtype=DT)
    out = solve(Linear(a), y0, t, config)
    assert out.shape == (41, 4, 3)
    torch.testing.assert_close(out, _exact(a, y0, t), atol=tol, rtol=0)


def test_decreasing_times_solve_backwards() -> None:
    a, y0 = _system()
    t = torch.linspace(0.0, -1.0, 11, dtype=DT)
    out = solve(Linear(a), y0, t, SolverConfig("dopri5", rtol=1e-9, atol=1e-11))
    torch.testing.assert_close(out, _exact(a, y0, t), atol=1e-7, rtol=0)


def test_adjoint_gradients_match_direct_backprop() -> None:
    a, y0 = _system()
    t = torch.linspace(0.0, 1.5, 5, dtype=DT)
    grads = []
    for adjoint in (False, True):
        field = Linear(a)
        start = y0.clone().requires_grad_(True)
        config = SolverConfig("dopri5", rtol=1e-10, atol=1e-12, adjoint=adjoint)
        out = solve(field, start, t, config)
        (out.square().sum() + out[-1, :, 0].sum()).backward()
        grads.append((start.grad, field.a.grad))
        assert field.nfe.forward > 0
        assert (field.nfe.backward > 0) == adjoint  # only the adjoint evaluates f backwards
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-6)


def test_adjoint_needs_module_or_params() -> None:
    a, y0 = _system()
    t = torch.tensor([0.0, 1.0], dtype=DT)
    with pytest.raises(LatentODEError, match=r"nn\.Module"):
        solve(lambda t, z: z @ a.T, y0, t, SolverConfig(adjoint=True))
    a_param = a.clone().requires_grad_(True)
    out = solve(
        lambda t, z: z @ a_param.T, y0, t, SolverConfig(adjoint=True), adjoint_params=[a_param]
    )
    out.sum().backward()
    assert a_param.grad is not None


def test_nfe_counts_every_evaluation() -> None:
    field = MLPVectorField(3, hidden=8, depth=1).double()
    calls = []

    def spy(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return field(t, z)

    y0 = torch.randn(2, 3, dtype=DT)
    t = torch.linspace(0, 1, 4, dtype=DT)
    counter = NFECounter()
    solve(spy, y0, t, SolverConfig("dopri5"), nfe=counter)
    assert counter.forward == len(calls) > 0
    field.nfe.reset()
    solve(field, y0, t, SolverConfig("rk4"))
    assert field.nfe.forward == 3 * 4 and field.nfe.total == 12  # 3 steps, 4 stages
    field.nfe.reset()
    assert field.nfe.total == 0


class CountedField:
    """A vector field that counts its evaluations: a solve that stops early is one that
    evaluates the field a bounded number of times (no wall clock, which a busy machine
    would break)."""

    def __init__(self, field) -> None:
        self.field, self.calls = field, 0

    def __call__(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.field(t, z)


def test_step_limit_raises_quickly() -> None:
    stiff = CountedField(lambda t, z: -1e5 * (z - torch.cos(t)))
    y0 = torch.ones(3, dtype=DT)
    t = torch.tensor([0.0, 10.0], dtype=DT)
    with pytest.raises(ODEStepLimitError, match="max_steps=20") as info:
        solve(stiff, y0, t, SolverConfig("dopri5", max_steps=20))
    assert "tolerance" in str(info.value) and "learning rate" in str(info.value)
    assert stiff.calls <= 7 * 21  # dopri5: ~6 a step, 20 steps, the first step's guess (122)


def test_exploding_solution_fails_cleanly() -> None:
    blow_up = CountedField(lambda t, z: z.square())  # z(t) = 1 / (1 - t): infinite at t = 1
    with pytest.raises(ODESolveError):
        solve(blow_up, torch.ones(2, dtype=DT), torch.tensor([0.0, 2.0], dtype=DT))
    assert blow_up.calls < 2_000  # 938 when written; the step limit alone would allow ~70,000


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_state_does_not_hang(bad: float) -> None:
    field = CountedField(MLPVectorField(3, hidden=8, depth=1).double())
    y0 = torch.tensor([[0.1, bad, 0.2]], dtype=DT)
    t = torch.tensor([0.0, 1.0], dtype=DT)
    with pytest.raises(ODESolveError):
        solve(field, y0, t, SolverConfig("dopri5"))
    assert field.calls <= 7 * 2  # refused at the first step
    out = solve(field, y0, t, SolverConfig("euler"))  # fixed grid: propagates, no check
    assert not torch.isfinite(out[-1]).all()


def test_fixed_grid_step_limit_is_checked_before_solving() -> None:
    field = MLPVectorField(2, hidden=4, depth=1).double()
    t = torch.tensor([0.0, 100.0], dtype=DT)
    with pytest.raises(ODEStepLimitError, match="step_size"):
        solve(field, torch.zeros(2, dtype=DT), t, SolverConfig("euler", step_size=1e-3))
    assert field.nfe.forward == 0


@pytest.mark.parametrize("method", sorted(DIRECT_STEP_METHODS))
@pytest.mark.parametrize("step_size", [None, 0.25])
def test_advance_matches_torchdiffeq(method: str, step_size: float | None) -> None:
    field = MLPVectorField(3, hidden=8, depth=2, time_dependent=True).double()
    y0 = torch.randn(5, 3, dtype=DT)
    config = SolverConfig(method, step_size=step_size)
    options = {} if step_size is None else {"step_size": step_size}
    t = torch.tensor([0.5, 1.5], dtype=DT)
    expected = torchdiffeq.odeint(field, y0, t, method=method, options=options)[-1]
    got = advance(field, y0, 0.5, 1.5, config)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    stages = {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}[method]
    assert field.nfe.forward == stages * (1 if step_size is None else 4)


def test_advance_falls_back_to_solve() -> None:
    a, y0 = _system()
    got = advance(Linear(a), y0, 0.0, 1.0, SolverConfig("dopri5", rtol=1e-9, atol=1e-11))
    expected = _exact(a, y0, torch.tensor([1.0], dtype=DT))[0]
    torch.testing.assert_close(got, expected, atol=1e-7, rtol=0)


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(LatentODEError, match="dopri5") as info:
        SolverConfig("dopri4")
    assert all(name in str(info.value) for name in ("euler", "rk4", "bosh3"))
    assert "scipy_solver" not in METHODS
    with pytest.raises(LatentODEError, match="adaptive"):
        SolverConfig("dopri5", step_size=0.1)
    for bad in ({"rtol": 0.0}, {"atol": -1.0}, {"max_steps": 0}, {"max_steps": 1.5}):
        with pytest.raises(LatentODEError):
            SolverConfig(**bad)
    with pytest.raises(LatentODEError):
        SolverConfig("euler", step_size=0.0)
    config = SolverConfig("rk4", step_size=0.05, max_steps=None, adjoint=True)
    assert SolverConfig.from_dict(config.to_dict()) == config
    assert config.to_dict() == {
        "method": "rk4",
        "rtol": 1e-3,
        "atol": 1e-4,
        "step_size": 0.05,
        "max_steps": None,
        "adjoint": True,
    }
    with pytest.raises(LatentODEError, match="Unknown SolverConfig key"):
        SolverConfig.from_dict({"method": "rk4", "tol": 1.0})
    with pytest.raises(AttributeError):
        config.method = "euler"  # type: ignore[misc]


# ---- the tanh activation ------------------------------------------------------------------
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("numel", [100, FAST_TANH_MIN_ELEMENTS + 1])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 3e-7), (torch.float64, 1e-15)])
def test_tanh_equals_torch_tanh_in_value_and_gradient(numel, dtype, tol, inplace) -> None:
    x = torch.randn(numel, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 4
    x = torch.cat([x, torch.tensor([0.0, 1e-8, -30.0, 30.0], dtype=dtype)]).requires_grad_()
    ours = Tanh(inplace=inplace)(x * 1.0)  # in place: on a copy, as on a Linear's output
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    ref = torch.tanh(x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=4 * tol)


def test_sigmoid_tanh_has_exact_first_and_second_derivatives() -> None:
    from latentode.nn.vector_fields import _SigmoidTanh

    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SigmoidTanh.apply, (x,))
    assert torch.autograd.gradgradcheck(_SigmoidTanh.apply, (x,))

    def in_place(t: torch.Tensor) -> torch.Tensor:
        return _SigmoidTanh.apply(t * 1.0, True)

    assert torch.autograd.gradcheck(in_place, (x,))
    assert torch.autograd.gradgradcheck(in_place, (x,))


def test_in_place_tanh_reuses_its_input_and_mlps_use_it() -> None:
    x = torch.randn(FAST_TANH_MIN_ELEMENTS + 1, generator=torch.Generator().manual_seed(1))
    want = torch.tanh(x)
    with torch.no_grad():
        buffer = x.clone()
        out = Tanh(inplace=True)(buffer)
    assert out.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(out, want, rtol=0, atol=3e-7)
    kept = x.clone()
    Tanh()(kept)
    assert torch.equal(kept, x)  # the default leaves its input alone
    field = MLPVectorField(3, hidden=8, depth=2)
    assert [m.inplace for m in field.net if isinstance(m, Tanh)] == [True, True]
