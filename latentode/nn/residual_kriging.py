"""Kriging of the residual process: the residual at query times given a context's residuals.

With the process of :mod:`latentode.nn.residual_process` (per channel: variance ``v``,
correlation ρ with time ``ℓ``, white noise ``n``), conditioning on the residuals
``r = x - path`` at the context's observed points gives, at a query time ``t``::

    mean(t) = k_t^T (K + n I)^{-1} r,      var(t) = v - k_t^T (K + n I)^{-1} k_t

with ``K_ij = v ρ(|t_i - t_j| / ℓ)`` over the context points and ``k_t,i = v ρ(|t - t_i| / ℓ)``,
computed per (series, channel) row through the Cholesky factor of ``K + n I``.
Far from the context, ``mean → 0`` (back to the latent path) and ``var → v``. For an OU
residual with ``ℓ`` much longer than the gaps, the bridge between two points is a
Brownian bridge: it interpolates their residuals linearly.

A series far from every training series (a country whose price level is five training
standard deviations below the others') has residuals the fitted process cannot
explain, and returning to the path there is returning to a guess made for other
series. So the kriging is a mixture of the fitted process and, with a small prior
probability, an outlying series' process (a hundred times the variance, changing
slowly: it bridges the residuals almost linearly and keeps the nearest one beyond
them), weighted by the two processes' likelihoods of the context's residuals
(:func:`condition_residual`). A typical series is kriged as before; an outlying one
keeps its distance from the path, and with enough context points is kriged with the
variance and noise of its own residuals. Where a channel's residuals scale with its level
(:meth:`~latentode.nn.residual_process.ResidualProcess.level_scale`), a series may be
outlying only if its level scale stays nearly the same over its context and queries
(:func:`outlying_rows`): elsewhere a deviation held would be carried to another level.

Shapes: B series, T context times, Q query times, C channels, S path samples.
Times are model times, values scaled (the data layer's units).
"""

from __future__ import annotations

import math

import torch

from latentode.nn.residual_process import (
    LOG_2PI,
    ObservedRows,
    cross_covariance,
    row_cholesky,
    scored_terms,
    time_gaps,
    whitened_terms,
)

__all__ = [
    "OUTLIER_LENGTHSCALE",
    "OUTLIER_LEVEL_RATIO",
    "OUTLIER_PRIOR",
    "OUTLIER_VARIANCE_RATIO",
    "condition_residual",
    "outlying_rows",
    "within_context_range",
]

#: the prior probability that a series strays from its path far beyond what the fitted
#: process expects (an outlying series: far from every training series), the variance of
#: its straying as a multiple of the process's variance ``v``, and its correlation time
#: (model time: the longest training series spans 1)
OUTLIER_PRIOR = 0.01
OUTLIER_VARIANCE_RATIO = 100.0
OUTLIER_LENGTHSCALE = 10.0
#: a series judged outlying (weight above :data:`OWN_FIT_MIN_WEIGHT` in some path sample)
#: whose row has at least :data:`OWN_FIT_MIN_POINTS` context points is kriged, under the
#: outlying hypothesis, with the outlying process's correlation time and the variance and
#: noise fitted to its own residuals: ``v`` profiled out, ``n / v`` from the grid below
OWN_FIT_MIN_POINTS = 8
OWN_FIT_MIN_WEIGHT = 1e-3
_OWN_NOISE_RATIOS = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
#: a series may be outlying in a channel with a level scale ``g`` where ``g`` varies by
#: at most this factor over its context points and queries (see :func:`outlying_rows`)
OUTLIER_LEVEL_RATIO = 3.0


