"""Query-time normalisation: the forms of ``times=``, the ``horizon`` check, argument checks.

``predict``, ``sample``, ``latent`` and ``intensity`` take ``times`` as one array for
every series, a dict ``{id: array}``, a DataFrame of (id, time) rows, or None (the
context's own times). :func:`query_targets` turns any of them into one empty
:class:`~latentode.data.dataset.Series` per context series holding its query times
(float, in the dataset's unit), or raises naming the series and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from latentode.data.dataset import Series, SeriesDataset
from latentode.data.scaling import Scaler
from latentode.errors import LatentODEError

_ARRAY_TYPES = (
    list,
    tuple,
    range,
    np.ndarray,
    pd.Series,
    pd.Index,
    pd.api.extensions.ExtensionArray,
)


def query_targets(
    ds: SeriesDataset,
    times,
    id_col: str,
    time_col: str,
    scaler: Scaler,
    horizon: float | None = None,
) -> list[Series]:
    """The query times per series of ``ds``, as empty Series (float times in ``ds``'s unit).

    Args:
        ds: the context (already conformed to the model).
        times: one array for every series, a dict ``{id: array}``, a DataFrame with
            ``id_col`` and ``time_col`` columns, or None (the context's own times);
            times are the user's numbers or datetimes.
        scaler: the model's scaler (its time scale is one training span).
        horizon: refuse query times more than ``horizon`` training spans before or after
            a series' observed context, and contexts that span more (None: no limit).

    Raises:
        LatentODEError: unknown ids, a single string, non-times, NaN or infinite times,
            datetimes out of range, or times beyond ``horizon``.
    """
    n_c = len(ds.channels)
    axis = ds.time_axis
    if isinstance(times, (str, bytes)):
        raise LatentODEError(
            f"times is a single string ({times!r:.40}); pass a list of times, e.g. "
            f"times=[{times!r:.40}], a dict {{id: times}} or a DataFrame of "
            f"({id_col!r}, {time_col!r}) rows."
        )

    def model_times(sid, t_user) -> np.ndarray:
        """Series ``sid``'s query times, checked, sorted and unique, in ``ds``'s unit."""
        t_user = _query_array(t_user, sid)
        what = f"times for series {sid!r}"
        t = np.zeros(0) if t_user.size == 0 else np.unique(axis.from_user(t_user, what))
        if np.isnan(t).any() or np.isinf(t).any():
            raise LatentODEError(f"{what} contain missing or infinite values.")
        axis.check_representable(t, what)
        return t

    def blank(sid, t: np.ndarray) -> Series:
        empty = np.full((len(t), n_c), np.nan)
        return Series(sid, t, empty, np.zeros((len(t), n_c), dtype=bool))

    def query(sid, t_user) -> Series:
        return blank(sid, model_times(sid, t_user))

    if times is None:
        targets = [query(s.id, axis.to_user(s.times)) for s in ds]
    elif isinstance(times, pd.DataFrame):
        check_times_frame(times, id_col, time_col)
        groups = {k: g[time_col].to_numpy() for k, g in times.groupby(id_col, sort=False)}
        _check_known(groups, ds, "the times DataFrame has")
        targets = [query(s.id, groups.get(s.id, [])) for s in ds]
    elif isinstance(times, Mapping):
        _check_known(times, ds, "times has")
        targets = [query(s.id, times.get(s.id, [])) for s in ds]
    elif len(ds):  # one array for every series: read and checked once
        shared = model_times(ds[0].id, times)
        shared.setflags(write=False)  # one array in every target
        targets = [blank(s.id, shared) for s in ds]
    else:
        targets = []
    if horizon is not None:
        check_horizon(ds, targets, horizon, scaler)
    return targets


def check_times_frame(times: pd.DataFrame, id_col: str, time_col: str) -> None:
    """A times DataFrame needs the id and time columns and an id on every row."""
    missing = [c for c in (id_col, time_col) if c not in times.columns]
    if missing:
        raise LatentODEError(
            f"the times DataFrame needs columns {id_col!r} and {time_col!r}; it has "
            f"{list(times.columns)}."
        )
    no_id = times[id_col].isna().to_numpy()
    if no_id.any():
        row = times.index[np.flatnonzero(no_id)[0]]
        row = row.item() if isinstance(row, np.generic) else row
        raise LatentODEError(
            f"the times DataFrame has no id in column {id_col!r} in the row with index "
            f"{row!r} ({int(no_id.sum())} row(s)); give every row the id of a context series."
        )


def check_horizon(ds: SeriesDataset, targets: list[Series], horizon: float, scaler: Scaler):
    """Refuse query times beyond ``horizon`` training spans from a series' observed context,
    and contexts that span more than that (see ``predict``'s ``horizon``)."""
    unit, axis = ds.time_axis.unit, ds.time_axis
    span = float(scaler.inverse_times(1.0, 0.0))  # one training span, in data units
    limit = float(scaler.inverse_times(horizon, 0.0))

    def show(t: float) -> str:
        user = axis.to_user_exact(np.array([t]))[0]
        return str(user) if axis.is_datetime else f"{float(user):g}"

    how = (
        f"horizon={horizon:g} training spans ({limit:.4g} {unit}; one span is the longest "
        f"training series, {span:.4g} {unit})"
    )
    advice = "pass horizon= with a larger number (or None) to predict it anyway"
    for s, tgt in zip(ds, targets):
        seen = s.times[s.mask.any(axis=1)]
        lo, hi = float(seen[0]), float(seen[-1])
        if hi - lo > limit:
            raise LatentODEError(
                f"context series {s.id!r} spans {show(lo)} to {show(hi)}, "
                f"{(hi - lo) / span:.3g} training spans, more than {how}. Check its "
                f"times for a wrong value, or {advice}."
            )
        if len(tgt):
            far = np.maximum(lo - tgt.times, tgt.times - hi)  # > 0 outside the context
            i = int(np.argmax(far))
            if far[i] > limit:
                side = "before" if tgt.times[i] < lo else "after"
                raise LatentODEError(
                    f"time {show(tgt.times[i])} for series {s.id!r} lies "
                    f"{far[i] / span:.3g} training spans {side} its context "
                    f"({show(lo)} to {show(hi)}); predictions stop at {how}. Check the time, "
                    f"or {advice} (the solver's work grows with the distance)."
                )


# ---- checks of the other arguments --------------------------------------------------------
def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A real number (int or float, infinity allowed), not a bool and not NaN."""
    ok = isinstance(value, (int, float, np.integer, np.floating))
    return ok and not isinstance(value, (bool, np.bool_)) and not np.isnan(value)


def check_positive_int(value, name: str) -> None:
    if not (is_int(value) and value >= 1):
        raise LatentODEError(f"{name} must be a whole number >= 1, got {value!r}.")


def check_seed(seed) -> None:
    if seed is not None and not is_int(seed):
        raise LatentODEError(f"seed must be an int or None, got {seed!r}.")


def check_horizon_value(horizon) -> None:
    if horizon is not None and not (is_real(horizon) and horizon > 0):
        raise LatentODEError(
            f"horizon must be a positive number of training spans or None, got {horizon!r}."
        )


def check_quantiles(quantiles) -> tuple[float, ...]:
    """``quantiles`` → a tuple of floats in (0, 1) (empty for None); anything else raises."""
    if quantiles is None:
        return ()
    if isinstance(quantiles, (str, bytes, Mapping)) or not isinstance(quantiles, Iterable):
        raise LatentODEError(
            f"quantiles must be a list of numbers between 0 and 1, e.g. (0.05, 0.95), "
            f"got {quantiles!r}."
        )
    out = []
    for q in quantiles:
        if not (is_real(q) and 0.0 < q < 1.0):
            raise LatentODEError(f"quantiles must lie strictly between 0 and 1, got {q!r}.")
        out.append(float(q))
    return tuple(out)


def _query_array(value, sid) -> np.ndarray:
    """One series' query times (an array, a list or one time) → a 1-d array; else raises."""
    where = f"times for series {sid!r}"
    if isinstance(value, (str, bytes)):
        raise LatentODEError(
            f"{where} is a single string ({value!r:.40}); pass a list of times, e.g. "
            f"[{value!r:.40}]."
        )
    if not (isinstance(value, _ARRAY_TYPES) or pd.api.types.is_scalar(value)) or value is None:
        raise LatentODEError(
            f"{where} must be an array or list of times (or one time), got "
            f"{type(value).__name__} {value!r:.60}."
        )
    try:
        arr = np.atleast_1d(np.asarray(value))
        shape = arr.shape
    except ValueError:  # ragged nested lists
        arr, shape = None, "ragged"
    if arr is None or arr.ndim != 1:
        raise LatentODEError(f"{where} must be a flat list of times, got shape {shape}.")
    kinds = {type(v) for v in arr} if arr.dtype == object else set()
    if arr.dtype.kind in "bc" or any(issubclass(k, (bool, np.bool_, complex)) for k in kinds):
        raise LatentODEError(
            f"{where} holds {'booleans' if arr.dtype.kind == 'b' else 'non-real values'} "
            f"({arr[:3].tolist()}...); pass real times."
        )
    return arr


def _check_known(by_id: Mapping, ds: SeriesDataset, what: str) -> None:
    """Raise if ``by_id`` has ids that are not series of ``ds``."""
    unknown = [k for k in by_id if k not in set(ds.ids)]
    if unknown:
        shown = ", ".join(repr(i) for i in ds.ids[:3])
        raise LatentODEError(
            f"{what} ids not in the context: {unknown[:5]} (the context's ids are e.g. "
            f"{shown}; an id must match in type too: the text '7' is not the number 7)."
        )
