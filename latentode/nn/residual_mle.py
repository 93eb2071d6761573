"""Empirical-Bayes fit of the residual process's parameters to residual series.

Per channel: the kernel (:data:`~latentode.nn.residual_process.KERNELS`), its
correlation time ``ℓ``, variance ``v`` and white noise ``n``, and, for a channel whose
values are never negative, the slope ``b`` of the level scale (see
:mod:`latentode.nn.residual_process`), all by the likelihood of the residuals: a grid
over ``ℓ``, ``n / v`` and ``b`` with ``v`` profiled out in closed form, refined around
each channel's best point.

Shapes: B series, T times, C channels. Times are model times, values scaled.
"""

from __future__ import annotations

import math

import torch

from latentode.nn.residual_process import (
    KERNELS,
    LOG_2PI,
    ObservedRows,
    ResidualProcess,
    scored_terms,
    time_gaps,
)

__all__ = ["LEVEL_SLOPES", "REFINED_VERSIONS", "VARIANCE_CAP", "fit_residual_process"]

#: the profile-likelihood grid: correlation times ℓ (model time; the longest training
#: series spans 1) and noise-to-signal ratios n / v
_LENGTHSCALES = torch.logspace(-3, 2, 11, dtype=torch.float64)
_NOISE_RATIOS = torch.tensor([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0], dtype=torch.float64)
#: the largest stationary variance ``v`` allowed, in mean squares of the residuals
VARIANCE_CAP = 4.0
#: the second pass refines each channel's best grid point by these factors (ℓ, n / v)
_REFINE_LENGTHSCALE = torch.tensor([0.5, 0.7, 1.0, 1.4, 2.0], dtype=torch.float64)
_REFINE_RATIO = torch.tensor([0.3, 0.55, 1.0, 1.8, 3.3], dtype=torch.float64)


