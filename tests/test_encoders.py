"""Encoders read each series on its own clock; padding and unobserved entries are never read."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from torch import nn

from latentode.nn.encoders import (
    DEFAULT_ENCODER_SOLVER,
    ENCODERS,
    ODERNN,
    STD_FLOOR,
    ODERNNEncoder,
    RNNEncoder,
    reverse_within_length,
)
from latentode.nn.solve import SolverConfig
from latentode.nn.vector_fields import MLPVectorField

DT = torch.float64
C, L, H = 3, 2, 6


def _make(name: str, solver: SolverConfig = DEFAULT_ENCODER_SOLVER) -> nn.Module:
    torch.manual_seed(0)
    if name == "odernn":
        return ODERNNEncoder(C, L, hidden_dim=H, ode_hidden=8, ode_depth=1, solver=solver).double()
    return RNNEncoder(C, L, hidden_dim=H).double()


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three series with different grids and lengths (4, 2, 5), padded like collate."""
    gen = torch.Generator().manual_seed(3)
    lengths = torch.tensor([4, 2, 5])
    own_times = [
        torch.tensor([0.0, 0.1, 0.5, 0.9]),
        torch.tensor([0.0, 0.7]),
        torch.tensor([0.0, 0.05, 0.3, 0.31, 1.0]),
    ]
    times = torch.zeros(3, 5, dtype=DT)
    for i, t in enumerate(own_times):
        times[i, : len(t)] = t
        times[i, len(t) :] = t[-1]  # padding repeats the last time
    values = torch.randn(3, 5, C, generator=gen, dtype=DT)
    mask = (torch.rand(3, 5, C, generator=gen) < 0.6).to(DT)
    mask[0, 2] = 0.0  # a time with nothing observed
    mask[:, 0, 0] = 1.0
    mask[lengths[:, None] <= torch.arange(5)] = 0.0  # padding is unobserved
    values = values * mask
    return times, values, mask, lengths


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_shapes_and_std_floor(name: str) -> None:
    encoder = _make(name)
    mean, std = encoder(*_batch())
    assert mean.shape == std.shape == (3, L)
    assert (std >= STD_FLOOR).all() and torch.isfinite(mean).all()


