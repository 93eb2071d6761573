"""The residual process: deviations from the latent path that persist in time.

The latent ODE says ``x_c(t) = decoder(z(t))_c + e_c(t)``. With i.i.d. noise ``e``, a
prediction between two observations ignores how far both sat from the path, which is
exactly what per-series linear interpolation uses. Here ``e_c`` is a stationary
Gaussian process plus white observation noise, independent per channel and series::

    Cov(e_c(t), e_c(t')) = v_c · ρ_c(|t - t'| / ℓ_c) + n_c · [same observation]

with ρ(d) = exp(-d) (Ornstein-Uhlenbeck: rough, Markov) or (1 + √3 d) exp(-√3 d)
(Matérn-3/2: once differentiable, for smooth curves), chosen per channel by the
likelihood of held-out residuals (:func:`fit_residual_process`). Conditioning on the
residuals ``r = x - path`` at the context's observed points gives, at a query time
``t`` (kriging)::

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
from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "KERNELS",
    "ResidualProcess",
    "condition_residual",
    "fit_residual_process",
    "residual_log_marginal",
    "within_context_range",
]

_LOG_2PI = math.log(2 * math.pi)
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
    """exp(-d) (OU) or (1 + √3 d) exp(-√3 d) (Matérn-3/2) where ``smooth`` is True.

    d: [R, K1, K2] scaled gaps; smooth: [R] per row (one formula when all rows agree).
    """

    def matern(x: torch.Tensor) -> torch.Tensor:
        s3 = math.sqrt(3.0) * x
        return (1.0 + s3) * torch.exp(-s3)

    if bool(smooth.all()):
        return matern(d)
    if not bool(smooth.any()):
        return torch.exp(-d)
    return torch.where(smooth.view(-1, 1, 1), matern(d), torch.exp(-d))


@dataclass(frozen=True)
class _Rows:
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
    ) -> _Rows:
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

    def take(self, index: torch.Tensor | slice) -> _Rows:
        return _Rows(
            self.series[index],
            self.channel[index],
            self.position[index],
            self.valid[index],
            self.scored[index],
        )

    def buckets(self, other: int) -> Iterator[_Rows]:
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
            yield _Rows(
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


def _row_kernel(rows: _Rows, gaps: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The row's channel's covariance at |t - t'| = gaps [R, K1, K2] → [R, K1, K2]."""
    variance, lengthscale, _, smooth = params
    c = rows.channel
    return variance[c].view(-1, 1, 1) * _correlation(
        gaps / lengthscale[c].view(-1, 1, 1), smooth[c]
    )


