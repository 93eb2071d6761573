"""Encoders q(z0 | observations): read each series backwards in time on its own clock.

Every encoder maps a padded batch to the posterior over each series' initial latent
state, at that series' model time 0 (its clock origin: its first context observation,
or a shared origin before it; see :meth:`latentode.data.scaling.Scaler.series_origin`):

    forward(times [B, T], values [B, T, C], mask [B, T, C], lengths [B])
        -> (mean [B, L], std [B, L])

Each series is read only at its own time stamps: sequential steps equal the longest
series' own length, never the batch's union of times. Padding (positions >= length)
and unobserved channels are never read, so garbage there changes nothing.

- :class:`ODERNN`: the ODE-RNN pass (Rubanova et al. 2019) in either direction; between
  observations the hidden state follows ``dh/dt = f(h)``, at an observation a GRU
  update. Its per-series clock: from observation k to the next one read, series i
  moves by its own gap Δt_i,k via ``dh/ds = Δt_i,k · f(h)``, ``s ∈ [0, 1]``, so one
  batched solve per step serves every series (padding has Δt = 0 and does not move).
- :class:`ODERNNEncoder`: ODE-RNN read in reverse time and carried on to time 0, then
  the posterior heads.
- :class:`RNNEncoder`: a GRU with the time gap as an extra input, in reverse time.

Both read the batch's context times as given: a series whose first context time is
later than 0 is carried back over that last gap too (ODE-RNN: by its ODE; GRU: one more
step that reads nothing but the gap).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from latentode.nn.fused_odernn import fused_final_state, supports_fused
from latentode.nn.solve import SolverConfig, advance
from latentode.nn.vector_fields import MLPVectorField, mlp

__all__ = [
    "DEFAULT_ENCODER_SOLVER",
    "ENCODERS",
    "ODERNN",
    "STD_FLOOR",
    "ODERNNEncoder",
    "ODERNNStates",
    "RNNEncoder",
    "reverse_within_length",
]

# Four Euler steps per gap of the reparameterised clock s ∈ [0, 1], whatever the gap.
DEFAULT_ENCODER_SOLVER = SolverConfig("euler", step_size=0.25)
# Smallest posterior std: keeps log std finite in the KL and z0 samples distinct.
STD_FLOOR = 1e-3


class ODERNNStates(NamedTuple):
    """Hidden states of an ODE-RNN pass, indexed by observation position k (not step order).

    before: [B, T, H] state at t_k after the ODE flow, before reading observation k
        (what an autoregressive ODE-RNN predicts x_k from).
    after: [B, T, H] state at t_k after the GRU update with observation k (equal to
        ``before`` where nothing was observed or k is padding).
    final: [B, H] state after the last observation read: at each series' last
        observation (forward) or at its first, time 0 (reverse).
    """

    before: torch.Tensor
    after: torch.Tensor
    final: torch.Tensor


class _SeriesClock:
    """``dh/ds = gap · f(start + s·gap, h)``: each series' own gap on a shared clock s ∈ [0, 1]."""

    __slots__ = ("field", "gap", "nfe", "start")

    def __init__(self, field: MLPVectorField, start: torch.Tensor, gap: torch.Tensor) -> None:
        self.field = field
        self.start = start  # [B]
        self.gap = gap.unsqueeze(-1)  # [B, 1]
        self.nfe = field.nfe

    def __call__(self, s: torch.Tensor | float, h: torch.Tensor) -> torch.Tensor:
        if self.field.time_dependent:  # real time, per series
            s = self.start + s * self.gap.squeeze(-1)  # [B]
        return self.gap * self.field(s, h)  # [B, H]


def _valid_positions(lengths: torch.Tensor, n_times: int) -> torch.Tensor:
    """[B, T] True where position k < length."""
    return torch.arange(n_times, device=lengths.device) < lengths.unsqueeze(-1)


