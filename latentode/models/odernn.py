"""Autoregressive baselines of Rubanova et al. 2019: the ODE-RNN and a GRU with time gaps.

Both read the context forwards in time. Between observations the hidden state follows
a neural ODE on the series' own clock (ODE-RNN) or stays put (GRU-Δt, whose GRU reads
each observation together with its gap since the previous observation). To predict at
time t a series uses its hidden state after the last context observation strictly
before t (zeros at its first observation when there is none), carried to t by the
hidden ODE (ODE-RNN) or given with the gap to t to the decoder (GRU-Δt), and decodes
a Gaussian mean and std per channel. Strictly before: a context point is never its
own evidence, so training to reconstruct the context is honest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from latentode.data.batching import Batch
from latentode.errors import LatentODEError
from latentode.nn.encoders import ODERNN, ODERNNStates, _SeriesClock
from latentode.nn.likelihoods import gaussian_log_likelihood
from latentode.nn.solve import SolverConfig, advance
from latentode.nn.vector_fields import mlp

MIN_STD = 1e-3
CELLS = ("odernn", "gru_dt")


@dataclass(frozen=True)
class AutoregressiveConfig:
    """Sizes and settings of an ODE-RNN or GRU-Δt model (plain types).

    Attributes:
        n_channels: C.
        cell: ``"odernn"`` (hidden ODE between observations) or ``"gru_dt"`` (state
            held constant between observations; the GRU reads each observation's gap
            since the previous one, the decoder the gap from the last one to the target).
        hidden_dim: H, GRU state size.
        hidden, depth: width and hidden layers of the ODE field and decoder MLPs.
        solver: per-gap solver on the clock s ∈ [0, 1] (``SolverConfig`` fields).
    """

    n_channels: int
    cell: str = "odernn"
    hidden_dim: int = 32
    hidden: int = 64
    depth: int = 2
    solver: dict = field(
        default_factory=lambda: SolverConfig(method="euler", step_size=0.25).to_dict()
    )

    def __post_init__(self):
        if self.cell not in CELLS:
            raise LatentODEError(f"cell={self.cell!r} is unknown; use one of {CELLS}.")

    def to_dict(self) -> dict:
        return asdict(self)


class GRUDeltaT(nn.Module):
    """The GRU-Δt hidden-state pass: a GRU reads each observation with its time gap.

    Reading each series forwards, at position k with at least one observed channel a
    ``GRUCell`` reads ``[values·mask, mask, Δt_k]``, where Δt_k is the time since the
    series' previous such observation (0 at its first). The state does not change
    between observations, nor at positions with nothing observed, nor over padding.

    Args:
        input_dim: C channels.
        hidden_dim: H.

    Attributes:
        cell: the ``nn.GRUCell`` (input 2C + 1, hidden H).

    ``forward(times [B, T], values [B, T, C], mask [B, T, C], lengths [B])`` →
    :class:`~latentode.nn.encoders.ODERNNStates` (``before``: the state at t_k before
    reading observation k; ``after``: after it; ``final``: after the last one).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(2 * input_dim + 1, hidden_dim)

    def forward(
        self,
        times: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        lengths: torch.Tensor,
    ) -> ODERNNStates:
        n_batch, n_times, _ = values.shape
        positions = torch.arange(n_times, device=times.device)  # [T]
        valid = positions < lengths.unsqueeze(-1)  # [B, T]
        observed = (mask > 0) & valid.unsqueeze(-1)  # [B, T, C]
        update = observed.any(dim=-1)  # [B, T]
        clean_times = torch.where(valid, times, 0.0)  # [B, T]
        # the previous observation read before position k (-1: none)
        marked = torch.where(update, positions, -1)  # [B, T]
        prev = F.pad(marked.cummax(dim=1).values[:, :-1], (1, 0), value=-1)  # [B, T]
        prev_time = clean_times.gather(1, prev.clamp_min(0))  # [B, T]
        gaps = torch.where(prev >= 0, clean_times - prev_time, 0.0)  # [B, T]
        inputs = torch.cat(
            [torch.where(observed, values, 0.0), observed.to(values.dtype), gaps.unsqueeze(-1)],
            dim=-1,
        )  # [B, T, 2C + 1]
        inputs_k = inputs.transpose(0, 1).contiguous()  # [T, B, 2C + 1]
        update_k = update.t().unsqueeze(-1).contiguous()  # [T, B, 1]
        h = values.new_zeros(n_batch, self.hidden_dim)  # [B, H]
        before: list[torch.Tensor] = []
        after: list[torch.Tensor] = []
        for k in range(n_times):
            before.append(h)
            h = torch.where(update_k[k], self.cell(inputs_k[k], h), h)  # [B, H]
            after.append(h)
        return ODERNNStates(
            before=torch.stack(before, dim=1),  # [B, T, H]
            after=torch.stack(after, dim=1),  # [B, T, H]
            final=h,  # [B, H]
        )


