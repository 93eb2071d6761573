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
    "elbo",
    "gaussian_log_likelihood",
    "iwae_bound",
    "kl_normal",
    "masked_mse",
    "normal_log_density",
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
        noise_std: observation noise std (> 0): a float, a tensor [C], or a tensor
            that broadcasts to ``mean``'s shape (e.g. [1, B, T, C]).

    Only the observed entries are gathered and computed (a few percent of them in
    clinical data), and summed per series; the gradient at every other entry is 0.

    Returns:
        [S, B] log-likelihood of each series under each sample (a sum, not a mean).
    """
    b_idx, t_idx, c_idx = (mask > 0).nonzero(as_tuple=True)  # [N] each: the observed entries
    noise_std = torch.as_tensor(noise_std, dtype=mean.dtype, device=mean.device)
    std = torch.broadcast_to(noise_std, mean.shape)[..., b_idx, t_idx, c_idx]  # [S, N]
    standard = (target[b_idx, t_idx, c_idx] - mean[..., b_idx, t_idx, c_idx]) / std  # [S, N]
    log_density = -0.5 * standard.square() - torch.log(std) - _HALF_LOG_2PI  # [S, N]
    out = mean.new_zeros(mean.shape[0], mean.shape[1])  # [S, B]
    return out.index_add(1, b_idx, log_density)


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


def normal_log_density(
    x: torch.Tensor, mean: float | torch.Tensor, std: float | torch.Tensor
) -> torch.Tensor:
    """log N(x; mean, diag(std²)) summed over the last dim: [..., L] → [...].

    ``mean`` and ``std`` broadcast against ``x`` (e.g. [B, L] against samples [K, B, L]).
    """
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    standard = (x - mean) / std  # [..., L]
    return (-0.5 * standard.square() - torch.log(std) - _HALF_LOG_2PI).sum(dim=-1)  # [...]


def elbo(log_px: torch.Tensor, kl: torch.Tensor, kl_weight: float = 1.0) -> torch.Tensor:
    """Evidence lower bound with the closed-form KL: mean_k log p(x|z_k) − w·KL(q ‖ p).

    An unbiased estimate of E_q[log p(x|z)] − w·KL; at ``w`` = 1 its expectation is a
    lower bound on log p(x), the same as the one-sample :func:`iwae_bound`'s. The KL
    term and its gradient carry no Monte Carlo noise here (the value's variance is not
    always lower, though: the one-sample log ratio vanishes as q nears the posterior).

    Args:
        log_px: [K, B] reconstruction log-likelihood per sample z_k ~ q(z0|x).
        kl: [B] KL(q(z0|x) ‖ p(z0)) per series (:func:`kl_normal`).
        kl_weight: w (< 1 during KL warm-up).

    Returns:
        [B] the bound per series (maximise it).
    """
    return log_px.mean(dim=0) - kl_weight * kl  # [B]


def iwae_bound(
    log_px: torch.Tensor,
    z0: torch.Tensor,
    mean_q: torch.Tensor,
    std_q: torch.Tensor,
    kl_weight: float = 1.0,
) -> torch.Tensor:
    """Importance-weighted bound (Burda et al. 2016) with a standard normal prior on z0.

    log (1/K) Σ_k exp(log p(x|z_k) + w·(log p(z_k) − log q(z_k|x))), with z_k the K
    samples of q(z0|x) = N(mean_q, diag(std_q²)) and p(z0) = N(0, I). At ``w`` = 1 it
    is the IWAE bound: its expectation is ≤ log p(x) and rises to log p(x) as K grows
    (K = 1: the ELBO, see :func:`elbo`). ``w`` < 1 (KL warm-up) scales only the prior
    to posterior log ratio. Gradients flow through ``z0`` (reparameterised samples),
    ``mean_q`` and ``std_q``.

    Args:
        log_px: [K, B] log p(x|z_k) per sample and series.
        z0: [K, B, L] the samples z_k, drawn from q (the same ones ``log_px`` used).
        mean_q: [B, L] posterior mean.
        std_q: [B, L] posterior std (> 0).
        kl_weight: w.

    Returns:
        [B] the bound per series (maximise it; the loss is its negative).
    """
    n_samples = log_px.shape[0]
    log_prior = normal_log_density(z0, 0.0, 1.0)  # [K, B]
    log_q = normal_log_density(z0, mean_q, std_q)  # [K, B]
    log_weights = log_px + kl_weight * (log_prior - log_q)  # [K, B]
    return torch.logsumexp(log_weights, dim=0) - math.log(n_samples)  # [B]


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
