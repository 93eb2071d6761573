"""Decoder read-out: one real-time solve per batch, read at every series' own times.

Every series of a batch starts from its own ``z0`` at its own time 0, but the
dynamics are the same function of the state, so one solve of the whole batch's
states over the batch's time span serves all series. When queries lie on both sides
of time 0 (targets before a series' clock origin), an adaptive solver runs both
directions as one solve of the doubled state on a shared clock, each half held to the
tolerance it would have alone, when the state is small enough for the solver's per-step
overhead to dominate (:data:`JOINT_SOLVE_MAX_ELEMENTS`). The solution is saved on a
uniform grid ``t_k = k h`` (0 among them, from the solver's dense output) and each
series' query times are read off it by quintic Hermite interpolation, with first and
second derivatives from seven-point differences of the grid states. The vector field
is called by the solver only, and no Python loop over series or times is involved.

The read-out is linear in the grid states, with weights that depend only on the
query time: ``z(q) = sum_k w_k(q) z(t_k)``. A batch's weights form one [B, T', G]
tensor (at most 8 non-zeros per row), and one batched matmul with the states, read
in place as [B, G, S*L], gives every sample of every series at once.

Error. Quintic Hermite interpolation with exact derivatives errs by at most
``h**6 / 46080 * max|z^(6)|``; the seven-point derivatives err by O(h**6) (first) and
O(h**5) (second, at the ends), which moves the result by O(h**7); the read-out is
sixth order and reproduces quintics exactly. On sin over 64 points it errs by 1e-11
(cubic Hermite with exact slopes: 1.3e-8). The total error is that plus the solver's
own error at the grid points (set by rtol/atol or the fixed step size), which is far
larger at the default tolerances.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction

import torch

from latentode.errors import LatentODEError
from latentode.nn.solve import DEFAULT_SOLVER, SolverConfig, solve

__all__ = [
    "JOINT_SOLVE_MAX_ELEMENTS",
    "MIN_GRID",
    "derivative_matrix",
    "interpolation_weights",
    "solve_at_times",
    "time_grid",
]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Fewest grid points: the seven-point differences need seven.
MIN_GRID = 7
#: Both directions share one solve only for states up to this many values (training
#: batches: overhead-bound, one solve saves the per-step machinery of the other); larger
#: ones (prediction's 32 samples x 256 series) are arithmetic-bound, and the joint solve
#: would carry the short backward half through every step of the long forward one.
JOINT_SOLVE_MAX_ELEMENTS = 16384

# Seven-point stencils at positions 0..3 of a 7-point window, for h * y' (times 60) and
# h**2 * y'' (times 180); positions 4..6 mirror 2..0 (y' with the sign flipped).
_FIRST = (
    (-147, 360, -450, 400, -225, 72, -10),
    (-10, -77, 150, -100, 50, -15, 2),
    (2, -24, -35, 80, -30, 8, -1),
    (-1, 9, -45, 0, 45, -9, 1),
)
_SECOND = (
    (812, -3132, 5265, -5080, 2970, -972, 137),
    (137, -147, -255, 470, -285, 93, -13),
    (-13, 228, -420, 200, 15, -12, 2),
    (2, -27, 270, -490, 270, -27, 2),
)


def time_grid(t_min: float, t_max: float, n_grid: int) -> tuple[float, int, int]:
    """A uniform grid ``t_k = k h``, ``k_lo <= k <= k_hi``, covering [t_min, t_max] and 0.

    About ``n_grid`` points (at least :data:`MIN_GRID`) over ``[min(t_min, 0),
    max(t_max, 0)]``; the ends may overhang by less than ``h``.
    Returns (h, k_lo <= 0, k_hi >= 0); needs ``t_min < t_max`` or one of them non-zero.
    """
    span = max(t_max, 0.0) - min(t_min, 0.0)
    h = span / (max(n_grid, MIN_GRID) - 1)
    k_lo = min(0, math.floor(t_min / h + 1e-9))
    k_hi = max(0, math.ceil(t_max / h - 1e-9))
    return h, k_lo, k_hi


def derivative_matrix(
    n: int, order: int, dtype: torch.dtype, device: torch.device | None = None
) -> torch.Tensor:
    """[n, n] matrix ``D`` with ``(D @ y)[k] ≈ h**order * y^(order)(t_k)`` on a uniform grid.

    Seven-point differences (``order`` 1 or 2; ``n >= 7``): centred inside, off-centre
    within three points of an end. Exact for polynomials of degree <= 6.
    """
    if n < MIN_GRID:
        raise LatentODEError(f"derivative_matrix needs at least {MIN_GRID} points, got {n}.")
    if order not in (1, 2):
        raise LatentODEError(f"derivative_matrix takes order 1 or 2, got {order}.")
    stencils, scale, sign = (_FIRST, 60, -1.0) if order == 1 else (_SECOND, 180, 1.0)
    table = torch.tensor(stencils, dtype=torch.float64) / scale  # [4, 7]
    table = torch.cat([table, sign * table[:3].flip(0, 1)])  # [7, 7], row p: at position p
    d = torch.zeros(n, n, dtype=torch.float64)
    for k in range(n):
        start = min(max(k - 3, 0), n - 7)  # the 7-point window around k
        d[k, start : start + 7] = table[k - start]
    return d.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _cell_table(
    n: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cell of an ``n``-point grid, the window weights [n-1, 6, width] of y_c, h y'_c,
    h² y''_c, h² y''_c+1, h y'_c+1 and y_c+1, and the window's grid indices [n-1, width]
    (width = min(8, n)). Cached: a read-out needs the same tables every call (not to be
    modified in place)."""
    width = min(8, n)  # cell c reads grid points start .. start + width - 1
    cells = torch.arange(n - 1, device=device)  # [n-1]
    starts = (cells - 3).clamp(0, n - width)  # [n-1]
    cols = starts.unsqueeze(-1) + torch.arange(width, device=device)  # [n-1, width]
    d1, d2 = (derivative_matrix(n, k, dtype, device) for k in (1, 2))
    table = torch.stack(
        [
            (cols == cells.unsqueeze(-1)).to(dtype),
            d1[:-1].gather(-1, cols),
            d2[:-1].gather(-1, cols),
            d2[1:].gather(-1, cols),
            d1[1:].gather(-1, cols),
            (cols == cells.unsqueeze(-1) + 1).to(dtype),
        ],
        dim=-2,
    )
    return table, cols


