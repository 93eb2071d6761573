"""The fused ODE-RNN pass (one autograd node, hand-written backward) against the generic
step-by-step pass, whose gradients torch's autograd computes, and against finite differences."""

from __future__ import annotations

import pytest
import torch

from latentode.nn.encoders import ODERNN, ODERNNEncoder
from latentode.nn.fused_odernn import _FusedODERNN, pack_steps, supports_fused
from latentode.nn.solve import SolverConfig

DT = torch.float64


def _batch(n_batch: int = 5, n_times: int = 7, n_channels: int = 3, seed: int = 0):
    """A padded batch with uneven lengths (one empty series), missing channels and
    positions where nothing is observed."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([n_times, 4, 1, 0, 6][:n_batch])
    times = torch.cumsum(torch.rand(n_batch, n_times, generator=g, dtype=DT) + 0.05, dim=1)
    times = times - times[:, :1]  # each series starts at 0
    values = torch.randn(n_batch, n_times, n_channels, generator=g, dtype=DT)
    mask = (torch.rand(n_batch, n_times, n_channels, generator=g) < 0.6).to(DT)
    mask[0, 2] = 0.0  # a position with nothing observed
    values[mask == 0] = 1e6  # garbage where unobserved: must never be read
    return times, values, mask, lengths


def _odernn(depth: int, step_size: float, seed: int = 1) -> ODERNN:
    torch.manual_seed(seed)
    return ODERNN(
        3, 6, ode_hidden=5, ode_depth=depth, solver=SolverConfig("euler", step_size=step_size)
    ).double()


@pytest.mark.parametrize("reverse", [True, False])
@pytest.mark.parametrize(("depth", "step_size"), [(0, 1.0), (1, 0.5), (3, 0.25), (2, 0.3)])
def test_fused_pass_matches_the_generic_pass_in_value_and_gradient(
    reverse: bool, depth: int, step_size: float
) -> None:
    net = _odernn(depth, step_size)
    assert supports_fused(net.field, net.cell, net.solver)
    batch = _batch()
    weights = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=DT)

    expected = net(*batch, reverse=reverse).final
    (expected * weights).sum().backward()
    want = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()

    got = net.final_state(*batch, reverse=reverse)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-10, atol=1e-12, msg=name)
    assert float(got.detach()[3].abs().max()) == 0.0  # the empty series keeps the zero state


def test_fused_pass_without_gradients_keeps_no_buffers_and_agrees() -> None:
    net = _odernn(3, 0.25)
    batch = _batch()
    with torch.no_grad():
        got = net.final_state(*batch, reverse=True)
        expected = net(*batch, reverse=True).final
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_fused_gradient_passes_finite_differences() -> None:
    """torch.autograd.gradcheck: the hand-written backward against central differences."""
    net = _odernn(2, 0.5)
    _, values, mask, _ = _batch(n_times=4)
    gaps = torch.rand(4, 5, generator=torch.Generator().manual_seed(5), dtype=DT)
    inputs = torch.cat([values * mask, mask], dim=-1).transpose(0, 1).contiguous()
    inputs = torch.where(inputs.abs() > 1e5, 0.0, inputs)
    update = mask.transpose(0, 1).amax(-1, keepdim=True) > 0

    packed = pack_steps(gaps, inputs, update, n_euler=2)

    def final(*ps):
        return _FusedODERNN.apply(packed, 2, *ps)

    leaves = [p.detach().clone().requires_grad_() for p in _ordered(net)]
    assert torch.autograd.gradcheck(final, tuple(leaves), eps=1e-6, atol=1e-7)


def _ordered(net: ODERNN) -> list[torch.Tensor]:
    """The parameters in the Function's order: each field layer's (W, b), then the GRU's."""
    linears = [m for m in net.field.net if isinstance(m, torch.nn.Linear)]
    out = [p for lin in linears for p in (lin.weight, lin.bias)]
    return [*out, net.cell.weight_ih, net.cell.weight_hh, net.cell.bias_ih, net.cell.bias_hh]


def test_unsupported_configurations_take_the_generic_path() -> None:
    """A relu field (or a midpoint solver) is not fused; final_state still equals forward."""
    torch.manual_seed(0)
    relu = ODERNN(3, 6, ode_hidden=5, ode_depth=2, activation="relu").double()
    mid = _odernn(2, 0.5)
    mid.solver = SolverConfig("midpoint", step_size=0.5)
    batch = _batch()
    for net in (relu, mid):
        assert not supports_fused(net.field, net.cell, net.solver)
        torch.testing.assert_close(
            net.final_state(*batch, reverse=True), net(*batch, reverse=True).final
        )


def test_encoder_counts_field_evaluations_like_the_generic_pass() -> None:
    torch.manual_seed(0)
    enc = ODERNNEncoder(3, 2, hidden_dim=6, ode_hidden=5, ode_depth=2).double()
    enc.odernn.field.nfe.reset()
    enc(*_batch())
    fused = enc.odernn.field.nfe.forward
    enc.odernn.field.nfe.reset()
    enc.odernn(*_batch(), reverse=True)
    assert fused == enc.odernn.field.nfe.forward == 7 * 4  # T positions x 4 Euler steps


def test_a_batch_without_positions_gives_the_zero_state() -> None:
    net = _odernn(2, 0.5)
    times, values, mask, _ = _batch()
    lengths = torch.zeros(5, dtype=torch.long)
    got = net.final_state(times[:, :0], values[:, :0], mask[:, :0], lengths, reverse=True)
    torch.testing.assert_close(got, torch.zeros(5, 6, dtype=DT))
    none = net.final_state(times[:0], values[:0], mask[:0], lengths[:0], reverse=True)
    assert none.shape == (0, 6)  # and a batch of no series, no state


def test_fused_pass_when_every_position_is_read() -> None:
    """Without an empty position the pass skips its 'keep the state' branch: still exact."""
    net = _odernn(3, 0.5)
    times, values, mask, lengths = _batch()
    mask[:, :, 0] = 1.0  # channel 0 observed everywhere
    values = torch.where(mask > 0, torch.where(values.abs() > 1e5, 0.3, values), 1e6)
    weights = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=DT)
    expected = net(times, values, mask, lengths, reverse=True).final
    (expected * weights).sum().backward()
    want = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    got = net.final_state(times, values, mask, lengths, reverse=True)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-10, atol=1e-12, msg=name)


def test_packing_by_hand() -> None:
    """Series start at their first step that moves or reads; each step's rows are a
    prefix of the series sorted by start."""
    gaps = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.2, 0.1, 0.0]])  # [T=3, B=3]
    update = torch.tensor([[False, True, False], [False, True, False], [True, True, False]])
    inputs = torch.arange(9.0).view(3, 3, 1)  # input of (step k, series b) = 3k + b
    packed = pack_steps(gaps, inputs, update.unsqueeze(-1), n_euler=2)
    # series 1 starts at step 0, series 0 at step 2 (its gap), series 2 never
    assert packed.order.tolist() == [1, 0, 2]
    assert packed.counts == (1, 1, 2)
    assert packed.inputs[:, 0].tolist() == [1.0, 4.0, 7.0, 6.0]
    assert packed.scales[:, 0].tolist() == pytest.approx([0.0, 0.25, 0.05, 0.1])
    assert packed.update[:, 0].tolist() == [True, True, True, True]