class AutoregressiveNet(nn.Module):
    """ODE-RNN / GRU-Δt predictor; ``config`` as :class:`AutoregressiveConfig`.

    Holds ``odernn`` (an :class:`~latentode.nn.encoders.ODERNN`, cell ``"odernn"``)
    or ``gru_dt`` (a :class:`GRUDeltaT`, cell ``"gru_dt"``) and the ``decoder``.
    """

    def __init__(self, config: dict):
        super().__init__()
        cfg = AutoregressiveConfig(**config)
        self.cfg = cfg
        self.solver = SolverConfig.from_dict(cfg.solver)
        if cfg.cell == "odernn":
            self.odernn = ODERNN(
                cfg.n_channels, cfg.hidden_dim, cfg.hidden, cfg.depth, solver=self.solver
            )
        else:
            self.gru_dt = GRUDeltaT(cfg.n_channels, cfg.hidden_dim)
        extra = 1 if cfg.cell == "gru_dt" else 0
        self.decoder = mlp(cfg.hidden_dim + extra, 2 * cfg.n_channels, cfg.hidden, 1, "tanh")

    @property
    def dynamics(self):
        """The hidden ODE's vector field (its ``nfe`` counts evaluations); None for GRU-Δt."""
        return self.odernn.field if self.cfg.cell == "odernn" else None

    def predictive(
        self, batch: Batch, solver: SolverConfig | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian mean and std [B, T', C] at the batch's target times (scaled units)."""
        solver = solver or self.solver
        times, lengths = batch.times, batch.lengths
        states = self._states(batch)
        n_b, n_t = times.shape
        valid = torch.arange(n_t, device=times.device) < lengths.unsqueeze(-1)  # [B, T]
        ctx_t = torch.where(valid, times, torch.inf)  # [B, T] padding never "before"
        tgt_t = batch.target_times  # [B, T']
        # last context index strictly before each target time (-1: none)
        before = ctx_t.unsqueeze(1) < tgt_t.unsqueeze(-1)  # [B, T', T]
        last = before.sum(-1) - 1  # [B, T'] (context times are increasing)
        has = last >= 0
        idx = last.clamp_min(0)
        h = states.after.gather(
            1, idx.unsqueeze(-1).expand(-1, -1, states.after.shape[-1])
        )  # [B, T', H]
        h = torch.where(has.unsqueeze(-1), h, 0.0)
        t_from = torch.where(has, times.gather(1, idx), 0.0)  # [B, T']
        gap = tgt_t - t_from  # [B, T']
        if self.cfg.cell == "odernn":
            flat_h = h.reshape(-1, h.shape[-1])  # [B*T', H]
            clock = _SeriesClock(self.odernn.field, t_from.reshape(-1), gap.reshape(-1))
            flat_h = advance(clock, flat_h, 0.0, 1.0, solver)
            out = self.decoder(flat_h.view(n_b, -1, h.shape[-1]))
        else:
            out = self.decoder(torch.cat([h, gap.unsqueeze(-1)], dim=-1))
        mean, raw = out.chunk(2, dim=-1)  # [B, T', C]
        return mean, F.softplus(raw) + MIN_STD

    def _states(self, batch: Batch) -> ODERNNStates:
        """The forward hidden-state pass over the context, on each series' own clock."""
        net = self.odernn if self.cfg.cell == "odernn" else self.gru_dt
        return net(batch.times, batch.values, batch.mask, batch.lengths)

    def training_loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Gaussian negative log-likelihood per observed target value."""
        mean, std = self.predictive(batch)
        ll = gaussian_log_likelihood(
            mean.unsqueeze(0), batch.target_values, batch.target_mask, std.unsqueeze(0)
        )  # [1, B]
        loss = -ll.sum() / batch.target_mask.sum().clamp_min(1.0)
        return {"loss": loss}

    @torch.no_grad()
    def predict_mean(self, batch: Batch) -> torch.Tensor:
        return self.predictive(batch)[0]

    @torch.no_grad()
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden state after the last context observation [B, H] (std: zeros)."""
        states = self._states(batch)
        return states.final, torch.zeros_like(states.final)

    @torch.no_grad()
    def sample(
        self,
        batch: Batch,
        n_samples: int,
        generator: torch.Generator | None = None,
        solver: SolverConfig | None = None,
        antithetic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The (deterministic) mean repeated ``n_samples`` times, and the predicted std
        (``generator`` and ``antithetic`` change nothing: there is no latent sample)."""
        mean, std = self.predictive(batch, solver)
        return {"mean": mean.unsqueeze(0).expand(n_samples, -1, -1, -1), "noise_std": std}
