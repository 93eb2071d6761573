"""Decoder read-out: one real-time solve per batch, read at every series' own times.

Every series of a batch starts from its own ``z0`` at its own time 0, but the
dynamics are the same function of the state, so one solve of the whole batch's
states over the batch's time span serves all series. The solution is saved on a
uniform grid and each series' query times are read off it with one vectorised
cubic Hermite interpolation (``searchsorted`` + ``gather``), with the derivatives
at the grid points from one batched evaluation of the vector field. Neither the
union of the batch's time stamps nor a Python loop over series or times is involved.

Error. Cubic Hermite interpolation of exact states and derivatives on a grid of
spacing ``h`` errs by at most ``h**4 / 384 * max|z''''|`` (fourth order); the total
error is that plus the solver's own error at the grid points (set by rtol/atol or
the fixed step size).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from latentode.errors import LatentODEError
from latentode.nn.solve import DEFAULT_SOLVER, SolverConfig, nfe_counter, solve

__all__ = ["hermite_interpolate", "solve_at_times", "time_grid"]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(
    t_min: float, t_max: float, n_grid: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Uniform grids from 0 backwards to ``t_min`` and forwards to ``t_max``.

    About ``n_grid`` points in all, split between the two sides in proportion to their
    length (at least 2 on a side that exists). A side of zero length is None.
    Returns (backward [Gb] from 0 down to t_min, forward [Gf] from 0 up to t_max).
    """
    span = max(t_max, 0.0) - min(t_min, 0.0)
    h = span / max(n_grid - 1, 1)

    def side(end: float) -> torch.Tensor | None:
        if end == 0.0:
            return None
        n = max(2, math.ceil(abs(end) / h - 1e-9) + 1)
        return torch.linspace(0.0, end, n, dtype=dtype, device=device)

    return side(min(t_min, 0.0)), side(max(t_max, 0.0))


def hermite_interpolate(
    grid: torch.Tensor, states: torch.Tensor, derivs: torch.Tensor, query: torch.Tensor
) -> torch.Tensor:
    """Cubic Hermite interpolation of a path given on a grid, at per-series query times.

    Args:
        grid: [G] increasing times, G >= 2.
        states: [G, ..., B, L] the path at the grid times.
        derivs: [G, ..., B, L] its time derivative there.
        query: [B, T'] times within [grid[0], grid[-1]] (values outside are extrapolated
            with the end cell's cubic).

    Returns:
        [..., B, T', L] the interpolated path.
    """
    query = query.to(grid.dtype)  # [B, T']
    cell = torch.searchsorted(grid, query.contiguous(), right=True) - 1  # [B, T']
    cell = cell.clamp(0, grid.shape[0] - 2)
    t0 = grid[cell]  # [B, T']
    h = grid[cell + 1] - t0  # [B, T']
    tau = ((query - t0) / h).unsqueeze(-1)  # [B, T', 1]
    h = h.unsqueeze(-1)  # [B, T', 1]

    path = torch.cat([states, derivs], dim=-1).movedim(0, -2)  # [..., B, G, 2L]
    lead = path.shape[:-2]
    index = cell.unsqueeze(-1).expand(*lead, cell.shape[-1], path.shape[-1])  # [..., B, T', 2L]
    left = torch.gather(path, -2, index)  # [..., B, T', 2L]
    right = torch.gather(path, -2, index + 1)  # [..., B, T', 2L]
    y0, f0 = left.chunk(2, dim=-1)  # [..., B, T', L] each
    y1, f1 = right.chunk(2, dim=-1)

    tau2 = tau * tau
    tau3 = tau2 * tau
    h00 = 2 * tau3 - 3 * tau2 + 1
    h10 = tau3 - 2 * tau2 + tau
    h01 = 3 * tau2 - 2 * tau3
    h11 = tau3 - tau2
    return h00 * y0 + (h10 * h) * f0 + h01 * y1 + (h11 * h) * f1  # [..., B, T', L]


def solve_at_times(
    func: VectorField,
    z0: torch.Tensor,
    query_times: torch.Tensor,
    solver: SolverConfig = DEFAULT_SOLVER,
    n_grid: int = 64,
) -> torch.Tensor:
    """Solve ``dz/dt = func(t, z)`` from ``z(0) = z0`` and read ``z`` at each series' own times.

    One solve forwards from 0 to the batch's latest query time and, when some query
    time is negative, one backwards from 0 to the earliest, each saved on a uniform
    grid (about ``n_grid`` points in all); ``func`` is then evaluated once on all grid
    states and every query time is read with cubic Hermite interpolation
    (error O(h^4), h = span / (n_grid - 1); see the module docstring).

    Args:
        func: vector field ``func(t, z)``; for the derivative evaluation it is called
            once with ``z`` [G, ..., B, L] and ``t`` [G, 1, ..., 1] (broadcastable to
            ``z.shape[:-1]``), so a time-dependent field must broadcast ``t``.
        z0: [..., B, L] initial states at each series' time 0 (e.g. [S, B, L] or [B, L]).
        query_times: [B, T'] each series' query times (any order, negative allowed,
            padding repeating a real time is fine).
        solver: solver settings (adjoint included).
        n_grid: grid points over the batch's span.

    Returns:
        [..., B, T', L] the state at each query time (leading dims as ``z0``).

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

    backward, forward = time_grid(t_min, t_max, n_grid, z0.dtype, z0.device)
    grids: list[torch.Tensor] = []
    paths: list[torch.Tensor] = []
    if backward is not None:
        path = solve(func, z0, backward, solver)  # [Gb, ..., B, L], from 0 down to t_min
        grids.append(backward.flip(0)[:-1])
        paths.append(path.flip(0)[:-1])
    if forward is not None:
        grids.append(forward)
        paths.append(solve(func, z0, forward, solver))  # [Gf, ..., B, L]
    else:
        grids.append(backward[:1])  # time 0 closes the backward grid
        paths.append(z0.unsqueeze(0))
    grid = torch.cat(grids)  # [G]
    states = torch.cat(paths)  # [G, ..., B, L]

    counter = nfe_counter(func)
    if counter is not None:
        counter.forward += 1
    t_col = grid.reshape(-1, *([1] * (states.dim() - 2)))  # [G, 1, ..., 1]
    derivs = func(t_col, states)  # [G, ..., B, L]
    return hermite_interpolate(grid, states, derivs, query_times)