def outlying_rows(
    scale_context: torch.Tensor,
    mask: torch.Tensor,
    scale_target: torch.Tensor,
    target_lengths: torch.Tensor,
) -> torch.Tensor:
    """[B, C] bool: the (series, channel) rows that may be outlying, those whose level
    scale ``g`` varies by at most :data:`OUTLIER_LEVEL_RATIO` over their observed context
    points and their queries (every row of a channel without a level slope: ``g = 1``).

    The outlying process holds a deviation of the residual divided by ``g``; where ``g``
    changes, the deviation held is a relative one and is carried to another level (on
    remifentanil, a series that peaked at 3.7 times the training series' median peak was
    forecast at 11-15 where it measured below 1: its concentrations fall through orders
    of magnitude). Where ``g`` is nearly constant, because the level stays far from the
    original 0 relative to its changes (a body temperature), the level scale only
    rescales the process and the series is treated as one without; where it changes
    within the ratio (monthly deaths through the seasons), a relative deviation is held
    (one population's deaths as a multiple of another's).

    Args:
        scale_context: [B, T, C] ``g`` at the context times; mask [B, T, C] (1.0 = observed).
        scale_target: [B, Q, C] ``g`` at the queries; target_lengths [B] real queries.
    """
    observed = mask > 0
    real = torch.arange(scale_target.shape[1], device=mask.device)
    real = (real < target_lengths.to(mask.device).view(-1, 1)).unsqueeze(-1)  # [B, Q, 1]
    high = torch.maximum(
        torch.where(observed, scale_context, 0.0).amax(1),
        torch.where(real, scale_target, 0.0).amax(1),
    )
    low = torch.minimum(
        torch.where(observed, scale_context, torch.inf).amin(1),
        torch.where(real, scale_target, torch.inf).amin(1),
    )
    return high <= OUTLIER_LEVEL_RATIO * low


def condition_residual(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    query_times: torch.Tensor,
    params: tuple[torch.Tensor, ...],
    outlying: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual at ``query_times`` given the context residuals (kriging), mixed with
    an outlying series' process where the context asks for it (see
    :func:`_with_outlying_series`).

    Args:
        times: [B, T] context model times.
        residuals: [S, B, T, C] context residuals per path sample (unobserved: anything).
        mask: [B, T, C] 1.0 where observed.
        query_times: [B, Q] model times to predict at.
        params: (v, ℓ, n, smooth) [C] tensors (``ResidualProcess.tensors``).
        outlying: [B, C] bool, the rows that may be outlying (:func:`outlying_rows`);
            None: all.

    Returns:
        mean [S, B, Q, C] (the residual's conditional mean per sample; 0 for a channel
        the context never observed) and variance [B, Q, C] (the correlated part's
        conditional variance, without the white noise ``n``; ``v`` where unobserved).
    """
    dtype = residuals.dtype  # solved in float64: tiny noise variances make K + n I stiff
    times, residuals, query_times = (x.double() for x in (times, residuals, query_times))
    params = (*(p.double() for p in params[:3]), params[3])
    n_s, n_b, _, n_c = residuals.shape
    n_q = query_times.shape[1]
    rows = ObservedRows.of(mask)
    mean = residuals.new_zeros(n_s, n_b, n_c, n_q)
    var = params[0].view(1, -1, 1).expand(n_b, n_c, n_q).clone()
    if outlying is not None:
        outlying = outlying.to(mask.device)
    for part in rows.buckets(max(n_q, n_s)):
        r = part.values(residuals).permute(1, 2, 0)  # [r, K, S]
        allowed = None if outlying is None else outlying[part.series, part.channel]
        part_mean, part_var = _with_outlying_series(
            part, part.times(times), query_times[part.series], r, params, allowed
        )
        mean[:, part.series, part.channel] = part_mean.permute(2, 0, 1)
        var[part.series, part.channel] = part_var
    mean = mean.permute(0, 1, 3, 2)  # [S, B, Q, C]
    var = var.clamp_min(0.0).permute(0, 2, 1)  # [B, Q, C]
    return mean.to(dtype), var.to(dtype)


def _outlier_params(params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The outlying series' process: OU with :data:`OUTLIER_VARIANCE_RATIO` times the
    variance, a correlation time of :data:`OUTLIER_LENGTHSCALE` and the same white noise."""
    variance, lengthscale, noise, smooth = params
    return (
        OUTLIER_VARIANCE_RATIO * variance,
        torch.full_like(lengthscale, OUTLIER_LENGTHSCALE),
        noise,
        torch.zeros_like(smooth),
    )