def interpolation_weights(position: torch.Tensor, n: int) -> torch.Tensor:
    """Read-out weights on a uniform grid of ``n >= 7`` points, at fractional positions.

    Args:
        position: [...] query positions in grid units (time / h - k_lo), within
            [0, n - 1] (outside, the end cell's quintic extrapolates).

    Returns:
        [..., n] weights ``w`` with ``path(position) ≈ sum_k w[..., k] * path[k]``:
        quintic Hermite on the cell ``floor(position)`` from the values and the
        :func:`derivative_matrix` first and second derivatives at its two ends; at most
        8 neighbouring weights are non-zero. Exact for quintics; exactly one-hot at an
        integer position.
    """
    table, cols = _cell_table(n, position.dtype, position.device)
    cell = position.detach().floor().clamp(0, n - 2)  # [...]
    t = position - cell  # [...] in [0, 1] within the grid
    t2 = t * t
    t3 = t2 * t
    t4 = t3 * t
    t5 = t4 * t
    basis = torch.stack(  # quintic Hermite basis, in the table's order: [..., 6]
        [
            1 - 10 * t3 + 15 * t4 - 6 * t5,
            t - 6 * t3 + 8 * t4 - 3 * t5,
            0.5 * (t2 - 3 * t3 + 3 * t4 - t5),
            0.5 * (t3 - 2 * t4 + t5),
            -4 * t3 + 7 * t4 - 3 * t5,
            10 * t3 - 15 * t4 + 6 * t5,
        ],
        dim=-1,
    )
    index = cell.long()  # [...]
    local = (basis.unsqueeze(-1) * table[index]).sum(-2)  # [..., width]
    weights = position.new_zeros(*position.shape, n)
    return weights.scatter_(-1, cols[index], local)  # [..., n]


