"""Fit the residual process of a trained latent ODE on held-out (context, series) pairs.

Empirical Bayes after training: for each pair, the posterior mean path given the
context is compared with every observed value of the whole series, and the residual
process's kernel and parameters per channel are those of highest marginal likelihood
of these residual series (:func:`~latentode.nn.residual_process.fit_residual_process`).
The contexts come from the training task (random subsets and cuts), so the residuals
are those the model leaves where it is used: around and beyond what it saw.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from latentode.data.batching import Batch
from latentode.errors import LatentODEError
from latentode.nn.residual_process import ResidualProcess, fit_residual_process


@torch.no_grad()
def fit_residual(
    net: nn.Module,
    batches: Iterable[Batch],
    n_samples: int = 20,
    generator: torch.Generator | None = None,
) -> ResidualProcess:
    """The residual process of ``net`` from batches of (context, whole series) pairs.

    Args:
        net: a trained network with ``sample(batch, n_samples, generator)``.
        batches: batches whose targets are the whole series (scaled units).
        n_samples: z0 samples averaged into each path.
        generator: seeds the samples.

    Returns:
        The fitted :class:`~latentode.nn.residual_process.ResidualProcess`.

    Raises:
        LatentODEError: when the batches hold no observed value.
    """
    parts = []
    for batch in batches:
        path = net.sample(batch, n_samples, generator=generator)["mean"].mean(0)  # [B, T', C]
        parts.append((batch.target_times, batch.target_values - path, batch.target_mask))
    if not parts or all(m.sum() == 0 for _, _, m in parts):
        raise LatentODEError("no observed value to fit the residual process on.")
    width = max(t.shape[1] for t, _, _ in parts)

    def pad(x: torch.Tensor, repeat_last: bool) -> torch.Tensor:
        extra = width - x.shape[1]
        if extra == 0:
            return x
        fill = (
            x[:, -1:].expand(-1, extra, *x.shape[2:])
            if repeat_last
            else x.new_zeros(x.shape[0], extra, *x.shape[2:])
        )
        return torch.cat([x, fill], dim=1)

    times = torch.cat([pad(t, True) for t, _, _ in parts])
    residuals = torch.cat([pad(r, False) for _, r, _ in parts])
    mask = torch.cat([pad(m, False) for _, _, m in parts])
    return fit_residual_process(times, residuals, mask)