def _outputs_and_grads(
    encoder: nn.Module, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, lengths
) -> list[torch.Tensor]:
    encoder.zero_grad()
    values = values.clone().requires_grad_(True)
    mean, std = encoder(times, values, mask, lengths)
    (mean.square().sum() + std.log().sum()).backward()
    observed_grad = torch.where(mask > 0, values.grad, 0.0)
    return [mean.detach(), std.detach(), observed_grad] + [
        p.grad.clone() for p in encoder.parameters()
    ]


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("garbage", [float("nan"), 1e6])
def test_masked_and_padded_entries_change_nothing(name: str, garbage: float) -> None:
    encoder = _make(name)
    times, values, mask, lengths = _batch()
    reference = _outputs_and_grads(encoder, times, values, mask, lengths)
    padding = lengths[:, None] <= torch.arange(5)  # [B, T]
    bad_values = torch.where(mask > 0, values, garbage)  # unobserved and padded values
    bad_times = torch.where(padding, garbage, times)  # padded times
    bad_mask = torch.where(padding[..., None], 1.0, mask)  # even a mask set on padding
    perturbed = _outputs_and_grads(encoder, bad_times, bad_values, bad_mask, lengths)
    for ref, got in zip(reference, perturbed):
        torch.testing.assert_close(got, ref, atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_batch_equals_each_series_alone(name: str) -> None:
    encoder = _make(name)
    times, values, mask, lengths = _batch()
    mean, std = encoder(times, values, mask, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = encoder(
            times[i : i + 1, :n], values[i : i + 1, :n], mask[i : i + 1, :n], lengths[i : i + 1]
        )
        torch.testing.assert_close(alone[0][0], mean[i], atol=1e-12, rtol=0)
        torch.testing.assert_close(alone[1][0], std[i], atol=1e-12, rtol=0)


def _manual_reverse_odernn(
    odernn: ODERNN, times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, flow
) -> torch.Tensor:
    """One series [T], [T, C]: h = 0 at the last observation, flow back gap by gap, GRU-update."""
    h = torch.zeros(1, odernn.hidden_dim, dtype=DT)
    for k in range(len(times) - 1, -1, -1):
        if k < len(times) - 1:
            h = flow(h, times[k + 1], times[k])
        if mask[k].any():
            h = odernn.cell(torch.cat([values[k] * mask[k], mask[k]])[None], h)
    return h[0]


@pytest.mark.parametrize("time_dependent", [False, True])
def test_per_series_clock_equals_direct_solve_in_real_time(time_dependent: bool) -> None:
    tight = SolverConfig("dopri5", rtol=1e-10, atol=1e-12)
    encoder = _make("odernn", tight)
    odernn = encoder.odernn
    odernn.field = MLPVectorField(H, 8, 1, time_dependent=time_dependent).double()
    times, values, mask, lengths = _batch()
    i, n = 2, 5
    got = odernn(
        times[i : i + 1], values[i : i + 1], mask[i : i + 1], lengths[i : i + 1], reverse=True
    )

    def real_time_flow(h: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor) -> torch.Tensor:
        t = torch.stack([t_from, t_to])  # decreasing: solve backwards in real time
        return torchdiffeq.odeint(odernn.field, h, t, rtol=1e-10, atol=1e-12)[-1]

    expected = _manual_reverse_odernn(
        odernn, times[i, :n], values[i, :n], mask[i, :n], real_time_flow
    )
    torch.testing.assert_close(got.final[0], expected, atol=1e-8, rtol=0)

    # with one Euler step per gap the clock is exactly one real-time Euler step of size Δt
    odernn.solver = SolverConfig("euler")
    got = odernn(
        times[i : i + 1], values[i : i + 1], mask[i : i + 1], lengths[i : i + 1], reverse=True
    )

    def euler_flow(h: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor) -> torch.Tensor:
        return h + (t_to - t_from) * odernn.field(t_from.reshape(1), h)

    expected = _manual_reverse_odernn(odernn, times[i, :n], values[i, :n], mask[i, :n], euler_flow)
    torch.testing.assert_close(got.final[0], expected, atol=1e-12, rtol=0)


def test_forward_pass_states_for_an_autoregressive_model() -> None:
    encoder = _make("odernn", SolverConfig("euler"))
    odernn = encoder.odernn
    times, values, mask, lengths = _batch()
    states = odernn(times, values, mask, lengths)
    assert states.before.shape == states.after.shape == (3, 5, H)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(states.final[i], states.after[i, n - 1])  # padding is inert
        h = torch.zeros(1, H, dtype=DT)
        for k in range(n):
            if k:
                h = h + (times[i, k] - times[i, k - 1]) * odernn.field(0.0, h)
            torch.testing.assert_close(states.before[i, k], h[0], atol=1e-12, rtol=0)
            if mask[i, k].any():
                h = odernn.cell(torch.cat([values[i, k], mask[i, k]])[None], h)
            torch.testing.assert_close(states.after[i, k], h[0], atol=1e-12, rtol=0)
    assert torch.equal(states.before[0, 2], states.after[0, 2])  # nothing observed at k = 2


def test_odernn_counts_nfe_and_backpropagates() -> None:
    encoder = _make("odernn")
    times, values, mask, lengths = _batch()
    field = encoder.odernn.field
    field.nfe.reset()
    mean, std = encoder(times, values, mask, lengths)
    assert field.nfe.forward == 4 * 5  # four Euler steps per position, T = 5 steps
    (mean.sum() + std.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_empty_series_reads_from_the_zero_state(name: str) -> None:
    times, values, mask, _ = _batch()
    encoder = _make(name)
    mean, std = encoder(times, values, mask, torch.tensor([4, 0, 5]))
    zero_mean, zero_std = encoder.head(torch.zeros(1, H, dtype=DT))
    torch.testing.assert_close(mean[1], zero_mean[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(std[1], zero_std[0], atol=1e-12, rtol=0)


def test_reverse_within_length() -> None:
    x = torch.arange(10).reshape(2, 5)
    got = reverse_within_length(x, torch.tensor([3, 5]))
    assert got.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    x3 = torch.arange(20).reshape(2, 5, 2)
    assert reverse_within_length(x3, torch.tensor([2, 0]))[:, :, 1].tolist() == [
        [3, 1, 5, 7, 9],
        [11, 13, 15, 17, 19],
    ]


def test_odernn_adjoint_gradients_match_direct() -> None:
    times, values, mask, lengths = _batch()
    grads = []
    for adjoint in (False, True):
        encoder = _make("odernn", SolverConfig("dopri5", rtol=1e-10, atol=1e-12, adjoint=adjoint))
        grads.append(_outputs_and_grads(encoder, times, values, mask, lengths))
        assert (encoder.odernn.field.nfe.backward > 0) == adjoint
    for direct, adjoint in zip(*grads):
        torch.testing.assert_close(adjoint, direct, atol=1e-7, rtol=1e-6)


def test_odernn_encoder_carries_the_state_back_to_time_zero() -> None:
    """With a constant field dh/dt = b (Euler is then exact), a series whose first
    observation is at t1 > 0 ends at h(t1) - t1·b: the state read from the same series
    started at 0, carried back over t1 analytically."""
    encoder = _make("odernn")
    last = encoder.odernn.field.net[-1]
    b = torch.tensor([0.3, -1.2, 0.5, 2.0, -0.7, 0.1], dtype=DT)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(b)
    times, values, mask, lengths = _batch()
    shift = torch.tensor([0.0, 0.4, 1.5], dtype=DT)
    mean, std = encoder(times + shift[:, None], values, mask, lengths)
    at_first = encoder.odernn.final_state(times, values, mask, lengths, reverse=True)  # h(t1)
    want_mean, want_std = encoder.head(at_first - shift[:, None] * b)
    torch.testing.assert_close(mean, want_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(std, want_std, rtol=1e-12, atol=1e-12)
    unshifted = encoder(times, values, mask, lengths)  # every first time 0: no extra move
    torch.testing.assert_close(unshifted[0][0], mean[0], rtol=0, atol=0)
    assert not torch.allclose(unshifted[0][1:], mean[1:])


def test_rnn_encoder_reads_the_gap_back_to_time_zero_as_one_more_step() -> None:
    encoder = _make("rnn")
    gen = torch.Generator().manual_seed(5)
    own = torch.tensor([0.5, 0.8, 1.2], dtype=DT)
    values = torch.randn(1, 3, C, generator=gen, dtype=DT).expand(2, -1, -1)
    mask = torch.ones(2, 3, C, dtype=DT)
    times = torch.stack([own, own - 0.5])  # the same series, starting at 0.5 and at 0
    mean, _ = encoder(times, values, mask, torch.tensor([3, 3]))

    def row(v: torch.Tensor, m: torch.Tensor, gap: float) -> torch.Tensor:
        return torch.cat([v * m, m, torch.tensor([gap], dtype=DT)])

    ones, zeros = torch.ones(C, dtype=DT), torch.zeros(C, dtype=DT)
    read = [row(values[0, 2], ones, 0.0), row(values[0, 1], ones, 0.4)]
    read += [row(values[0, 0], ones, 0.3), row(zeros, zeros, 0.5)]  # then back to time 0
    outputs, _ = encoder.gru(torch.stack(read)[None])
    torch.testing.assert_close(mean[0], encoder.head(outputs[0, 3])[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean[1], encoder.head(outputs[0, 2])[0], rtol=1e-12, atol=1e-12)