def _profile_log_marginal(
    rows: ObservedRows,
    gaps: torch.Tensor,
    row_residuals: torch.Tensor,
    n_channels: int,
    smooth: torch.Tensor,
    lengthscale: torch.Tensor,
    ratio: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel and residual series, the log likelihood of the rows' ``scored`` points
    given the points before them, maximised over the scale ``v`` with ℓ and ``n / v``
    fixed (the [C] tensors ``lengthscale`` and ``ratio``), and that ``v``: [C, M] each
    for row_residuals [R, K, M] (M versions of the residuals, one Cholesky factor).

    With the Cholesky factor L of K over a row's points in their row order, the whitened
    residual ``w = L⁻¹ r`` splits the density into sequential conditionals: point i
    given the points before it has mean-square term ``w_i²`` and log-determinant term
    ``2 log L_ii``. Summed over the scored points this is log p(scored | the rest before
    them) (all points scored: the marginal). With K = v (R + ρ I), R the correlation
    matrix: the terms are ``q / v`` and ``N log v + ...``, so the best ``v`` is Σq / N.
    """
    unit = (torch.ones_like(lengthscale), lengthscale, ratio, smooth)
    q, log_det, n_scored = scored_terms(rows, gaps, row_residuals, unit)  # [R, M], [R], [R]
    n_obs = _per_channel(rows, n_scored, n_channels).unsqueeze(-1)  # [C, 1]
    # the floor: a channel whose residuals are all zero
    scale = (_per_channel(rows, q, n_channels) / n_obs.clamp_min(1.0)).clamp_min(1e-12)
    log_det = _per_channel(rows, log_det, n_channels).unsqueeze(-1)
    ll = -0.5 * (n_obs * torch.log(scale) + n_obs + log_det + n_obs * LOG_2PI)
    return ll, scale


def _mean_square(rows: ObservedRows, row_residuals: torch.Tensor, n_channels: int) -> torch.Tensor:
    """[C] the mean square of each channel's observed residuals (row_residuals [R, K]; 0
    for a channel without), or [C, M] for M versions of them (row_residuals [R, K, M])."""
    valid = rows.valid.to(row_residuals.dtype)
    if row_residuals.dim() == 3:
        valid = valid.unsqueeze(-1)
    square = _per_channel(rows, (row_residuals**2 * valid).sum(1), n_channels)
    return square / _per_channel(rows, valid.sum(1), n_channels).clamp_min(1.0)


#: the refinement visits each channel's this many most likely versions of the residuals
#: (level slopes) from the grid, not all of them
REFINED_VERSIONS = 2


def _fit_kernel(
    rows: ObservedRows,
    gaps: torch.Tensor,
    row_residuals: torch.Tensor,
    smooth: torch.Tensor,
    ceiling: torch.Tensor,
    offset: torch.Tensor,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Maximum-likelihood (v, ℓ, n) per channel for one kernel choice and each of M
    versions of the residuals (row_residuals [R, K, M]), by a grid over (ℓ, n / v) with
    ``v`` profiled out; ``v`` at most ``ceiling`` [C, M]: :data:`VARIANCE_CAP` times the
    mean square of the residuals. The grid's kernel matrices and their Cholesky factors
    serve all M versions at once. Then each channel's :data:`REFINED_VERSIONS` best
    versions (by grid likelihood plus ``offset`` [C, M], the term the versions are
    compared on beyond this likelihood) are refined around their best grid points; the
    others keep their grid optimum, which loses to those by the grid's own measure.

    The cap: a predictive likelihood pins a smooth kernel's short-range behaviour
    (``v / ℓ³`` for Matérn-3/2) but hardly ``v`` itself, and on residuals of series the
    model was trained on it drifted to ``v`` 10⁴ times their mean square with ℓ beyond
    the series' spans: a process that extrapolates every residual's slope (indometh
    forecasts). For a stationary process around the path, ``v + n`` is the residuals'
    mean square, so the cap only removes that drift.

    Returns (v, ℓ, n) [C, M] each and the log likelihood [C, M].
    """
    n_channels, n_versions = ceiling.shape
    best_ll = torch.full((n_channels, n_versions), -math.inf, dtype=torch.float64)
    best = [torch.zeros(n_channels, n_versions, dtype=torch.float64) for _ in range(3)]
    channels = torch.arange(n_channels)

    def consider(ell: torch.Tensor, ratio: torch.Tensor, version: torch.Tensor | None) -> None:
        """Grid point (ℓ, n / v) [C] for every version (None) or, per channel c, for its
        version ``version[c]`` alone."""
        if version is None:
            residuals, cell = row_residuals, (slice(None), slice(None))
        else:
            pick = version[rows.channel].view(-1, 1, 1).expand(*row_residuals.shape[:2], 1)
            residuals, cell = row_residuals.gather(-1, pick), (channels, version)
        ll, scale = _profile_log_marginal(
            rows, gaps, residuals, n_channels, smooth, ell, ratio
        )  # [C, M] or [C, 1]
        if version is not None:
            ll, scale = ll.squeeze(-1), scale.squeeze(-1)
        better = (ll > best_ll[cell]) & (scale <= ceiling[cell])
        best_ll[cell] = torch.where(better, ll, best_ll[cell])
        news = (
            (scale, ell, ratio)
            if version is not None
            else (scale, ell.unsqueeze(-1), ratio.unsqueeze(-1))
        )
        for kept, new in zip(best, news):
            kept[cell] = torch.where(better, new, kept[cell])

    ones = torch.ones(n_channels, dtype=torch.float64)
    for ell in _LENGTHSCALES:
        for ratio in _NOISE_RATIOS:
            consider(ell * ones, ratio * ones, None)
    ell0, ratio0 = best[1].clone(), best[2].clone()
    ranked = (best_ll + offset).argsort(dim=1, descending=True, stable=True)
    for version in ranked[:, :REFINED_VERSIONS].T:  # [C]: rank k's version per channel
        centre_ell, centre_ratio = ell0[channels, version], ratio0[channels, version]
        for f_ell in _REFINE_LENGTHSCALE:
            for f_ratio in _REFINE_RATIO:
                consider(centre_ell * f_ell, centre_ratio * f_ratio, version)
    v, ell, ratio = best
    return (v, ell, v * ratio), best_ll


#: the level-scale slopes ``b`` tried for a channel that is never negative (scaled units:
#: at ``b = 1`` the residual's std doubles one training std above an original 0)
LEVEL_SLOPES = (0.0, 0.3, 1.0, 3.0, 10.0, 100.0)