def _step_major(
    times: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    lengths: torch.Tensor,
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A padded batch as step-major tensors indexed by position k (not reading order).

    Returns gaps [T, B] (time moved before reading position k, from its neighbour in
    reading order; 0 for padding and the first read), starts [T, B] (the time moved
    from), GRU inputs [T, B, 2C] (``[values·mask, mask]``) and update [T, B, 1] (True
    where position k is real and has an observed channel).
    """
    n_times = values.shape[1]
    valid = _valid_positions(lengths, n_times)  # [B, T]
    observed = (mask > 0) & valid.unsqueeze(-1)  # [B, T, C]
    inputs = torch.cat(
        [torch.where(observed, values, 0.0), observed.to(values.dtype)], dim=-1
    )  # [B, T, 2C]
    update = observed.any(dim=-1)  # [B, T]
    clean_times = torch.where(valid, times, 0.0)  # [B, T]
    if reverse:
        step = clean_times[:, :-1] - clean_times[:, 1:]  # [B, T-1] t_k - t_{k+1} <= 0
        gaps = F.pad(torch.where(valid[:, 1:], step, 0.0), (0, 1))  # [B, T]
        starts = F.pad(clean_times[:, 1:], (0, 1))  # [B, T] the time moved from
    else:
        step = clean_times[:, 1:] - clean_times[:, :-1]  # [B, T-1] t_k - t_{k-1} >= 0
        gaps = F.pad(torch.where(valid[:, 1:], step, 0.0), (1, 0))  # [B, T]
        starts = F.pad(clean_times[:, :-1], (1, 0))  # [B, T]
    return (
        gaps.t().contiguous(),
        starts.t().contiguous(),
        inputs.transpose(0, 1).contiguous(),
        update.t().unsqueeze(-1).contiguous(),
    )


class ODERNN(nn.Module):
    """The ODE-RNN hidden-state pass over a padded batch, forwards or backwards in time.

    Between consecutive observations the hidden state follows ``dh/dt = f(h)`` (an
    :class:`MLPVectorField`), solved on each series' own clock; at each observation
    with at least one observed channel a ``GRUCell`` reads ``[values·mask, mask]``.
    Steps with nothing observed, and padding, keep the state.

    Args:
        input_dim: C channels.
        hidden_dim: H.
        ode_hidden, ode_depth, activation: the vector field's MLP.
        solver: how to solve each gap on the clock s ∈ [0, 1] (``step_size`` is in
            units of s: 0.25 means four steps per gap).

    Attributes:
        field: the vector field (its ``nfe`` counts evaluations).
        cell: the ``nn.GRUCell`` (input 2C, hidden H).

    A standalone ODE-RNN predictor uses ``forward(..., reverse=False)``: predict x_k
    from ``states.before[:, k]``, and forecast by solving ``field`` from
    ``states.final`` at each series' last observation time.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        ode_hidden: int = 64,
        ode_depth: int = 2,
        activation: str = "tanh",
        solver: SolverConfig = DEFAULT_ENCODER_SOLVER,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.solver = solver
        self.field = MLPVectorField(hidden_dim, ode_hidden, ode_depth, activation)
        self.cell = nn.GRUCell(2 * input_dim, hidden_dim)

    def forward(
        self,
        times: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        lengths: torch.Tensor,
        reverse: bool = False,
        h0: torch.Tensor | None = None,
    ) -> ODERNNStates:
        """Run the pass; ``reverse=True`` reads each series from its last observation to its first.

        Args:
            times: [B, T] each series' times, increasing within its length.
            values: [B, T, C]; read only where ``mask`` is 1 and k < length.
            mask: [B, T, C] 1 where observed.
            lengths: [B] number of real positions.
            reverse: read from the last observation back to the first.
            h0: [B, H] state at the first observation read (default zeros).

        Returns:
            :class:`ODERNNStates`.
        """
        n_batch, n_times, _ = values.shape
        gaps_k, starts_k, inputs_k, update_k = _step_major(times, values, mask, lengths, reverse)
        order = range(n_times - 1, -1, -1) if reverse else range(n_times)

        h = values.new_zeros(n_batch, self.hidden_dim) if h0 is None else h0  # [B, H]
        params = tuple(self.field.parameters())
        before: list[torch.Tensor] = [h] * n_times
        after: list[torch.Tensor] = [h] * n_times
        for k in order:
            clock = _SeriesClock(self.field, starts_k[k], gaps_k[k])
            h = advance(clock, h, 0.0, 1.0, self.solver, adjoint_params=params)  # [B, H]
            before[k] = h
            h = torch.where(update_k[k], self.cell(inputs_k[k], h), h)  # [B, H]
            after[k] = h
        return ODERNNStates(
            before=torch.stack(before, dim=1),  # [B, T, H]
            after=torch.stack(after, dim=1),  # [B, T, H]
            final=h,  # [B, H]
        )

    def final_state(
        self,
        times: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        lengths: torch.Tensor,
        reverse: bool = False,
    ) -> torch.Tensor:
        """``forward(...).final`` [B, H] from a zero state, by the fused pass
        (:mod:`latentode.nn.fused_odernn`: one autograd node, same values) when the
        field and solver allow it and the data need no gradient, else by :meth:`forward`."""
        data_grad = times.requires_grad or values.requires_grad
        if data_grad or not supports_fused(self.field, self.cell, self.solver):
            return self.forward(times, values, mask, lengths, reverse).final
        gaps, _, inputs, update = _step_major(times, values, mask, lengths, reverse)
        if reverse:  # reading order: last position first
            gaps, inputs, update = gaps.flip(0), inputs.flip(0), update.flip(0)
        return fused_final_state(self.field, self.cell, self.solver, gaps, inputs, update)


class _PosteriorHead(nn.Module):
    """Hidden state [..., H] → (mean [..., L], std [..., L]), std = softplus + STD_FLOOR."""

    def __init__(self, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.net = mlp(hidden_dim, 2 * latent_dim, hidden_dim, 1, "tanh")

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_std = self.net(h).chunk(2, dim=-1)  # [..., L] each
        return mean, F.softplus(raw_std) + STD_FLOOR


class ODERNNEncoder(nn.Module):
    """ODE-RNN encoder (Rubanova et al. 2019): ODE-RNN in reverse time, then q(z0) heads.

    The hidden state starts at 0 at each series' last observation and is carried back
    to its first, then on to time 0 (the clock's origin; no move when the first
    observation is at 0), on the series' own clock; ``(mean, std)`` of q(z0) come from
    the state there. Sequential steps = T, the longest series' own length (T + 1 when a
    series' first observation is later than 0).

    Args:
        input_dim: C. latent_dim: L. hidden_dim: H (GRU state).
        ode_hidden, ode_depth, activation: the ODE vector field's MLP.
        solver: solver per gap on the clock s ∈ [0, 1]; default
            :data:`DEFAULT_ENCODER_SOLVER` (Euler, four steps per gap).

    ``forward(times [B, T], values [B, T, C], mask [B, T, C], lengths [B])``
    → ``(mean [B, L], std [B, L])``, std >= :data:`STD_FLOOR`.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        hidden_dim: int = 40,
        ode_hidden: int = 64,
        ode_depth: int = 2,
        activation: str = "tanh",
        solver: SolverConfig = DEFAULT_ENCODER_SOLVER,
    ) -> None:
        super().__init__()
        self.odernn = ODERNN(input_dim, hidden_dim, ode_hidden, ode_depth, activation, solver)
        self.head = _PosteriorHead(hidden_dim, latent_dim)

    def forward(
        self,
        times: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if bool((times[:, 0] > 0).any()):  # else the step to time 0 moves nothing
            times, values, mask, lengths = with_origin_step(times, values, mask, lengths)
        final = self.odernn.final_state(times, values, mask, lengths, reverse=True)
        return self.head(final)  # [B, L], [B, L]


def with_origin_step(
    times: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch with a first position at time 0 where nothing is observed, so that a
    pass read in reverse ends at the clock's origin: [B, T+1] times, [B, T+1, C] values
    and mask, lengths + 1 [B]. Its gap is 0 for a series whose first time is 0."""
    return (
        F.pad(times, (1, 0)),
        F.pad(values, (0, 0, 1, 0)),
        F.pad(mask, (0, 0, 1, 0)),
        lengths + 1,
    )


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``length`` positions, leaving padding in place.

    ``x`` [B, T, ...], ``lengths`` [B] → [B, T, ...] with ``out[b, j] = x[b, len_b - 1 - j]``
    for ``j < len_b`` and ``out[b, j] = x[b, j]`` otherwise. One ``gather``, no loop.
    """
    n_times = x.shape[1]
    pos = torch.arange(n_times, device=x.device).unsqueeze(0)  # [1, T]
    flipped = lengths.unsqueeze(-1) - 1 - pos  # [B, T]
    index = torch.where(pos < lengths.unsqueeze(-1), flipped, pos)  # [B, T]
    index = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, index)


class RNNEncoder(nn.Module):
    """GRU encoder in reverse time with the time gap as an extra input.

    Each series is reversed within its own length (padding stays at the end) and one
    ``nn.GRU`` call reads ``[values·mask, mask, |Δt|]`` from its last observation to its
    first, where |Δt| is the gap to the observation read before (0 for the first read),
    and, for a series whose first time is later than 0, one step more that reads only
    the gap back to time 0; the state after a series' last step gives ``(mean, std)``
    of q(z0).

    Args:
        input_dim: C. latent_dim: L. hidden_dim: H.

    ``forward(times [B, T], values [B, T, C], mask [B, T, C], lengths [B])``
    → ``(mean [B, L], std [B, L])``, std >= :data:`STD_FLOOR`.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden_dim: int = 40) -> None:
        super().__init__()
        self.gru = nn.GRU(2 * input_dim + 1, hidden_dim, batch_first=True)
        self.head = _PosteriorHead(hidden_dim, latent_dim)

    def forward(
        self,
        times: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        moves = times[:, 0] > 0  # [B] series carried back to time 0 by one step more
        last = lengths - 1 + moves.long()  # [B] the position of each series' last step read
        empty = lengths == 0
        if bool(moves.any()):  # else the GRU's earlier outputs are all that is read
            times, values, mask, lengths = with_origin_step(times, values, mask, lengths)
        n_batch, n_times, _ = values.shape
        valid = _valid_positions(lengths, n_times)  # [B, T]
        observed = (mask > 0) & valid.unsqueeze(-1)  # [B, T, C]
        clean_times = torch.where(valid, times, 0.0)  # [B, T]
        rev_times = reverse_within_length(clean_times, lengths)  # [B, T] last obs first
        gaps = (rev_times[:, :-1] - rev_times[:, 1:]).abs()  # [B, T-1]
        gaps = F.pad(torch.where(valid[:, 1:], gaps, 0.0), (1, 0))  # [B, T]
        inputs = torch.cat(
            [torch.where(observed, values, 0.0), observed.to(values.dtype)], dim=-1
        )  # [B, T, 2C]
        rev_inputs = reverse_within_length(inputs, lengths)  # [B, T, 2C]
        rev_inputs = torch.cat([rev_inputs, gaps.unsqueeze(-1)], dim=-1)  # [B, T, 2C+1]
        outputs, _ = self.gru(rev_inputs)  # [B, T, H]
        index = last.clamp(min=0).reshape(n_batch, 1, 1).expand(n_batch, 1, outputs.shape[-1])
        h = outputs.gather(1, index).squeeze(1)  # [B, H]
        h = torch.where(empty.unsqueeze(-1), 0.0, h)  # empty series: zero state
        return self.head(h)  # [B, L], [B, L]


ENCODERS: dict[str, type[nn.Module]] = {"odernn": ODERNNEncoder, "rnn": RNNEncoder}
