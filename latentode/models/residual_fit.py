"""Fit the residual process of a trained latent ODE on held-out (context, series) pairs.

Empirical Bayes after training: for each pair, the posterior mean path given the
context is compared with every observed value of the whole series, and the residual
process's kernel and parameters per channel are those under which the residuals the
context left out are most likely given the context's own residuals
(:func:`~latentode.nn.residual_process.fit_residual_process` with ``given``): the
predictive likelihood of what prediction does, kriging from the context. The contexts
come from the training task (random subsets and cuts), so the residuals are those the
model leaves where it is used: around and beyond what it saw.

The context's residuals are smaller than the rest (the path was inferred from them), so
a joint likelihood of all points would read that contrast as a short correlation time;
measured on real sets, that made kriging forget the context too fast.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from latentode.data.batching import Batch
from latentode.errors import LatentODEError
from latentode.nn.residual_mle import fit_residual_process
from latentode.nn.residual_process import ResidualProcess


@torch.no_grad()
def fit_residual(
    net: nn.Module,
    batches: Iterable[Batch],
    n_samples: int = 20,
    generator: torch.Generator | None = None,
    level_zero: torch.Tensor | None = None,
) -> ResidualProcess:
    """The residual process of ``net`` from batches of (context, whole series) pairs.

    Args:
        net: a trained network with ``sample(batch, n_samples, generator)``.
        batches: batches whose targets are the whole series (scaled units).
        n_samples: z0 samples averaged into each path.
        generator: seeds the samples.
        level_zero: [C] the scaled value of an original 0 for channels whose level may
            scale their residuals (NaN for the others), or None: see
            :func:`~latentode.nn.residual_mle.fit_residual_process`.

    Returns:
        The fitted :class:`~latentode.nn.residual_process.ResidualProcess`.

    Raises:
        LatentODEError: when the batches hold no observed value.
    """
    parts = []
    for batch in batches:
        path = net.sample(batch, n_samples, generator=generator)["mean"].mean(0)  # [B, T', C]
        given = in_context(batch).unsqueeze(-1) & (batch.target_mask > 0)  # [B, T', C]
        residuals = batch.target_values - path
        parts.append((batch.target_times, residuals, batch.target_mask, given, path))
    if not parts or all(p[2].sum() == 0 for p in parts):
        raise LatentODEError("no observed value to fit the residual process on.")
    width = max(p[0].shape[1] for p in parts)

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

    times = torch.cat([pad(p[0], True) for p in parts])
    residuals, mask, given, path = (
        torch.cat([pad(p[k], False) for p in parts]) for k in (1, 2, 3, 4)
    )
    return fit_residual_process(
        times, residuals, mask, given=given, path=path, level_zero=level_zero
    )


def in_context(batch: Batch) -> torch.Tensor:
    """[B, T'] True where a target time is one of its series' real context times (the
    targets are the whole series, the context a subset of its time points)."""
    device = batch.times.device
    real = torch.arange(batch.times.shape[1], device=device) < batch.lengths.to(device)[:, None]
    same = batch.target_times.unsqueeze(-1) == batch.times.unsqueeze(-2)  # [B, T', T]
    return (same & real.unsqueeze(1)).any(-1)