def solve_at_times(
    func: VectorField,
    z0: torch.Tensor,
    query_times: torch.Tensor,
    solver: SolverConfig = DEFAULT_SOLVER,
    n_grid: int = 64,
) -> torch.Tensor:
    """Solve ``dz/dt = func(t, z)`` from ``z(0) = z0`` and read ``z`` at each series' own times.

    One solve forwards from 0 to the batch's latest query time and, when some query
    time is negative, one backwards from 0 to the earliest (with an adaptive method, no
    adjoint and a small state, both as one solve: see the module docstring), saved on the
    uniform grid of :func:`time_grid` (about ``n_grid`` points in all); every query time is read
    with :func:`interpolation_weights` (error O(h^6), h = span / (n_grid - 1); see the
    module docstring). ``func`` is only called by the solver.

    Args:
        func: vector field ``func(t, z)`` with ``t`` a scalar tensor.
        z0: [..., B, L] initial states at each series' time 0 (e.g. [S, B, L] or [B, L]).
        query_times: [B, T'] each series' query times (any order, negative allowed,
            padding repeating a real time is fine).
        solver: solver settings (adjoint included).
        n_grid: grid points over the batch's span (at least :data:`MIN_GRID` are used).

    Returns:
        [..., B, T', L] the state at each query time (leading dims as ``z0``; a
        permuted view, not contiguous).

    Raises:
        LatentODEError: non-finite query times, ``n_grid < 2``, or shapes that disagree.
        ODEStepLimitError, ODESolveError: from the solve.
    """
    if n_grid < 2:
        raise LatentODEError(f"n_grid must be at least 2, got {n_grid}.")
    if query_times.dim() != 2 or z0.dim() < 2 or query_times.shape[0] != z0.shape[-2]:
        raise LatentODEError(
            f"solve_at_times expects z0 [..., B, L] and query_times [B, T'] with the same B; "
            f"got z0 {tuple(z0.shape)} and query_times {tuple(query_times.shape)}."
        )
    if query_times.numel() == 0:
        return z0.new_zeros(*z0.shape[:-1], 0, z0.shape[-1])
    t_min, t_max = (float(v) for v in torch.aminmax(query_times.detach()))
    if not (math.isfinite(t_min) and math.isfinite(t_max)):
        raise LatentODEError(
            "solve_at_times got NaN or infinite query times; every query time must be finite."
        )
    n_query = query_times.shape[-1]
    if t_min == 0.0 and t_max == 0.0:  # every query at the initial time
        return z0.unsqueeze(-2).expand(*z0.shape[:-1], n_query, z0.shape[-1])

    h, k_lo, k_hi = time_grid(t_min, t_max, n_grid)
    lead, n_batch, n_latent = z0.shape[:-2], z0.shape[-2], z0.shape[-1]
    # solve with the series first, [B, S, L] (S: the leading dims flattened), so that the
    # grid states [G, B, S, L] hold each series' samples together for the read-out
    z0 = z0.reshape(-1, n_batch, n_latent).transpose(0, 1).contiguous()  # [B, S, L]
    n_s = z0.shape[1]
    steps = {"dtype": z0.dtype, "device": z0.device}
    position = query_times.to(z0.dtype) / h - k_lo  # [B, T'] in grid units, 0 exact at t = 0
    weights = interpolation_weights(position, k_hi - k_lo + 1)  # [B, T', G]
    # the grid states [G, B, S, L] from k_lo h up to k_hi h, time 0 at index -k_lo
    joint = solver.adaptive and not solver.adjoint and z0.numel() <= JOINT_SOLVE_MAX_ELEMENTS
    if k_lo < 0 < k_hi and joint:  # both ways in one solve
        path = _solve_both_ways(func, z0, h, k_lo, k_hi, solver)
    else:
        parts = []
        if k_lo < 0:  # from 0 down to k_lo h
            back = solve(func, z0, torch.arange(0, k_lo - 1, -1, **steps) * h, solver)
            parts.append(back.flip(0))
        if k_hi > 0:  # from 0 up to k_hi h; time 0 is in the backward path if any
            fwd = solve(func, z0, torch.arange(0, k_hi + 1, **steps) * h, solver)
            parts.append(fwd if k_lo == 0 else fwd[1:])
        path = parts[0] if len(parts) == 1 else torch.cat(parts)
    # read as B matrices [G, S*L] in place (bmm takes the strides; no copy)
    by_series = path.view(path.shape[0], n_batch, n_s * n_latent).transpose(0, 1)
    out = torch.bmm(weights, by_series)  # [B, T', S*L]
    out = out.view(n_batch, n_query, n_s, n_latent)  # [B, T', S, L]
    return out.permute(2, 0, 1, 3).reshape(*lead, n_batch, n_query, n_latent)  # [..., B, T', L]


