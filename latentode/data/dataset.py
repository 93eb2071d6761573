"""The series container: irregularly-sampled multivariate series, each on its own clock."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError


@dataclass(frozen=True, eq=False)
class Series:
    """One series on its own time stamps.

    Attributes:
        id: the series' id as the user wrote it.
        times: float64 [T], strictly increasing, in the dataset's time unit.
        values: float64 [T, C]; NaN wherever ``mask`` is False.
        mask: bool [T, C]; True where a channel was observed.
        static: float64 [S] static covariates (NaN = unknown), or None.
        label: a per-series label (e.g. in-hospital death, 0/1), or None.
    """

    id: Hashable
    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    static: np.ndarray | None = None
    label: float | None = None

    def __len__(self) -> int:
        return len(self.times)

    @property
    def n_observed(self) -> int:
        """Number of observed values (time, channel pairs)."""
        return int(self.mask.sum())

    def take(self, index: np.ndarray) -> Series:
        """The same series restricted to the time points ``index`` (bool [T] or int [K])."""
        return replace(
            self, times=self.times[index], values=self.values[index], mask=self.mask[index]
        )

    def __repr__(self) -> str:
        return f"Series(id={self.id!r}, points={len(self)}, observed={self.n_observed})"


def make_series(
    id: Hashable,
    times,
    values,
    mask=None,
    static=None,
    label: float | None = None,
) -> Series:
    """Build a :class:`Series` from array-likes; NaN in ``values`` means not observed.

    ``times`` [T] must be strictly increasing; ``values`` is [T, C] (or [T] for C = 1).
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    values = np.array(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] != times.shape[0]:
        raise LatentODEError(
            f"series {id!r}: {times.shape[0]} times but {values.shape[0]} rows of values."
        )
    obs = ~np.isnan(values)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim == 1:
            mask = mask[:, None]
        if mask.shape != values.shape:
            raise LatentODEError(
                f"series {id!r}: mask has shape {mask.shape} but values {values.shape}."
            )
    mask = obs if mask is None else (mask & obs)
    values[~mask] = np.nan
    if times.size > 1 and not np.all(np.diff(times) > 0):
        raise LatentODEError(f"series {id!r}: times must be strictly increasing.")
    static_arr = None if static is None else np.asarray(static, dtype=np.float64).reshape(-1)
    label_val = None if label is None or pd.isna(label) else float(label)
    return Series(id, times, values, mask, static_arr, label_val)


@dataclass(frozen=True)
class _Meta:
    channels: tuple[str, ...]
    time_axis: TimeAxis = field(default_factory=TimeAxis)
    static_names: tuple[str, ...] = ()
    label_name: str | None = None
    id_name: str = "id"
    time_name: str = "time"
    truth: dict | None = None
    variable_name: str = "variable"
    value_name: str = "value"


