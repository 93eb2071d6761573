"""Rows to series: sort by (id, time), merge repeated (id, time) rows, check constants.

Several rows (or, in long format, several measurements) for one (id, time) become one
row; several values for one (id, time, channel) are merged by the ``duplicates``
policy or reported with the rows they came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentode.data.parse import Source, TimeRanks, as_python
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError


@dataclass(frozen=True)
class MergeContext:
    """What error messages about merged rows need to name series, times and channels."""

    src: Source
    names: list[str]
    id_values: np.ndarray
    axis: TimeAxis
    duplicates: str

    def time(self, t: float) -> str:
        """A float time back in the user's units, for messages."""
        user = self.axis.to_user(np.array([t]))[0]
        return str(user) if self.axis.is_datetime else f"{float(user)!r}"


def _by_time(ids: np.ndarray, times: np.ndarray, ranks: TimeRanks | None = None):
    """Rows [N] → (order, ids [N], times [N], first [N]) sorted by (id, time).

    ``order`` is the stable permutation applied, or None when the rows were already in
    order (the usual case); ``first`` marks the rows that start a new (id, time).
    ``ranks``: see _stable_order.
    """
    if len(ids) == 0:
        return None, ids, times, np.zeros(0, dtype=bool)
    order = None
    step = np.diff(ids)
    if not np.all((step > 0) | ((step == 0) & (times[1:] >= times[:-1]))):
        order = _stable_order(ids, times, ranks)
        ids, times = ids[order], times[order]
        step = np.diff(ids)
    first = np.empty(len(ids), dtype=bool)
    first[0] = True
    np.not_equal(step, 0, out=first[1:])
    first[1:] |= times[1:] != times[:-1]
    return order, ids, times, first


def _stable_order(ids: np.ndarray, times: np.ndarray, ranks: TimeRanks | None = None):
    """Stable argsort [N] by (id code, time): one sort of unique int64 keys, several times
    faster than ``np.lexsort`` on a million rows. ``ranks``: the times' ranks, if known."""
    n = len(ids)
    if ranks is None:
        rank = np.unique(times, return_inverse=True)[1]  # [N]
    else:
        rank = ranks.ranks()
    n_times, n_ids = int(rank.max()) + 1, int(ids.max()) + 1
    if n_ids * n_times * n >= 2**62:
        return np.lexsort((times, ids))
    key = (ids.astype(np.int64) * n_times + rank) * n + np.arange(n)  # unique: row breaks ties
    return np.argsort(key)


def merge_rows(ids, times, values, ctx: MergeContext, ranks: TimeRanks | None = None):
    """Wide rows → sorted by (id, time), rows with the same (id, time) merged per channel.

    Returns ids [R], times [R], values [R, C] and the observed mask [R, C].
    """
    order, ids, times, first = _by_time(ids, times, ranks)
    rows = np.arange(len(ids)) if order is None else order
    if order is not None:
        values = values[order]
    observed = ~np.isnan(values)  # [R, C]
    if first.all():
        return ids, times, values, observed
    r, c = np.nonzero(observed)  # every observed cell, in (id, time) order
    return to_grid(ids[r], times[r], c, values[r, c], rows[r], ctx)


