"""The residual process: deviations from the latent path that persist in time.

The latent ODE says ``x_c(t) = decoder(z(t))_c + e_c(t)``. With i.i.d. noise ``e``, a
prediction between two observations ignores how far both sat from the path, which is
exactly what per-series linear interpolation uses. Here ``e_c`` is a stationary
Gaussian process plus white observation noise, independent per channel and series::

    Cov(e_c(t), e_c(t')) = v_c · ρ_c(|t - t'| / ℓ_c) + n_c · [same observation]

with ρ(d) = exp(-d) (Ornstein-Uhlenbeck: rough, Markov) or (1 + √3 d) exp(-√3 d)
(Matérn-3/2: once differentiable, for smooth curves), chosen per channel by marginal
likelihood (:func:`fit_residual_process`). Conditioning on the residuals ``r = x - path``
at the context's observed points gives, at a query time ``t`` (kriging)::

    mean(t) = k_t^T (K + n I)^{-1} r,      var(t) = v - k_t^T (K + n I)^{-1} k_t

with ``K_ij = v ρ(|t_i - t_j| / ℓ)`` over the context points and ``k_t,i = v ρ(|t - t_i| / ℓ)``.
Far from the context, ``mean → 0`` (back to the latent path) and ``var → v``. For an OU
residual with ``ℓ`` much longer than the gaps, the bridge between two points is a
Brownian bridge: it interpolates their residuals linearly.

Shapes: B series, T context times, Q query times, C channels, S path samples.
Times are model times, values scaled (the data layer's units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "KERNELS",
    "ResidualProcess",
    "condition_residual",
    "fit_residual_process",
    "residual_log_marginal",
]

_LOG_2PI = math.log(2 * math.pi)
#: (series x channel) rows per Cholesky chunk scale as this / T²: bounds peak memory
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class ResidualProcess:
    """Per-channel residual-process parameters (scaled value units, model time units).

    Attributes:
        kernel: per channel, ``"ou"`` or ``"matern32"`` (see :data:`KERNELS`).
        variance: [C] stationary variance ``v`` of the correlated part.
        lengthscale: [C] correlation time ``ℓ``.
        noise: [C] white observation-noise variance ``n``.
    """

    kernel: tuple[str, ...]
    variance: tuple[float, ...]
    lengthscale: tuple[float, ...]
    noise: tuple[float, ...]

    def __post_init__(self):
        unknown = sorted(set(self.kernel) - set(KERNELS))
        if unknown:
            raise ValueError(f"unknown residual kernel(s) {unknown}; known: {KERNELS}.")
        sizes = {len(self.kernel), len(self.variance), len(self.lengthscale), len(self.noise)}
        if len(sizes) != 1:
            raise ValueError("kernel, variance, lengthscale and noise need one entry per channel.")
        values = (*self.variance, *self.lengthscale, *self.noise)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError("residual variances, lengthscales and noise must be positive.")

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(v, ℓ, n, smooth) as [C] tensors on ``like``'s device; ``v, ℓ, n`` in its dtype."""

        def t(x):
            return torch.tensor(x, dtype=like.dtype, device=like.device)

        smooth = torch.tensor([k == "matern32" for k in self.kernel], device=like.device)
        return t(self.variance), t(self.lengthscale), t(self.noise), smooth

    def to_dict(self) -> dict:
        return {
            "kernel": list(self.kernel),
            "variance": list(self.variance),
            "lengthscale": list(self.lengthscale),
            "noise": list(self.noise),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ResidualProcess:
        return cls(
            tuple(map(str, d["kernel"])),
            tuple(map(float, d["variance"])),
            tuple(map(float, d["lengthscale"])),
            tuple(map(float, d["noise"])),
        )


#: stationary kernels of the residual, as functions of d = |t - t'| / ℓ
KERNELS = ("ou", "matern32")


def _correlation(d: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """exp(-d) (OU) or (1 + √3 d) exp(-√3 d) (Matérn-3/2) where ``smooth`` [C] is True.

    d: [B, C, T1, T2] scaled gaps.
    """
    s3 = math.sqrt(3.0) * d
    matern = (1.0 + s3) * torch.exp(-s3)
    return torch.where(smooth.view(1, -1, 1, 1), matern, torch.exp(-d))


def _kernel(t1: torch.Tensor, t2: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Residual covariance per channel: t1 [B, T1], t2 [B, T2] → [B, C, T1, T2]."""
    variance, lengthscale, _, smooth = params
    gap = (t1.unsqueeze(-1) - t2.unsqueeze(-2)).abs().unsqueeze(1)  # [B, 1, T1, T2]
    d = gap / lengthscale.view(1, -1, 1, 1)
    return variance.view(1, -1, 1, 1) * _correlation(d, smooth)


def _observed(residuals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Residuals with unobserved slots set to 0 before any arithmetic (NaN there is fine)."""
    return torch.where(mask > 0, residuals, torch.zeros((), dtype=residuals.dtype))


def _context_cholesky(
    times: torch.Tensor, mask: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factor of (K + n I) over observed context points, [B, C, T, T], and the
    observed mask [B, C, T]. Unobserved slots get an identity row and column, so they
    neither carry information nor change the determinant."""
    noise = params[2]
    obs = mask.transpose(1, 2)  # [B, C, T]
    pair = obs.unsqueeze(-1) * obs.unsqueeze(-2)  # [B, C, T, T]
    cov = _kernel(times, times, params) * pair
    diag = obs * noise.view(1, -1, 1) + (1.0 - obs)
    cov = cov + torch.diag_embed(diag)
    return torch.linalg.cholesky(cov), obs


def residual_log_marginal(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    params: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """log N(r; 0, K + n I) per series and channel, over the observed points only.

    Args:
        times: [B, T] model times.
        residuals: [B, T, C] observed value minus path (anything where unobserved).
        mask: [B, T, C] 1.0 where observed.
        params: (v, ℓ, n, smooth) [C] tensors (``ResidualProcess.tensors``; v, ℓ, n
            may require grad).

    Returns:
        [B, C] log densities (0 for a channel with no observation).
    """
    chol, obs = _context_cholesky(times, mask, params)
    r = _observed(residuals, mask).transpose(1, 2).unsqueeze(-1)  # [B, C, T, 1]
    white = torch.linalg.solve_triangular(chol, r, upper=False).squeeze(-1)  # [B, C, T]
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [B, C]
    n_obs = obs.sum(-1)
    return -0.5 * ((white**2).sum(-1) + log_det + n_obs * _LOG_2PI)


def condition_residual(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    query_times: torch.Tensor,
    params: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The OU residual at ``query_times`` given the context residuals (kriging).

    Args:
        times: [B, T] context model times.
        residuals: [S, B, T, C] context residuals per path sample (unobserved: anything).
        mask: [B, T, C] 1.0 where observed.
        query_times: [B, Q] model times to predict at.
        params: (v, ℓ, n, smooth) [C] tensors (``ResidualProcess.tensors``).

    Returns:
        mean [S, B, Q, C] (the residual's conditional mean per sample) and variance
        [B, Q, C] (the OU part's conditional variance, without the white noise ``n``).
    """
    dtype = residuals.dtype  # solved in float64: tiny noise variances make K + n I stiff
    times, residuals, mask, query_times = (
        x.double() for x in (times, residuals, mask, query_times)
    )
    params = (*(p.double() for p in params[:3]), params[3])
    n_b, n_t = times.shape
    per_series = max(1, residuals.shape[-1] * max(n_t, query_times.shape[1]) * n_t)
    step = max(1, _CHUNK_ELEMENTS // per_series)
    means, variances = [], []
    for lo in range(0, n_b, step):
        sl = slice(lo, lo + step)
        chol, obs = _context_cholesky(times[sl], mask[sl], params)  # [b, C, T, T]
        cross = _kernel(times[sl], query_times[sl], params)  # [b, C, T, Q]
        cross = cross * obs.unsqueeze(-1)
        half = torch.linalg.solve_triangular(chol, cross, upper=False)  # L^-1 k: [b, C, T, Q]
        r = _observed(residuals[:, sl], mask[sl]).permute(1, 3, 2, 0)  # [b, C, T, S]
        white = torch.linalg.solve_triangular(chol, r, upper=False)  # [b, C, T, S]
        mean = half.transpose(-1, -2) @ white  # [b, C, Q, S]
        means.append(mean.permute(3, 0, 2, 1))  # [S, b, Q, C]
        var = params[0].view(1, -1, 1) - (half**2).sum(-2)  # [b, C, Q]
        variances.append(var.clamp_min(0.0).transpose(1, 2))  # [b, Q, C]
    return torch.cat(means, dim=1).to(dtype), torch.cat(variances, dim=0).to(dtype)


def _fit_kernel(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    smooth: torch.Tensor,
    init_lengthscale: float,
    max_iter: int,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Maximum marginal likelihood (v, ℓ, n) per channel for one kernel choice.

    Returns the parameters and the log marginal likelihood per channel [C].
    """
    n_c = residuals.shape[-1]
    obs = mask.sum((0, 1))  # [C]
    mean_sq = (_observed(residuals, mask) ** 2).sum((0, 1)) / obs.clamp_min(1.0)
    start = torch.log(0.5 * mean_sq.clamp_min(1e-6))
    free = torch.stack(
        [start, torch.full((n_c,), math.log(init_lengthscale), dtype=start.dtype), start]
    ).requires_grad_(True)  # [3, C]: log v, log ℓ, log n
    low = torch.tensor([-18.0, math.log(1e-4), -18.0], dtype=start.dtype).view(3, 1)
    high = torch.tensor([10.0, math.log(1e4), 10.0], dtype=start.dtype).view(3, 1)

    def params() -> tuple[torch.Tensor, ...]:
        v, ell, n = torch.maximum(torch.minimum(free, high), low).exp()
        return v, ell, n, smooth

    opt = torch.optim.LBFGS([free], max_iter=max_iter, line_search_fn="strong_wolfe")
    total = obs.sum().clamp_min(1.0)

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = -residual_log_marginal(times, residuals, mask, params()).sum() / total
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        fitted = tuple(p.detach() for p in params())
        return fitted, residual_log_marginal(times, residuals, mask, fitted).sum(0)


def fit_residual_process(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    init_lengthscale: float = 0.1,
    max_iter: int = 100,
) -> ResidualProcess:
    """Per channel, the kernel of :data:`KERNELS` and its (v, ℓ, n) with the highest
    marginal likelihood of the residual series (empirical Bayes).

    Args:
        times: [B, T] model times; residuals [B, T, C]; mask [B, T, C] (1.0 = observed).
        init_lengthscale: starting ℓ (model time).
        max_iter: L-BFGS iterations per kernel.

    Returns:
        The fitted :class:`ResidualProcess`. A channel with fewer than 3 observed
        residuals gets an OU kernel with half its mean square as ``v`` and half as
        ``n`` (nothing to fit).
    """
    times, residuals, mask = (x.detach().double() for x in (times, residuals, mask))
    n_c = residuals.shape[-1]
    best_ll = torch.full((n_c,), -math.inf, dtype=torch.float64)
    best: list[tuple] = [None] * n_c
    for name in KERNELS:
        smooth = torch.full((n_c,), name == "matern32")
        fitted, ll = _fit_kernel(times, residuals, mask, smooth, init_lengthscale, max_iter)
        for c in range(n_c):
            if ll[c] > best_ll[c]:
                best_ll[c] = ll[c]
                best[c] = (name, *(float(p[c]) for p in fitted[:3]))
    obs = mask.sum((0, 1))
    for c in range(n_c):
        if obs[c] < 3 or best[c] is None:
            half = 0.5 * max(float((_observed(residuals, mask)[..., c] ** 2).sum()), 1e-6)
            half /= max(float(obs[c]), 1.0)
            best[c] = ("ou", half, init_lengthscale, half)
    kernel, variance, lengthscale, noise = zip(*best)
    return ResidualProcess(kernel, variance, lengthscale, noise)