def _krige(
    rows: ObservedRows,
    row_times: torch.Tensor,
    query_times: torch.Tensor,
    r: torch.Tensor,
    params: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Kriging of the rows' residuals ``r`` [r, K, S] at times [r, K] to ``query_times``
    [r, Q] under ``params``: the conditional mean [r, Q, S], the conditional variance of
    the correlated part [r, Q] and the log density of the residuals [r, S]."""
    chol = row_cholesky(rows, time_gaps(row_times, row_times), params)  # [r, K, K]
    cross = cross_covariance(rows, row_times, query_times, params)
    if not bool(rows.valid.all()):
        cross.mul_(rows.valid.unsqueeze(-1))
    half = torch.linalg.solve_triangular(chol, cross, upper=False)  # L⁻¹k: [r, K, Q]
    white = torch.linalg.solve_triangular(chol, r, upper=False)  # [r, K, S]
    mean = half.transpose(-1, -2) @ white  # [r, Q, S]
    explained = torch.linalg.vector_norm(half, dim=-2).square_()  # k^T K⁻¹ k: [r, Q]
    var = params[0][rows.channel].unsqueeze(-1) - explained
    q, log_det, n_points = whitened_terms(chol, white, rows.valid)
    log_density = -0.5 * (q + (log_det + n_points * LOG_2PI).unsqueeze(-1))  # [r, S]
    return mean, var, log_density


def _with_outlying_series(
    rows: ObservedRows,
    row_times: torch.Tensor,
    query_times: torch.Tensor,
    r: torch.Tensor,
    params: tuple[torch.Tensor, ...],
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_krige`'s mean [r, Q, S] and variance [r, Q], mixed with those of an
    outlying series' process (:func:`_outlier_params`, prior probability
    :data:`OUTLIER_PRIOR`) under the two processes' posterior weights ``w`` [r, S], from
    the densities of the context's residuals: the mixture's mean, and its variance
    averaged over the samples.

    The outlying process is what a series does when it is far from every training
    series: a large deviation from its path that changes slowly, so that kriging under
    it bridges the context's residuals almost linearly and, beyond the context, keeps
    the nearest ones (as linear interpolation and the last value carried forward do,
    around the path). A typical series gets ``w`` near 0 (plain kriging); a series
    whose residuals sit many of the fitted process's standard deviations from its path
    keeps that distance instead of returning to the path, where the path is no guide.
    :data:`OUTLIER_PRIOR` 0 turns it off; ``allowed`` [r] (bool) limits it to those rows
    (the outlying process is only kriged there).

    The weights come from the fixed outlying process: it asks whether the series is
    outlying at all. A series that is (``w`` above :data:`OWN_FIT_MIN_WEIGHT` in some
    sample) and has :data:`OWN_FIT_MIN_POINTS` context points or more is then kriged,
    under that hypothesis, with a process fitted to its own residuals
    (:func:`_own_process`): nothing about it was learnt from the training series, and
    the fitted process's white noise, which decides between bridging its points and
    smoothing them, is the training series' (four stock indices: the fixed process
    smoothed each new index's weekly steps as noise, 1.8x linear interpolation's error).
    """
    mean, var, log_density = _krige(rows, row_times, query_times, r, params)
    if OUTLIER_PRIOR <= 0 or (allowed is not None and not bool(allowed.any())):
        return mean, var
    every = allowed is None or bool(allowed.all())
    pick = slice(None) if every else torch.nonzero(allowed).squeeze(-1)  # only those rows
    picked = rows if every else rows.take(pick)
    times_p, query_p, r_p = row_times[pick], query_times[pick], r[pick]
    mean_out, var_out, log_density_out = _krige(
        picked, times_p, query_p, r_p, _outlier_params(params)
    )
    prior = math.log(OUTLIER_PRIOR / (1.0 - OUTLIER_PRIOR))
    w = torch.sigmoid(log_density_out - log_density[pick] + prior).unsqueeze(1)  # [r', 1, S]
    own = (w.amax((1, 2)) > OWN_FIT_MIN_WEIGHT) & (picked.valid.sum(-1) >= OWN_FIT_MIN_POINTS)
    if bool(own.any()):  # kriged under a process fitted to their own residuals instead
        at = torch.nonzero(own).squeeze(-1)
        own_rows, own_params = _own_process(picked.take(at), times_p[at], r_p[at])
        own_mean, own_var, _ = _krige(own_rows, times_p[at], query_p[at], r_p[at], own_params)
        mean_out, var_out = mean_out.index_copy(0, at, own_mean), var_out.index_copy(0, at, own_var)
    plain = mean[pick]
    mixed = plain + w * (mean_out - plain)
    spread = (1.0 - w) * var[pick].unsqueeze(-1) + w * var_out.unsqueeze(-1)
    spread = spread + w * (1.0 - w) * (mean_out - plain).square()  # [r', Q, S]
    if every:
        return mixed, spread.mean(-1)
    return mean.index_copy(0, pick, mixed), var.index_copy(0, pick, spread.mean(-1))


def _own_process(
    rows: ObservedRows, row_times: torch.Tensor, r: torch.Tensor
) -> tuple[ObservedRows, tuple[torch.Tensor, ...]]:
    """Per row, the outlying process (OU, correlation time :data:`OUTLIER_LENGTHSCALE`)
    with the variance and white noise most likely for the row's own residuals ``r``
    [r, K, S] (every path sample's, one scale): ``n / v`` from
    :data:`_OWN_NOISE_RATIOS`, ``v`` profiled out, as
    :func:`~latentode.nn.residual_mle.fit_residual_process` does for a channel.

    Over gaps much shorter than the correlation time this process is a level plus a
    random walk, so ``v`` sets how rough the series is and ``n`` how much of its
    roughness is noise: a series whose steps are real (a price) is bridged nearly
    linearly, a noisy one smoothed; beyond the context it keeps its deviation as the
    fixed outlying process does.

    Returns the rows renumbered so that row i is "channel" i, and (v, ℓ, n, smooth) [r]
    for them: the form :func:`_krige` takes.
    """
    n_rows, n_samples = r.shape[0], r.shape[-1]
    index = torch.arange(n_rows, device=r.device)
    own = ObservedRows(rows.series, index, rows.position, rows.valid, rows.valid)
    gaps = time_gaps(row_times, row_times)
    ones = torch.ones(n_rows, dtype=r.dtype, device=r.device)
    ell = ones * OUTLIER_LENGTHSCALE
    smooth = torch.zeros(n_rows, dtype=torch.bool, device=r.device)
    best_ll = torch.full_like(ones, -math.inf)
    best_v, best_ratio = ones.clone(), ones.clone()
    for ratio in _OWN_NOISE_RATIOS:
        q, log_det, n_points = scored_terms(own, gaps, r, (ones, ell, ones * ratio, smooth))
        count = n_samples * n_points  # q [r, S], log_det and n_points [r]
        v = (q.sum(-1) / count).clamp_min(1e-12)
        ll = -0.5 * (count * torch.log(v) + count + n_samples * log_det)
        better = ll > best_ll
        best_ll = torch.where(better, ll, best_ll)
        best_v = torch.where(better, v, best_v)
        best_ratio = torch.where(better, ones * ratio, best_ratio)
    return own, (best_v, ell, best_ratio * best_v, smooth)


def within_context_range(
    shift: torch.Tensor, residuals: torch.Tensor, mask: torch.Tensor, prior_var: torch.Tensor
) -> torch.Tensor:
    """The kriged residual ``shift`` [S, B, Q, C] kept within what the series or the
    process make plausible: between ``min(min r, -3 sd)`` and ``max(max r, 3 sd)``, with
    ``r`` the context residuals of its series and channel (``residuals`` [S, B, T, C],
    ``mask`` [B, T, C]) and ``sd`` the process's prior std (``prior_var`` [C]: v).

    Kriging is linear in the residuals, and a once-differentiable kernel extrapolates
    the slope between the last context points: from two close points that rose steeply
    (a dose the data leave out) a forecast can run far past anything the series showed
    and the process expects (on the phenobarb data, to three times the largest value
    of the context). A trend that the fitted process itself supports (a large ``v``, as
    for growth curves) stays untouched.
    """
    observed = (mask > 0).unsqueeze(0)  # [1, B, T, C]
    big = torch.finfo(residuals.dtype).max
    sd3 = 3.0 * prior_var.to(residuals.dtype).sqrt()  # [C]
    high = torch.maximum(torch.where(observed, residuals, -big).amax(2, keepdim=True), sd3)
    low = torch.minimum(torch.where(observed, residuals, big).amin(2, keepdim=True), -sd3)
    return torch.minimum(torch.maximum(shift, low), high)
