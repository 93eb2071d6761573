"""Likelihoods, KL and bounds: one masked, vectorised expression each.

Shapes: S samples of z0, B series, T times, C channels. A masked entry (mask 0) is
never read: residuals are replaced with 0 *before* any arithmetic that could turn
garbage into NaN, so NaN or huge values in padded or unobserved slots change
neither the value nor any gradient.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = [
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "iwae_bound",
    "kl_normal",
    "masked_mse",
    "poisson_log_likelihood",
]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_likelihood(
    mean: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    noise_std: float | torch.Tensor,
) -> torch.Tensor:
    """Σ over observed entries of log N(target; mean, noise_std²).

    Args:
        mean: [S, B, T, C] decoded means.
        target: [B, T, C] observed values (anything where unobserved).
        mask: [B, T, C] 1 where observed, 0 elsewhere.
        noise_std: observation noise std, a float or a tensor [C] (> 0).

    Returns:
        [S, B] log-likelihood of each series under each sample (a sum, not a mean).
    """
    observed = mask > 0  # [B, T, C]
    noise_std = torch.as_tensor(noise_std, dtype=mean.dtype, device=mean.device)
    residual = torch.where(observed, target - mean, 0.0) / noise_std  # [S, B, T, C]
    log_norm = torch.log(noise_std) + _HALF_LOG_2PI  # [] or [C]
    log_density = torch.where(observed, -0.5 * residual.square() - log_norm, 0.0)  # [S, B, T, C]
    return log_density.sum(dim=(-2, -1))  # [S, B]


def poisson_log_likelihood(
    log_lambda: torch.Tensor, mask: torch.Tensor, integral: torch.Tensor
) -> torch.Tensor:
    """Poisson-process log-likelihood Σ_i,c mask·log λ_c(t_i) − Σ_c Λ_c.

    Args:
        log_lambda: [S, B, T, C] log intensity at each time.
        mask: [B, T, C] 1 where channel c was observed at time i (an event).
        integral: [S, B, C] Λ_c = ∫ λ_c dt over each series' window.

    Returns:
        [S, B].
    """
    observed = mask > 0  # [B, T, C]
    events = torch.where(observed, log_lambda, 0.0).sum(dim=(-2, -1))  # [S, B]
    return events - integral.sum(dim=-1)  # [S, B]


def kl_normal(
    mean_q: torch.Tensor,
    std_q: torch.Tensor,
    mean_p: float | torch.Tensor = 0.0,
    std_p: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """KL(N(mean_q, std_q²) ‖ N(mean_p, std_p²)) of diagonal Gaussians, summed over the last dim.

    [..., L] → [...]. Closed form: log(σp/σq) + (σq² + (μq − μp)²) / (2σp²) − 1/2.
    """
    std_p = torch.as_tensor(std_p, dtype=std_q.dtype, device=std_q.device)
    var_ratio = (std_q / std_p).square()  # [..., L]
    mean_term = ((mean_q - mean_p) / std_p).square()  # [..., L]
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(dim=-1)  # [...]


def iwae_bound(log_px: torch.Tensor, kl: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
    """Importance-weighted bound, Rubanova et al.'s form: logsumexp_S(log p(x|z_s) − w·KL) − log S.

    The KL is the closed-form KL of q(z0|x) to the prior (not a per-sample log ratio),
    as in the paper's code; with S = 1 this is exactly the ELBO with KL weight ``w``
    (``w`` < 1 during KL annealing).

    Args:
        log_px: [S, B] reconstruction log-likelihood per sample.
        kl: [B] (or [S, B]) KL per series.
        kl_weight: w.

    Returns:
        [B] the bound per series (maximise it; the loss is its negative mean).
    """
    n_samples = log_px.shape[0]
    weighted = log_px - kl_weight * kl  # [S, B]
    return torch.logsumexp(weighted, dim=0) - math.log(n_samples)  # [B]


def bernoulli_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label | logit) of binary labels; unknown labels (NaN) contribute 0 and no gradient.

    Args:
        logits: [..., B] classifier logits (e.g. [S, B]).
        labels: [B] 0/1 labels, NaN where unknown.

    Returns:
        [..., B].
    """
    known = ~torch.isnan(labels)  # [B]
    safe = torch.where(known, labels, 0.0).to(logits.dtype)  # [B]
    log_lik = -F.binary_cross_entropy_with_logits(
        logits, safe.expand_as(logits), reduction="none"
    )  # [..., B]
    return torch.where(known, log_lik, 0.0)  # [..., B]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over observed entries (a metric, not a likelihood).

    ``pred`` [..., B, T, C] (leading sample dims allowed), ``target`` and ``mask``
    [B, T, C]. Returns a scalar; 0 when nothing is observed.
    """
    observed = (mask > 0).expand_as(pred)  # [..., B, T, C]
    squared = torch.where(observed, target - pred, 0.0).square()  # [..., B, T, C]
    return squared.sum() / observed.sum().clamp(min=1)