def _gaps(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """|t1 - t2| for t1 [R, K1], t2 [R, K2] → [R, K1, K2]."""
    return (t1.unsqueeze(-1) - t2.unsqueeze(-2)).abs()


def _row_cholesky(
    rows: _Rows, gaps: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """Cholesky factor [R, K, K] of K + n I over each row's real points (``gaps`` [R, K, K]
    between them); padding gets an identity row and column, so it carries no
    information and no determinant."""
    valid = rows.valid.to(gaps.dtype)
    pair = valid.unsqueeze(-1) * valid.unsqueeze(-2)
    cov = _row_kernel(rows, gaps, params) * pair
    diag = valid * params[2][rows.channel].unsqueeze(-1) + (1.0 - valid)
    return torch.linalg.cholesky(cov + torch.diag_embed(diag))


def _scored_terms(
    rows: _Rows, gaps: torch.Tensor, row_residuals: torch.Tensor, params
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row [R]: the squared whitened residuals, the log-determinant terms and the
    number of points, summed over the row's ``scored`` points (row_residuals [R, K], 0 at
    padding). Their sum is log p(scored | the points before them): see
    :func:`_profile_log_marginal`."""
    chol = _row_cholesky(rows, gaps, params)
    white = torch.linalg.solve_triangular(chol, row_residuals.unsqueeze(-1), upper=False)
    scored = rows.scored.to(row_residuals.dtype)
    q = (white.squeeze(-1) ** 2 * scored).sum(-1)
    log_det = 2.0 * (torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)) * scored).sum(-1)
    return q, log_det, scored.sum(-1)


def _rows_log_marginal(
    rows: _Rows, gaps: torch.Tensor, row_residuals: torch.Tensor, params
) -> torch.Tensor:
    """log density of each row's ``scored`` points given the points before them [R]."""
    q, log_det, n = _scored_terms(rows, gaps, row_residuals, params)
    return -0.5 * (q + log_det + n * _LOG_2PI)


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
    rows = _Rows.of(mask, given=given)
    row_times = rows.times(times)
    per_row = _rows_log_marginal(rows, _gaps(row_times, row_times), rows.values(residuals), params)
    out = torch.zeros(mask.shape[0], mask.shape[2], dtype=per_row.dtype, device=mask.device)
    return out.index_put((rows.series, rows.channel), per_row)


def condition_residual(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    query_times: torch.Tensor,
    params: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual at ``query_times`` given the context residuals (kriging).

    Args:
        times: [B, T] context model times.
        residuals: [S, B, T, C] context residuals per path sample (unobserved: anything).
        mask: [B, T, C] 1.0 where observed.
        query_times: [B, Q] model times to predict at.
        params: (v, ℓ, n, smooth) [C] tensors (``ResidualProcess.tensors``).

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
    rows = _Rows.of(mask)
    mean = residuals.new_zeros(n_s, n_b, n_c, n_q)
    var = params[0].view(1, -1, 1).expand(n_b, n_c, n_q).clone()
    for part in rows.buckets(max(n_q, n_s)):
        row_times = part.times(times)  # [r, K]
        chol = _row_cholesky(part, _gaps(row_times, row_times), params)  # [r, K, K]
        cross = _row_kernel(part, _gaps(row_times, query_times[part.series]), params)
        cross = cross * part.valid.unsqueeze(-1)
        half = torch.linalg.solve_triangular(chol, cross, upper=False)  # L⁻¹k: [r, K, Q]
        r = part.values(residuals).permute(1, 2, 0)  # [r, K, S]
        white = torch.linalg.solve_triangular(chol, r, upper=False)  # [r, K, S]
        mean[:, part.series, part.channel] = (half.transpose(-1, -2) @ white).permute(2, 0, 1)
        var[part.series, part.channel] = var[part.series, part.channel] - (half**2).sum(-2)
    mean = mean.permute(0, 1, 3, 2)  # [S, B, Q, C]
    var = var.clamp_min(0.0).permute(0, 2, 1)  # [B, Q, C]
    return mean.to(dtype), var.to(dtype)


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
    rows: _Rows,
    gaps: torch.Tensor,
    row_residuals: torch.Tensor,
    n_channels: int,
    smooth: torch.Tensor,
    lengthscale: torch.Tensor,
    ratio: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, the log likelihood of the rows' ``scored`` points given the points
    before them, maximised over the scale ``v`` with ℓ and ``n / v`` fixed (the [C]
    tensors ``lengthscale`` and ``ratio``), and that ``v``.

    With the Cholesky factor L of K over a row's points in their row order, the whitened
    residual ``w = L⁻¹ r`` splits the density into sequential conditionals: point i
    given the points before it has mean-square term ``w_i²`` and log-determinant term
    ``2 log L_ii``. Summed over the scored points this is log p(scored | the rest before
    them) (all points scored: the marginal). With K = v (R + ρ I), R the correlation
    matrix: the terms are ``q / v`` and ``N log v + ...``, so the best ``v`` is Σq / N.
    """
    unit = (torch.ones_like(lengthscale), lengthscale, ratio, smooth)
    q, log_det, n_scored = _scored_terms(rows, gaps, row_residuals, unit)  # [R] each
    c = rows.channel

    def per_channel(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n_channels, dtype=x.dtype).index_add(0, c, x)

    n_obs = per_channel(n_scored)
    scale = (per_channel(q) / n_obs.clamp_min(1.0)).clamp_min(1e-12)  # all-zero residuals
    ll = -0.5 * (n_obs * torch.log(scale) + n_obs + per_channel(log_det) + n_obs * _LOG_2PI)
    return ll, scale


def _mean_square(rows: _Rows, row_residuals: torch.Tensor, n_channels: int) -> torch.Tensor:
    """[C] the mean square of each channel's observed residuals (0 for a channel without)."""
    valid = rows.valid.to(row_residuals.dtype)
    square = torch.zeros(n_channels, dtype=row_residuals.dtype).index_add(
        0, rows.channel, (row_residuals**2 * valid).sum(-1)
    )
    count = torch.zeros(n_channels, dtype=row_residuals.dtype).index_add(
        0, rows.channel, valid.sum(-1)
    )
    return square / count.clamp_min(1.0)


def _fit_kernel(
    rows: _Rows,
    gaps: torch.Tensor,
    row_residuals: torch.Tensor,
    smooth: torch.Tensor,
    ceiling: torch.Tensor,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Maximum-likelihood (v, ℓ, n) per channel for one kernel choice, by a grid over
    (ℓ, n / v) with ``v`` profiled out, refined around each channel's best; ``v`` at
    most ``ceiling`` [C]: :data:`VARIANCE_CAP` times the mean square of the channel's
    residuals.

    The cap: a predictive likelihood pins a smooth kernel's short-range behaviour
    (``v / ℓ³`` for Matérn-3/2) but hardly ``v`` itself, and on residuals of series the
    model was trained on it drifted to ``v`` 10⁴ times their mean square with ℓ beyond
    the series' spans: a process that extrapolates every residual's slope (indometh
    forecasts). For a stationary process around the path, ``v + n`` is the residuals'
    mean square, so the cap only removes that drift.

    Returns (v, ℓ, n) [C] each and the log likelihood per channel [C].
    """
    n_channels = len(ceiling)
    best_ll = torch.full((n_channels,), -math.inf, dtype=torch.float64)
    best = [torch.zeros(n_channels, dtype=torch.float64) for _ in range(3)]  # v, ℓ, ρ

    def consider(ell: torch.Tensor, ratio: torch.Tensor) -> None:
        ll, scale = _profile_log_marginal(rows, gaps, row_residuals, n_channels, smooth, ell, ratio)
        better = (ll > best_ll) & (scale <= ceiling)
        best_ll[better] = ll[better]
        for kept, new in zip(best, (scale, ell, ratio)):
            kept[better] = new[better]

    ones = torch.ones(n_channels, dtype=torch.float64)
    for ell in _LENGTHSCALES:
        for ratio in _NOISE_RATIOS:
            consider(ell * ones, ratio * ones)
    ell0, ratio0 = best[1].clone(), best[2].clone()
    for f_ell in _REFINE_LENGTHSCALE:
        for f_ratio in _REFINE_RATIO:
            consider(ell0 * f_ell, ratio0 * f_ratio)
    v, ell, ratio = best
    return (v, ell, v * ratio), best_ll


def fit_residual_process(
    times: torch.Tensor,
    residuals: torch.Tensor,
    mask: torch.Tensor,
    max_rows_per_channel: int = 64,
    max_points: int = 48,
    seed: int = 0,
    given: torch.Tensor | None = None,
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

    Args:
        times: [B, T] model times; residuals [B, T, C]; mask [B, T, C] (1.0 = observed).
        max_rows_per_channel, max_points: bound the work on large data: at most this
            many series per channel (a seeded random choice) and the first
            ``max_points`` observations of each (given ones first) enter the likelihood.
        seed: seeds that choice.
        given: [B, T, C] bool, True at the conditioning points, or None.

    Returns:
        The fitted :class:`ResidualProcess`. A channel with fewer than 3 scored
        residuals gets an OU kernel with half its mean square as ``v`` and half as
        ``n`` (nothing to fit).
    """
    times, residuals = times.detach().double(), residuals.detach().double()
    n_c = residuals.shape[-1]
    rows = _Rows.of(mask.detach(), max_points, None if given is None else given.detach())
    rng = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(n_c):
        of_c = torch.nonzero(rows.channel == c).squeeze(-1)
        pick = torch.randperm(len(of_c), generator=rng)[:max_rows_per_channel]
        keep.append(of_c[pick.sort().values])
    rows = rows.take(torch.cat(keep)) if keep else rows
    row_times, row_residuals = rows.times(times), rows.values(residuals)
    gaps = _gaps(row_times, row_times)
    counts = torch.zeros(n_c, dtype=torch.long).index_add(0, rows.channel, rows.scored.sum(-1))
    mean_square = _mean_square(rows, row_residuals, n_c)
    best_ll = torch.full((n_c,), -math.inf, dtype=torch.float64)
    best: list[tuple] = [None] * n_c
    if len(rows):
        for name in KERNELS:
            smooth = torch.full((n_c,), name == "matern32")
            fitted, ll = _fit_kernel(rows, gaps, row_residuals, smooth, VARIANCE_CAP * mean_square)
            for c in range(n_c):
                if ll[c] > best_ll[c]:
                    best_ll[c] = ll[c]
                    best[c] = (name, *(float(p[c]) for p in fitted))
    for c in range(n_c):
        if counts[c] < 3 or best[c] is None:
            half = 0.5 * max(float(mean_square[c]), 1e-6)
            best[c] = ("ou", half, 1.0, half)
    kernel, variance, lengthscale, noise = zip(*best)
    return ResidualProcess(kernel, variance, lengthscale, noise)