def fit_residual_process(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    max_rows_per_channel: int = 64,
    max_points: int = 48,
    seed: int = 0,
    given: torch.Tensor | None = None,
    path: torch.Tensor | None = None,
    level_zero: torch.Tensor | None = None,
) -> ResidualProcess:
    """Per channel, the kernel of :data:`KERNELS` and its (v, ℓ, n) with the highest
    likelihood of the residual series (empirical Bayes): a grid of correlation times ℓ
    from 1e-3 to 100 model time units and of noise-to-signal ratios, the scale ``v``
    profiled out in closed form, then refined around each channel's best point.

    With ``given`` the likelihood is the predictive one, log p(r_hidden | r_given): the
    density of each series' other points given its ``given`` points, which is what
    prediction does with the process (kriging from the context's residuals). Use it when
    the given points are a context the path was inferred from: their residuals are
    smaller than the others', and a joint likelihood reads that contrast as a short
    correlation time. Without ``given``: the marginal likelihood of every point.

    With ``path`` and ``level_zero``, each channel with a finite ``level_zero`` also
    gets the level-scale slope of :data:`LEVEL_SLOPES` under which the residuals are
    most likely: the process is fitted to ``r / g`` and the likelihood counts the
    change of variables, ``- sum log g`` over the scored points, so slopes compete on
    the density of ``r`` itself.

    Args:
        times: [B, T] model times; residuals [B, T, C]; mask [B, T, C] (1.0 = observed).
        max_rows_per_channel, max_points: bound the work on large data: at most this
            many series per channel (a seeded random choice) and the first
            ``max_points`` observations of each (given ones first) enter the likelihood.
        seed: seeds that choice.
        given: [B, T, C] bool, True at the conditioning points, or None.
        path: [B, T, C] the latent path the residuals are taken from (scaled units).
        level_zero: [C] the scaled value of an original 0 per channel; NaN for a channel
            that can be negative (no level scale). None: no level scales at all.

    Returns:
        The fitted :class:`ResidualProcess`. A channel with fewer than 3 scored
        residuals gets an OU kernel with half its mean square as ``v`` and half as
        ``n`` (nothing to fit), and no level slope.
    """
    times, residuals = times.detach().double(), residuals.detach().double()
    n_c = residuals.shape[-1]
    rows = ObservedRows.of(mask.detach(), max_points, None if given is None else given.detach())
    rng = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(n_c):
        of_c = torch.nonzero(rows.channel == c).squeeze(-1)
        pick = torch.randperm(len(of_c), generator=rng)[:max_rows_per_channel]
        keep.append(of_c[pick.sort().values])
    rows = rows.take(torch.cat(keep)) if keep else rows
    row_times, row_residuals = rows.times(times), rows.values(residuals)
    gaps = time_gaps(row_times, row_times)
    counts = _per_channel(rows, rows.scored.sum(-1), n_c)  # scored points per channel
    scaled = level_zero is not None
    if scaled and path is None:
        raise ValueError("level_zero needs the path the residuals are taken from (path=).")
    allowed = torch.zeros(n_c, dtype=torch.bool)
    zero = torch.zeros(n_c, dtype=torch.float64)
    if scaled:
        given_zero = level_zero.detach().double().cpu()
        allowed = torch.isfinite(given_zero)
        zero = torch.where(allowed, given_zero, zero)
    slopes = LEVEL_SLOPES if bool(allowed.any()) else (0.0,)
    best_ll = torch.full((n_c,), -math.inf, dtype=torch.float64)
    best: list[tuple] = [None] * n_c
    if len(rows):
        # one version of the residuals per slope (r / g), with the change of variables
        b = torch.tensor(slopes, dtype=torch.float64) * allowed.unsqueeze(-1)  # [C, M]
        row_scale = torch.ones_like(row_residuals).unsqueeze(-1)  # [R, K, M]
        if len(slopes) > 1:
            row_level = rows.values((path.detach().double() - zero).clamp_min(0.0))
            row_scale = 1.0 + b[rows.channel].unsqueeze(1) * row_level.unsqueeze(-1)
        whitened = row_residuals.unsqueeze(-1) / row_scale
        log_scale = (torch.log(row_scale) * rows.scored.unsqueeze(-1)).sum(1)  # [R, M]
        jacobian = _per_channel(rows, log_scale, n_c)  # [C, M]
        ceiling = VARIANCE_CAP * _mean_square(rows, whitened, n_c)  # [C, M]
        fits = []
        for name in KERNELS:
            smooth = torch.full((n_c,), name == "matern32")
            fitted, ll = _fit_kernel(rows, gaps, whitened, smooth, ceiling, -jacobian)
            fits.append((name, fitted, ll - jacobian))
        for m in range(len(slopes)):
            for name, fitted, ll in fits:
                for c in range(n_c):
                    if ll[c, m] > best_ll[c]:
                        best_ll[c] = ll[c, m]
                        best[c] = (name, *(float(p[c, m]) for p in fitted), float(b[c, m]))
    mean_square = _mean_square(rows, row_residuals, n_c)
    for c in range(n_c):
        if counts[c] < 3 or best[c] is None:
            half = 0.5 * max(float(mean_square[c]), 1e-6)
            best[c] = ("ou", half, 1.0, half, 0.0)
    kernel, variance, lengthscale, noise, slope = zip(*best)
    if not scaled:
        return ResidualProcess(kernel, variance, lengthscale, noise)
    return ResidualProcess(
        kernel, variance, lengthscale, noise, slope, tuple(float(z) for z in zero)
    )


def _per_channel(rows: ObservedRows, row_values: torch.Tensor, n_channels: int) -> torch.Tensor:
    """[C, ...] the sum of ``row_values`` [R, ...] over each channel's rows."""
    return torch.zeros(n_channels, *row_values.shape[1:], dtype=row_values.dtype).index_add(
        0, rows.channel, row_values
    )
