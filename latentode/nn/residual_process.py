"""The residual process: deviations from the latent path that persist in time.

The latent ODE says ``x_c(t) = decoder(z(t))_c + e_c(t)``. With i.i.d. noise ``e``, a
prediction between two observations ignores how far both sat from the path, which is
exactly what per-series linear interpolation uses. Here ``e_c`` is a stationary
Gaussian process plus white observation noise, independent per channel and series::

    Cov(e_c(t), e_c(t')) = v_c · ρ_c(|t - t'| / ℓ_c) + n_c · [same observation]

with ρ(d) = exp(-d) (Ornstein-Uhlenbeck: rough, Markov) or (1 + √3 d) exp(-√3 d)
(Matérn-3/2: once differentiable, for smooth curves), chosen per channel by the
likelihood of held-out residuals (:mod:`latentode.nn.residual_mle`). Prediction conditions it
on the residuals at the context's observed points (kriging:
:mod:`latentode.nn.residual_kriging`).

A channel whose values are never negative (a concentration, a weight, a count) may
have deviations that grow with its level. There the process runs on the residual
divided by a level scale, ``e_c(t) = g_c(t) u_c(t)`` with ``u_c`` the process above and
``g_c = 1 + b_c · max(path_c(t) - z_c, 0)``: ``z_c`` is the scaled value of an original 0
and ``b_c >= 0`` the slope (0: the same deviations at every level; large: deviations in
proportion to the level, the proportional error of pharmacokinetics). Conditioning
divides the context's residuals by their ``g`` and multiplies the kriged mean and std
by ``g`` at the query (:meth:`ResidualProcess.level_scale`).

This module holds the process (its parameters, kernels and likelihood); the kriging
itself, with its mixture for outlying series, is :mod:`latentode.nn.residual_kriging`,
and the fit of the parameters :mod:`latentode.nn.residual_mle`.

Shapes: B series, T context times, Q query times, C channels, S path samples.
Times are model times, values scaled (the data layer's units).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "KERNELS",
    "ObservedRows",
    "ResidualProcess",
    "cross_covariance",
    "residual_log_marginal",
    "row_cholesky",
    "scored_terms",
    "time_gaps",
    "whitened_terms",
]

LOG_2PI = math.log(2 * math.pi)
#: (series, channel) rows per Cholesky chunk scale as this / K²: bounds peak memory
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class ResidualProcess:
    """Per-channel residual-process parameters (scaled value units, model time units).

    Attributes:
        kernel: per channel, ``"ou"`` or ``"matern32"`` (see :data:`KERNELS`).
        variance: [C] stationary variance ``v`` of the correlated part.
        lengthscale: [C] correlation time ``ℓ``.
        noise: [C] white observation-noise variance ``n``.
        level_slope: [C] slope ``b >= 0`` of the level scale (0: none); None: all 0.
        level_zero: [C] the scaled value ``z`` of an original 0 (the level's origin).
    """

    kernel: tuple[str, ...]
    variance: tuple[float, ...]
    lengthscale: tuple[float, ...]
    noise: tuple[float, ...]
    level_slope: tuple[float, ...] | None = None
    level_zero: tuple[float, ...] | None = None

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
        if (self.level_slope is None) != (self.level_zero is None):
            raise ValueError("level_slope and level_zero come together (or both None).")
        if self.level_slope is not None:
            if {len(self.level_slope), len(self.level_zero)} != sizes:
                raise ValueError("level_slope and level_zero need one entry per channel.")
            if not all(math.isfinite(b) and b >= 0 for b in self.level_slope):
                raise ValueError("residual level slopes must be finite and >= 0.")
            if not all(math.isfinite(z) for z in self.level_zero):
                raise ValueError("residual level origins must be finite.")

    def level_scale(self, path: torch.Tensor) -> torch.Tensor:
        """``g = 1 + b · max(path - z, 0)`` [..., C] for ``path`` [..., C] (scaled units):
        the factor on the residual's std at each point; all 1 without level slopes."""
        if self.level_slope is None:
            return torch.ones_like(path)
        b = torch.tensor(self.level_slope, dtype=path.dtype, device=path.device)
        z = torch.tensor(self.level_zero, dtype=path.dtype, device=path.device)
        return 1.0 + b * (path - z).clamp_min(0.0)

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(v, ℓ, n, smooth) as [C] tensors on ``like``'s device; ``v, ℓ, n`` in its dtype."""

        def t(x):
            return torch.tensor(x, dtype=like.dtype, device=like.device)

        smooth = torch.tensor([k == "matern32" for k in self.kernel], device=like.device)
        return t(self.variance), t(self.lengthscale), t(self.noise), smooth

    def to_dict(self) -> dict:
        out = {
            "kernel": list(self.kernel),
            "variance": list(self.variance),
            "lengthscale": list(self.lengthscale),
            "noise": list(self.noise),
        }
        if self.level_slope is not None:
            out["level_slope"] = list(self.level_slope)
            out["level_zero"] = list(self.level_zero)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ResidualProcess:
        """The inverse of :meth:`to_dict` (files written before level scales have none)."""
        slope, zero = d.get("level_slope"), d.get("level_zero")
        return cls(
            tuple(map(str, d["kernel"])),
            tuple(map(float, d["variance"])),
            tuple(map(float, d["lengthscale"])),
            tuple(map(float, d["noise"])),
            None if slope is None else tuple(map(float, slope)),
            None if zero is None else tuple(map(float, zero)),
        )


#: stationary kernels of the residual, as functions of d = |t - t'| / ℓ
KERNELS = ("ou", "matern32")


def _correlation(d: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """exp(-d) (OU) or (1 + √3 d) exp(-√3 d) (Matérn-3/2) where ``smooth`` is True.

    d: [R, K1, K2] scaled gaps; smooth: [R] per row. Both are ``exp(-x) (1 + s x)`` with
    ``x = d`` and ``s = 0`` (OU) or ``x = √3 d`` and ``s = 1`` (Matérn): one exponential
    for a mix of rows.
    """
    if bool(smooth.all()):
        x = math.sqrt(3.0) * d
        return (1.0 + x) * torch.exp(-x)
    if not bool(smooth.any()):
        return torch.exp(-d)
    s = smooth.to(d.dtype).view(-1, 1, 1)
    x = d * (1.0 + (math.sqrt(3.0) - 1.0) * s)
    return torch.exp(-x) * (1.0 + s * x)


@dataclass(frozen=True)
class ObservedRows:
    """Each (series, channel) with an observed point as one row of its observed points,
    padded to K: only observed values enter the kernel algebra, so a sparse channel of a
    long series costs its own observations, not the series' length.

    Attributes:
        series, channel: [R] the row's series and channel index.
        position: [R, K] index of each point in the series' time axis (padding: any).
        valid: [R, K] True for a real point.
        scored: [R, K] True for a real point whose density counts in the likelihood: all
            of them, or (rows built with ``given``) those after the conditioning points.
    """

    series: torch.Tensor
    channel: torch.Tensor
    position: torch.Tensor
    valid: torch.Tensor
    scored: torch.Tensor

    @classmethod
    def of(
        cls, mask: torch.Tensor, max_points: int | None = None, given: torch.Tensor | None = None
    ) -> ObservedRows:
        """Rows of mask [B, T, C] (1.0 = observed), keeping at most ``max_points`` per row.

        Points are in time order; with ``given`` [B, T, C] (True: a conditioning point),
        each row's given points come first and only the others are ``scored``.
        """
        obs = mask.permute(0, 2, 1) > 0  # [B, C, T]
        counts = obs.sum(-1)  # [B, C]
        series, channel = torch.nonzero(counts > 0, as_tuple=True)
        width = int(counts.max()) if counts.numel() else 0
        if max_points is not None:
            width = min(width, max_points)
        # observed points first (given ones before the rest), in time order: a stable sort
        rank = (~obs[series, channel]).to(torch.int8) * 2
        if given is not None:
            first = given.permute(0, 2, 1)[series, channel] & obs[series, channel]
            rank = rank + (obs[series, channel] & ~first).to(torch.int8)
        order = torch.argsort(rank, dim=-1, stable=True)
        position = order[:, :width]
        valid = torch.arange(width, device=mask.device) < counts[series, channel].unsqueeze(-1)
        scored = valid
        if given is not None:
            scored = valid & (rank.gather(-1, position) == 1)
        return cls(series, channel, position, valid, scored)

    def __len__(self) -> int:
        return len(self.series)

    def take(self, index: torch.Tensor | slice) -> ObservedRows:
        return ObservedRows(
            self.series[index],
            self.channel[index],
            self.position[index],
            self.valid[index],
            self.scored[index],
        )

    def buckets(self, other: int) -> Iterator[ObservedRows]:
        """The rows in chunks of similar length, each padded only to its own longest row
        and holding at most about ``_CHUNK_ELEMENTS / (K · max(K, other))`` rows (so a
        dense channel does not make every sparse one pay its length)."""
        counts = self.valid.sum(-1)
        order = torch.argsort(counts, stable=True)
        ascending = counts[order]
        lo = 0
        while lo < len(order):

            def budget(width: int) -> int:
                return max(1, _CHUNK_ELEMENTS // (width * max(width, other)))

            hi = min(lo + budget(max(1, int(ascending[lo]))), len(order))
            hi = min(lo + budget(max(1, int(ascending[hi - 1]))), hi)  # the chunk's longest
            width = max(1, int(ascending[hi - 1]))
            part = self.take(order[lo:hi])
            yield ObservedRows(
                part.series,
                part.channel,
                part.position[:, :width],
                part.valid[:, :width],
                part.scored[:, :width],
            )
            lo = hi

    def times(self, times: torch.Tensor) -> torch.Tensor:
        """[R, K] the rows' times from times [B, T]."""
        return times[self.series.unsqueeze(-1), self.position]

    def values(self, values: torch.Tensor) -> torch.Tensor:
        """[..., R, K] the rows' values from values [..., B, T, C]; 0 at padding."""
        picked = values[..., self.series.unsqueeze(-1), self.position, self.channel.unsqueeze(-1)]
        return torch.where(self.valid, picked, torch.zeros((), dtype=values.dtype))


def _row_kernel(
    rows: ObservedRows, gaps: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """The row's channel's covariance at |t - t'| = gaps [R, K1, K2] → [R, K1, K2]."""
    variance, lengthscale, _, smooth = params
    c = rows.channel
    if _tracks_gradients(params):
        return variance[c].view(-1, 1, 1) * _correlation(
            gaps / lengthscale[c].view(-1, 1, 1), smooth[c]
        )
    rate, v, s = _row_rates(rows, params, gaps.dtype)
    return _kernel_of_scaled_(gaps * rate.unsqueeze(-1), v, s)


def _tracks_gradients(params: tuple[torch.Tensor, ...]) -> bool:
    """Whether autograd records the kernel (v, ℓ or n require grad), which then has to be
    built out of place."""
    return torch.is_grad_enabled() and any(p.requires_grad for p in params[:3])


def _row_rates(
    rows: ObservedRows, params: tuple[torch.Tensor, ...], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the rate [R, 1] that turns a time gap into the kernel's ``x`` (1/ℓ for OU,
    √3/ℓ for Matérn-3/2), and the variance and Matérn flag as [R, 1, 1]."""
    variance, lengthscale, _, smooth = params
    c = rows.channel
    s = smooth[c].to(dtype)  # [R] 1 for Matérn-3/2 rows
    rate = ((1.0 + (math.sqrt(3.0) - 1.0) * s) / lengthscale[c]).unsqueeze(-1)  # [R, 1]
    return rate, variance[c].view(-1, 1, 1), s.view(-1, 1, 1)


def _kernel_of_scaled_(x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``v (1 + s x) exp(-x)`` from scaled gaps ``x`` [R, K1, K2], which it overwrites (one
    exponential and few passes over the large tensor; no autograd)."""
    if not bool(s.any()):  # v exp(-x)
        return x.neg_().exp_().mul_(v)
    poly = torch.addcmul(v, v * s, x)  # v (1 + s x)
    return x.neg_().exp_().mul_(poly)


@torch.no_grad()
def cross_covariance(
    rows: ObservedRows, t1: torch.Tensor, t2: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """The rows' covariance between times t1 [R, K1] and t2 [R, K2] → [R, K1, K2]: the
    values of ``_row_kernel(rows, time_gaps(t1, t2), params)`` with the times scaled per
    row before the gaps, for the kriging's cross-covariances at prediction."""
    rate, v, s = _row_rates(rows, params, t1.dtype)
    x = ((t1 * rate).unsqueeze(-1) - (t2 * rate).unsqueeze(-2)).abs_()  # [R, K1, K2]
    return _kernel_of_scaled_(x, v, s)


def time_gaps(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """|t1 - t2| for t1 [R, K1], t2 [R, K2] → [R, K1, K2]."""
    return (t1.unsqueeze(-1) - t2.unsqueeze(-2)).abs()


def row_cholesky(
    rows: ObservedRows, gaps: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """Cholesky factor [R, K, K] of K + n I over each row's real points (``gaps`` [R, K, K]
    between them); padding gets an identity row and column, so it carries no
    information and no determinant."""
    valid = rows.valid.to(gaps.dtype)
    diag = valid * params[2][rows.channel].unsqueeze(-1) + (1.0 - valid)  # [R, K]
    cov = _row_kernel(rows, gaps, params)  # a fresh tensor
    if not bool(rows.valid.all()):  # padding rows and columns to 0
        row, col = valid.unsqueeze(-1), valid.unsqueeze(-2)
        cov = cov * row * col if _tracks_gradients(params) else cov.mul_(row).mul_(col)
    cov.diagonal(dim1=-2, dim2=-1).add_(diag)  # autograd-safe: no node saved cov
    return torch.linalg.cholesky(cov)


def scored_terms(
    rows: ObservedRows, gaps: torch.Tensor, row_residuals: torch.Tensor, params
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row [R]: the squared whitened residuals ([R, M] for M residual series per row,
    row_residuals [R, K, M], which share one Cholesky factor), the log-determinant terms
    and the number of points, summed over the row's ``scored`` points (row_residuals
    [R, K], 0 at padding). Their sum is log p(scored | the points before them): see
    :func:`~latentode.nn.residual_mle.fit_residual_process`."""
    chol = row_cholesky(rows, gaps, params)
    stacked = row_residuals.dim() == 3
    rhs = row_residuals if stacked else row_residuals.unsqueeze(-1)
    white = torch.linalg.solve_triangular(chol, rhs, upper=False)  # [R, K, M]
    q, log_det, n = whitened_terms(chol, white, rows.scored)
    return (q if stacked else q.squeeze(-1)), log_det, n


def whitened_terms(
    chol: torch.Tensor, white: torch.Tensor, scored: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From the rows' Cholesky factor L [R, K, K] and whitened residuals ``L⁻¹r`` [R, K, M]:
    the squared whitened residuals [R, M], the log-determinant terms [R] and the number
    of points [R], summed over the ``scored`` [R, K] points."""
    weight = scored.to(white.dtype)
    q = (white**2 * weight.unsqueeze(-1)).sum(-2)  # [R, M]
    log_det = 2.0 * (torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)) * weight).sum(-1)
    return q, log_det, weight.sum(-1)


def _rows_log_marginal(
    rows: ObservedRows, gaps: torch.Tensor, row_residuals: torch.Tensor, params
) -> torch.Tensor:
    """log density of each row's ``scored`` points given the points before them [R]."""
    q, log_det, n = scored_terms(rows, gaps, row_residuals, params)
    return -0.5 * (q + log_det + n * LOG_2PI)


def residual_log_marginal(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    params: tuple[torch.Tensor, ...],
    given: torch.Tensor | None = None,
) -> torch.Tensor:
    """log N(r; 0, K + n I) per series and channel, over the observed points only; with
    ``given``, the predictive log p(r_other | r_given) = log p(r) - log p(r_given).

    Args:
        times: [B, T] model times.
        residuals: [B, T, C] observed value minus path (anything where unobserved).
        mask: [B, T, C] 1.0 where observed.
        params: (v, ℓ, n, smooth) [C] tensors (``ResidualProcess.tensors``; v, ℓ, n
            may require grad).
        given: [B, T, C] bool, True at the conditioning points, or None.

    Returns:
        [B, C] log densities (0 for a channel with no observation).
    """
    rows = ObservedRows.of(mask, given=given)
    row_times = rows.times(times)
    per_row = _rows_log_marginal(
        rows, time_gaps(row_times, row_times), rows.values(residuals), params
    )
    out = torch.zeros(mask.shape[0], mask.shape[2], dtype=per_row.dtype, device=mask.device)
    return out.index_put((rows.series, rows.channel), per_row)
