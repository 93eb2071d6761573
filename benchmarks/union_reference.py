"""The 2019 training path, rebuilt for comparison: everything on the batch's union of time stamps.

Rubanova et al.'s code put a batch on one time vector -- the union of every series'
time stamps -- because torchdiffeq takes one time vector per solve. This module
rebuilds that approach around a :class:`~latentode.models.LatentODENet`'s own weights,
so both paths train the same network at the same size:

- data: values and masks [B, U, C] on the union of the batch's U time stamps, time
  measured from the batch's first stamp (one clock for every series);
- encoder: the ODE-RNN stepped through every union time in reverse
  (:class:`encoder_grid.UnionGridEncoder`), each series carried back to the union's
  first time as in the 2019 code, so z0 sits at that shared time;
- decoder: one torchdiffeq solve (through latentode's ``solve`` wrapper) that returns
  the latent state at every union time, then the linear decoder everywhere;
- likelihood: a Python loop over (sample, series) and channel that selects the
  observed entries with a boolean mask and sums their Gaussian log-density, like the
  2019 ``compute_masked_likelihood``. (The 2019 code averaged over each channel's
  points; here it sums, so the objective equals latentode's and the two can be
  checked against each other. Its per-step MSE, computed the same way, is left out.)

The KL term and the importance-weighted bound are latentode's own (vectorised) functions.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from encoder_grid import UnionGridEncoder

from latentode.data.dataset import Series
from latentode.data.scaling import Scaler
from latentode.models.latent_ode import LatentODENet
from latentode.nn.likelihoods import elbo, iwae_bound, kl_normal, masked_mse
from latentode.nn.solve import solve

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class UnionBatch:
    """A batch on the union of its time stamps (U of them), model units.

    Attributes:
        times: [U] union times, 0 at the batch's first stamp, scaled by the time scale.
        values, mask: [B, U, C] the context (what the encoder reads).
        target_values, target_mask: [B, U, C] the targets (what the likelihood scores).
        first, last: [B] union index the encoder carries each series back to (0 for all,
            as in 2019) and each series' last context index.
    """

    times: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    target_values: torch.Tensor
    target_mask: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor

    def __len__(self) -> int:
        return self.values.shape[0]

    def to(self, device: torch.device | str) -> UnionBatch:
        return UnionBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def encoder_input(self) -> dict[str, torch.Tensor]:
        """The layout :class:`encoder_grid.UnionGridEncoder` reads."""
        return {
            "times": self.times,
            "values": self.values,
            "mask": self.mask,
            "first": self.first,
            "last": self.last,
        }


def union_collate(
    context: Sequence[Series],
    targets: Sequence[Series],
    scaler: Scaler,
    dtype: torch.dtype = torch.float32,
) -> UnionBatch:
    """Context and target series → a :class:`UnionBatch` on the union of all their stamps."""
    origin = min(s.times[0] for s in (*context, *targets) if len(s))
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype

    def stamps(times: np.ndarray) -> np.ndarray:
        """Model times as the solver sees them (stamps equal in ``dtype`` are one stamp)."""
        return scaler.transform_times(times, origin).astype(np_dtype)

    union = np.unique(np.concatenate([stamps(s.times) for s in (*context, *targets)]))  # [U]
    n_b, n_u, n_c = len(context), len(union), len(scaler.mean)

    def on_union(series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
        values, mask = np.zeros((n_b, n_u, n_c)), np.zeros((n_b, n_u, n_c))
        for b, s in enumerate(series):
            idx = np.searchsorted(union, stamps(s.times))
            values[b, idx] = np.where(s.mask, scaler.transform_values(np.nan_to_num(s.values)), 0)
            mask[b, idx] = s.mask
        return values, mask

    values, mask = on_union(context)
    target_values, target_mask = on_union(targets)
    last = np.array(
        [np.searchsorted(union, stamps(s.times[-1:]))[0] for s in context], dtype=np.int64
    )

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype)

    return UnionBatch(
        times=torch.as_tensor(union),
        values=tensor(values),
        mask=tensor(mask),
        target_values=tensor(target_values),
        target_mask=tensor(target_mask),
        first=torch.zeros(n_b, dtype=torch.int64),
        last=torch.as_tensor(last),
    )


def loop_gaussian_log_likelihood(
    mean: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, noise_std: torch.Tensor
) -> torch.Tensor:
    """The 2019-style masked likelihood: a Python loop over (sample, series) and channel.

    ``mean`` [S, B, U, C], ``target`` and ``mask`` [B, U, C], ``noise_std`` [C] → [S, B],
    Σ over observed entries of log N(target; mean, noise_std²).
    """
    n_s, n_b, _, n_c = mean.shape
    flat = mean.reshape(n_s * n_b, *mean.shape[2:])  # [S·B, U, C]
    per_series = []
    for i in range(n_s * n_b):
        b = i % n_b
        per_channel = []
        for c in range(n_c):
            observed = mask[b, :, c] > 0  # [U]
            mu, x = flat[i, :, c][observed], target[b, :, c][observed]  # [n_obs]
            if mu.numel() == 0:
                per_channel.append(mean.new_zeros(()))
                continue
            z = (x - mu) / noise_std[c]
            log_density = -0.5 * z.square() - torch.log(noise_std[c]) - _HALF_LOG_2PI
            per_channel.append(log_density.sum())
        per_series.append(torch.stack(per_channel).sum())
    return torch.stack(per_series).reshape(n_s, n_b)  # [S, B]


class UnionGridPath:
    """Trains and evaluates ``net`` the 2019 way (see the module docstring)."""

    def __init__(self, net: LatentODENet) -> None:
        self.net = net
        self.encoder = UnionGridEncoder(net.encoder)

    def latent_at_union(self, batch: UnionBatch, z0: torch.Tensor) -> torch.Tensor:
        """z0 [S, B, L] at union time 0 → z [S, B, U, L], solved at every union time."""
        path = solve(self.net.dynamics, z0, batch.times, self.net.solver)  # [U, S, B, L]
        return path.movedim(0, -2)  # [S, B, U, L]

    def training_loss(self, batch: UnionBatch, kl_weight: float = 1.0) -> torch.Tensor:
        """Negative importance-weighted bound per observed target value (as latentode's)."""
        net = self.net
        mean, std = self.encoder(batch.encoder_input())  # [B, L]
        z0 = net.sample_z0(mean, std, net.cfg.n_samples, None)  # [S, B, L]
        pred = net.decoder(self.latent_at_union(batch, z0))  # [S, B, U, C]
        log_px = loop_gaussian_log_likelihood(
            pred, batch.target_values, batch.target_mask, net.noise_std
        )  # [S, B]
        if z0.shape[0] == 1:  # the same objective as LatentODENet.training_loss
            bound = elbo(log_px, kl_normal(mean, std), kl_weight)  # [B]
        else:
            bound = iwae_bound(log_px, z0, mean, std, kl_weight)  # [B]
        return -bound.sum() / batch.target_mask.sum().clamp_min(1.0)

    @torch.no_grad()
    def mse(self, batch: UnionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared error sum, observed count) of the posterior-mean prediction at the targets."""
        mean, _ = self.encoder(batch.encoder_input())
        pred = self.net.decoder(self.latent_at_union(batch, mean.unsqueeze(0)))[0]  # [B, U, C]
        n = batch.target_mask.sum()
        return masked_mse(pred, batch.target_values, batch.target_mask) * n, n


def component_seconds(path: UnionGridPath, batch: UnionBatch, device: torch.device) -> dict:
    """Forward and backward seconds of each part of the union path on one batch, timed apart.

    Encoder (backward from its posterior), decoder solve at every union time (backward
    from the decoded values, z0 a leaf), the loop likelihood and, for comparison,
    latentode's vectorised likelihood on the same [S, B, U, C] tensor. Minor page
    faults during each backward are counted too (fresh memory the kernel must zero).
    """
    from harness import timed

    from latentode.nn.likelihoods import gaussian_log_likelihood

    net = path.net
    out: dict[str, dict[str, float]] = {}

    def fwd_bwd(name: str, forward) -> None:
        net.zero_grad(set_to_none=True)
        result, f = timed(forward, device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        _, b = timed(lambda: result.sum().backward(), device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        out[name] = {"forward": f, "backward": b, "backward_page_faults": faults}

    fwd_bwd("encoder, every union time", lambda: sum(path.encoder(batch.encoder_input())))
    z0 = torch.randn(net.cfg.n_samples, len(batch), net.cfg.latent_dim, device=device)
    z0.requires_grad_(True)
    fwd_bwd(
        "decoder solve at every union time", lambda: net.decoder(path.latent_at_union(batch, z0))
    )
    shape = (net.cfg.n_samples, *batch.target_values.shape)
    pred = torch.randn(shape, device=device, requires_grad=True)  # [S, B, U, C]
    noise = net.noise_std.detach()
    fwd_bwd(
        "likelihood, Python loop",
        lambda: loop_gaussian_log_likelihood(pred, batch.target_values, batch.target_mask, noise),
    )
    fwd_bwd(
        "likelihood, vectorised (latentode)",
        lambda: gaussian_log_likelihood(pred, batch.target_values, batch.target_mask, noise),
    )
    return out