def to_grid(ids, times, chan, vals, rows, ctx: MergeContext, ranks: TimeRanks | None = None):
    """Observed cells (id, time, channel, value) [N] → one row per (id, time).

    Returns ids [R], times [R], values [R, C] (NaN where not observed) and the observed
    mask [R, C], sorted by (id, time). Several values for one cell are merged by
    ``ctx.duplicates``; ``rows`` [N] are the cells' source rows, for error messages (None:
    row i is cell i).
    """
    order, ids, times, first_of_key = _by_time(ids, times, ranks)
    if order is not None:
        chan, vals = chan[order], vals[order]
        rows = order if rows is None else rows[order]
    heads = np.flatnonzero(first_of_key)  # [R] first cell of each output row
    key = np.cumsum(first_of_key) - 1  # [N] output row of each cell
    n_chan = len(ctx.names)
    out = np.full((len(heads), n_chan), np.nan)  # [R, C]
    cell = key * n_chan + chan
    flat = out.reshape(-1)
    flat[cell] = vals
    observed = np.zeros(out.shape, dtype=bool)  # [R, C]
    observed.reshape(-1)[cell] = True
    if np.count_nonzero(observed) != len(cell):  # some cell was written twice
        if rows is None:
            rows = np.arange(len(ids))
        by_cell = np.argsort(cell, kind="stable")  # keeps file order within a cell
        cell, vals, rows = cell[by_cell], vals[by_cell], rows[by_cell]
        first = np.r_[True, cell[1:] != cell[:-1]]
        group = np.cumsum(first) - 1

        def conflict(g: int):
            members = np.flatnonzero(group == g)
            where = ", ".join(ctx.src.row(int(rows[m])) for m in members[:3])
            k, c = divmod(int(cell[members[0]]), n_chan)
            i = heads[k]
            raise LatentODEError(
                "conflicting duplicate rows for series "
                f"{as_python(ctx.id_values[ids[i]])!r} at time "
                f"{ctx.time(times[i])}, channel {ctx.names[c]!r}: values "
                f"{', '.join(f'{v:g}' for v in vals[members[:3]])} ({where}). Remove the "
                "duplicates or pass duplicates='mean', 'first' or 'last'."
            )

        flat[cell[first]] = _reduce_duplicates(vals, group, ctx.duplicates, conflict)
    return ids[heads], times[heads], out, observed


def _reduce_duplicates(vals: np.ndarray, group: np.ndarray, policy: str, on_conflict) -> np.ndarray:
    """Values [N] in sorted groups [N] → one value per group under ``policy``."""
    n = int(group[-1]) + 1
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lo = np.minimum.reduceat(vals, starts)
    hi = np.maximum.reduceat(vals, starts)
    conflict = np.flatnonzero(lo != hi)
    if conflict.size and policy == "error":
        on_conflict(int(conflict[0]))
    if policy == "mean":
        count = np.bincount(group, minlength=n)
        mean = np.bincount(group, weights=vals, minlength=n) / count
        over = ~np.isfinite(mean)  # the sum overflowed (values near 1e308): divide first
        if over.any():
            mean[over] = np.bincount(group, weights=vals / count[group], minlength=n)[over]
        return mean
    if policy == "last":
        ends = np.r_[starts[1:], len(vals)] - 1
        return vals[ends]
    return vals[starts]  # "first", or "error" with no conflict (all equal)


def per_series_constant(col, codes, rows, name, ctx: MergeContext) -> np.ndarray:
    """Per-row values [N] (series ``codes`` [N]) that must agree within a series → [K].

    NaN means unknown and is ignored; ``rows`` [N] are the source rows (None: 0..N-1).
    """
    out = np.full(len(ctx.id_values), np.nan)
    obs = ~np.isnan(col)
    if not obs.any():
        return out
    lo = np.full(len(out), np.inf)
    hi = np.full(len(out), -np.inf)
    np.minimum.at(lo, codes[obs], col[obs])
    np.maximum.at(hi, codes[obs], col[obs])
    varies = np.flatnonzero(np.isfinite(lo) & (lo != hi))
    if varies.size:
        k = int(varies[0])
        pos = int(np.flatnonzero(obs & (codes == k) & (col != lo[k]))[0])
        row = ctx.src.row(int(pos if rows is None else rows[pos]))
        raise LatentODEError(
            f"{name!r} must be constant within a series, but series "
            f"{as_python(ctx.id_values[k])!r} "
            f"has values {lo[k]:g} and {hi[k]:g} (e.g. {row}). Make it one value per series."
        )
    has = np.isfinite(lo)
    out[has] = lo[has]
    return out