class SeriesDataset(Sequence):
    """A collection of irregularly-sampled series sharing channel names and a time unit.

    ``ds[i]`` is the i-th :class:`Series` (a slice, a list of positions or a boolean
    mask gives a dataset, so scikit-learn's splitters can index it); ``ds.loc[id]``
    finds a series by id. Subsets keep the metadata, including
    ``truth`` (keyed by series id) for synthetic data. Build one with :func:`latentode.read_csv`,
    :func:`latentode.from_dataframe` or a generator in :mod:`latentode.datasets`.
    """

    def __init__(
        self,
        series: Sequence[Series],
        channels: Sequence[str],
        time_axis: TimeAxis | None = None,
        static_names: Sequence[str] = (),
        label_name: str | None = None,
        id_name: str = "id",
        time_name: str = "time",
        truth: dict | None = None,
        variable_name: str = "variable",
        value_name: str = "value",
    ):
        self._series = list(series)
        self._meta = _Meta(
            tuple(str(c) for c in channels),
            time_axis or TimeAxis(),
            tuple(str(s) for s in static_names),
            label_name,
            id_name,
            time_name,
            truth,
            variable_name,
            value_name,
        )
        clash = set(self._meta.channels) & set(self._meta.static_names)
        if clash:
            raise LatentODEError(
                f"{sorted(clash)} is both a channel and a static covariate; rename one."
            )
        self._positions = {s.id: i for i, s in enumerate(self._series)}
        if len(self._positions) != len(self._series):
            raise LatentODEError("series ids must be unique within a dataset.")
        for s in self._series:
            if s.values.shape[1:] != (len(self.channels),):
                raise LatentODEError(
                    f"series {s.id!r} has {s.values.shape[1]} channels, dataset has "
                    f"{len(self.channels)} ({', '.join(self.channels)})."
                )

    # ---- metadata ---------------------------------------------------------------
    @property
    def channels(self) -> tuple[str, ...]:
        return self._meta.channels

    @property
    def time_axis(self) -> TimeAxis:
        return self._meta.time_axis

    @property
    def time_unit(self) -> str:
        return self._meta.time_axis.unit

    @property
    def static_names(self) -> tuple[str, ...]:
        return self._meta.static_names

    @property
    def label_name(self) -> str | None:
        return self._meta.label_name

    @property
    def id_name(self) -> str:
        return self._meta.id_name

    @property
    def time_name(self) -> str:
        return self._meta.time_name

    @property
    def truth(self) -> dict | None:
        """Ground truth of a synthetic dataset (see :mod:`latentode.datasets`), else None."""
        return self._meta.truth

    @property
    def ids(self) -> list:
        return [s.id for s in self._series]

    @property
    def has_labels(self) -> bool:
        return self.label_name is not None and any(s.label is not None for s in self._series)

    @property
    def n_observed(self) -> int:
        """Total number of observed values."""
        return sum(s.n_observed for s in self._series)

    def with_series(self, series: Sequence[Series]) -> SeriesDataset:
        """A dataset with the same metadata holding ``series``."""
        out = SeriesDataset.__new__(SeriesDataset)
        out._series = list(series)
        out._meta = self._meta
        out._positions = {s.id: i for i, s in enumerate(out._series)}
        return out

    def on_time_axis(self, axis: TimeAxis, factor: float = 1.0) -> SeriesDataset:
        """The same series on ``axis``, their float times multiplied by ``factor`` (see
        :meth:`TimeAxis.expressed_in`)."""
        series = (
            self._series
            if factor == 1.0
            else [replace(s, times=s.times * factor) for s in self._series]
        )
        out = self.with_series(series)
        out._meta = replace(self._meta, time_axis=axis)
        return out

    # ---- sequence protocol ------------------------------------------------------
    def __len__(self) -> int:
        return len(self._series)

    def __iter__(self) -> Iterator[Series]:
        return iter(self._series)

    @property
    def shape(self) -> tuple[int]:
        """``(number of series,)``: a dataset indexes like a 1-d array of series, which is
        how scikit-learn's cross-validation (``GridSearchCV``...) splits it."""
        return (len(self),)

    def __getitem__(self, index):
        if isinstance(index, tuple) and len(index) == 2 and index[1] is Ellipsis:
            index = index[0]  # array[index, ...], as scikit-learn indexes arrays
        if isinstance(index, (int, np.integer)):
            return self._series[index]
        if isinstance(index, slice):
            return self.with_series(self._series[index])
        index = np.asarray(index).reshape(-1)
        if index.dtype == bool:
            if len(index) != len(self):
                raise LatentODEError(
                    f"boolean index of length {len(index)} for a dataset of {len(self)} series."
                )
            index = np.flatnonzero(index)
        return self.with_series([self._series[int(i)] for i in index])

    @property
    def loc(self) -> _ById:
        """Look up series by id: ``ds.loc[id]`` → Series, ``ds.loc[[id1, id2]]`` → dataset."""
        return _ById(self)

    def position(self, id: Hashable) -> int:
        """Position of the series with this id."""
        try:
            return self._positions[id]
        except KeyError:
            shown = ", ".join(map(repr, self.ids[:5])) + (", ..." if len(self) > 5 else "")
            raise LatentODEError(f"no series with id {id!r}; ids here are {shown}.") from None

    def __repr__(self) -> str:
        n_points = sum(len(s) for s in self._series)
        return (
            f"SeriesDataset({len(self)} series, {n_points} time points, "
            f"{self.n_observed} observed values, channels={list(self.channels)}, "
            f"time unit={self.time_unit!r})"
        )

    # ---- splits and tasks -------------------------------------------------------
    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple[SeriesDataset, SeriesDataset]:
        """Split by series into (train, test); ``test_size`` is a fraction or a count."""
        from sklearn.model_selection import train_test_split

        if len(self) < 2:
            raise LatentODEError(f"cannot split a dataset of {len(self)} series; need at least 2.")
        try:
            train_idx, test_idx = train_test_split(
                np.arange(len(self)), test_size=test_size, random_state=seed
            )
        except ValueError as err:
            raise LatentODEError(f"cannot split {len(self)} series: {err}") from None
        return self[np.sort(train_idx)], self[np.sort(test_idx)]

    def subsample(self, frac: float, seed: int = 0) -> tuple[SeriesDataset, SeriesDataset]:
        """Interpolation task: keep a random ``frac`` of each series' time points as context.

        Returns (context, targets): the targets are the time points left out, so every
        observed value is in exactly one of the two. Each series keeps at least one point.
        """
        if not 0.0 < frac <= 1.0:
            raise LatentODEError(f"frac must be in (0, 1], got {frac}.")
        rng = np.random.default_rng(seed)
        context, target = [], []
        for s in self._series:
            n_keep = max(1, round(frac * len(s))) if len(s) else 0
            keep = np.zeros(len(s), dtype=bool)
            keep[rng.choice(len(s), size=n_keep, replace=False)] = True
            context.append(s.take(keep))
            target.append(s.take(~keep))
        return self.with_series(context), self.with_series(target)

    def split_time(
        self, at: float | None = None, frac: float | None = None
    ) -> tuple[SeriesDataset, SeriesDataset]:
        """Extrapolation task: context before a cut, targets from the cut on, per series.

        Give ``at`` (a time in the dataset's own units: a number, or a datetime for
        datetime data) or ``frac`` (the cut at that fraction of each series' own span).
        """
        if (at is None) == (frac is None):
            raise LatentODEError("split_time needs exactly one of at= or frac=.")
        if frac is not None and not 0.0 < frac < 1.0:
            raise LatentODEError(f"frac must be in (0, 1), got {frac}.")
        cut_at = None if at is None else float(self.time_axis.from_user([at], "at")[0])
        if cut_at is not None and np.isnan(cut_at):
            raise LatentODEError(f"split_time(at={at!r}): at must be a time, not missing.")
        context, target = [], []
        for s in self._series:
            if cut_at is not None:
                cut = cut_at
            elif len(s):
                cut = s.times[0] + frac * (s.times[-1] - s.times[0])
            else:
                cut = 0.0
            before = s.times < cut
            context.append(s.take(before))
            target.append(s.take(~before))
        return self.with_series(context), self.with_series(target)

    # ---- pandas -----------------------------------------------------------------
    def to_dataframe(self, format: str = "wide") -> pd.DataFrame:
        """The data as a DataFrame in the user's column names and time units.

        ``format="wide"``: one row per (id, time), one column per channel, NaN where not
        observed. ``format="long"``: one row per observed value with a variable-name and a
        value column (named as in the long input, else ``variable`` and ``value``). Static
        covariates and the label become columns. Reading the result back with the same
        column arguments gives the same data.
        """
        if format not in ("wide", "long"):
            raise LatentODEError(f"format must be 'wide' or 'long', got {format!r}.")
        lengths = np.array([len(s) for s in self._series], dtype=np.int64)
        ids = np.repeat(np.array(self.ids, dtype=object), lengths)
        times = np.concatenate([s.times for s in self._series]) if len(self) else np.zeros(0)
        n_c = len(self.channels)
        values = (
            np.concatenate([s.values for s in self._series]) if len(self) else np.zeros((0, n_c))
        )
        row_series = np.repeat(np.arange(len(self)), lengths)
        time_col = self.time_axis.to_user(times)
        extra: dict[str, np.ndarray] = {}
        if self.static_names:
            static = (
                np.stack(
                    [
                        s.static
                        if s.static is not None
                        else np.full(len(self.static_names), np.nan)
                        for s in self._series
                    ]
                )
                if len(self)
                else np.zeros((0, len(self.static_names)))
            )
            for j, name in enumerate(self.static_names):
                extra[name] = static[row_series, j]
        if self.label_name is not None:
            labels = np.array(
                [np.nan if s.label is None else s.label for s in self._series], dtype=np.float64
            )
            extra[self.label_name] = labels[row_series]
        ids = _restore_id_dtype(ids)
        if format == "wide":
            frame = {self.id_name: ids, self.time_name: time_col}
            frame.update({c: values[:, j] for j, c in enumerate(self.channels)})
            frame.update(extra)
            return pd.DataFrame(frame)
        rows, cols = np.nonzero(~np.isnan(values))
        frame = {
            self.id_name: ids[rows],
            self.time_name: time_col[rows],
            self._meta.variable_name: np.array(self.channels, dtype=object)[cols],
            self._meta.value_name: values[rows, cols],
        }
        frame.update({k: v[rows] for k, v in extra.items()})
        return pd.DataFrame(frame)


def _restore_id_dtype(ids: np.ndarray) -> np.ndarray:
    """Object array of ids → an int/float/str array when all ids share that type."""
    if ids.size and all(isinstance(i, (int, np.integer)) for i in ids):
        return ids.astype(np.int64)
    if ids.size and all(isinstance(i, str) for i in ids):
        return ids.astype(str)
    if ids.size and all(isinstance(i, (float, np.floating)) for i in ids):
        return ids.astype(np.float64)
    return ids


class _ById:
    def __init__(self, ds: SeriesDataset):
        self._ds = ds

    def __getitem__(self, key):
        if isinstance(key, (list, tuple, np.ndarray, pd.Index)):
            return self._ds[[self._ds.position(k) for k in key]]
        return self._ds[self._ds.position(key)]