class _BothWays:
    """Both directions from time 0 on one clock u ∈ [0, 1]: the state ``[z_f, z_b]``
    [2, ...] with ``z_f(u) = z(u·T_f)`` and ``z_b(u) = z(u·T_b)`` (T_b < 0 < T_f), so
    ``d/du [z_f, z_b] = [T_f·f(u·T_f, z_f), T_b·f(u·T_b, z_b)]``."""

    def __init__(self, func: VectorField, spans: torch.Tensor) -> None:
        self.func, self.spans = func, spans  # spans [2, 1, ..., 1]
        self.nfe = getattr(func, "nfe", None)

    def __call__(self, u: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        t = (u * self.spans).squeeze(-1)  # [2, 1, ...]: each half's own real time
        return self.spans * self.func(t, state)


def _worse_half(scaled_error: torch.Tensor) -> torch.Tensor:
    """The larger of the two halves' RMS errors: each direction is held to the tolerance
    it would have alone (an RMS over both would let one half's error hide in the other's)."""
    return scaled_error.pow(2).flatten(1).mean(1).sqrt().max()


def _solve_both_ways(
    func: VectorField, z0: torch.Tensor, h: float, k_lo: int, k_hi: int, solver: SolverConfig
) -> torch.Tensor:
    """One adaptive solve for the grid below and above time 0 (instead of two, each with
    its own start-up and step control): the states [k_hi - k_lo + 1, ...] at k_lo·h, ...,
    -h, 0, h, ..., k_hi·h, from ``z0`` [...] at time 0."""
    n_back, n_fwd = -k_lo, k_hi
    stamps, rows = _both_ways_clock(n_back, n_fwd)
    like = {"dtype": z0.dtype, "device": z0.device}
    u = torch.tensor(stamps, **like)
    spans = torch.tensor([n_fwd * h, -n_back * h], **like).view(2, *([1] * z0.dim()))
    path = solve(_BothWays(func, spans), torch.stack([z0, z0]), u, solver, norm=_worse_half)
    order = torch.tensor(rows, device=z0.device)
    return path.reshape(-1, *z0.shape).index_select(0, order)


@functools.lru_cache(maxsize=256)
def _both_ways_clock(n_back: int, n_fwd: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The shared clock's stamps u (the union of j / n_back and k / n_fwd, exact fractions
    sorted) and, for the grid k_lo·h, ..., k_hi·h in order, the row of the two-way path
    [U * 2, ...] that holds it (stamp i of the forward half is row 2i, of the backward
    half 2i + 1). Cached: a training run meets the same few (n_back, n_fwd) pairs, and
    the exact fractions cost ~1 ms a call."""
    stamps = sorted(
        {Fraction(j, n_back) for j in range(n_back + 1)}
        | {Fraction(k, n_fwd) for k in range(n_fwd + 1)}
    )
    index = {u: i for i, u in enumerate(stamps)}
    rows = [2 * index[Fraction(j, n_back)] + 1 for j in range(n_back, 0, -1)]
    rows += [2 * index[Fraction(k, n_fwd)] for k in range(n_fwd + 1)]
    return tuple(float(x) for x in stamps), tuple(rows)
