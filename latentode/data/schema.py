"""What a fitted model expects of its data: channels, time axis, statics, column names.

:class:`DataSchema` is taken from the training data at ``fit`` and saved with the
model. :meth:`DataSchema.conform` turns any later input (a context to predict from,
data to evaluate on) into a dataset the model can use, or raises saying what differs:
other channels, times of the other kind, other static covariates, series with nothing
observed. Datetime input in another time unit is converted; everything else is refused
rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import SeriesDataset
from latentode.data.io import as_dataset, from_dataframe
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError


@dataclass(frozen=True)
class DataSchema:
    """The training data's layout, which every later input must match.

    Attributes:
        channels: channel names, in the model's order.
        time_axis: unit of the float times, and for datetime data how to get them back.
        static_names: static covariates, in order.
        label_name: the per-series label's column, or None.
        id_name, time_name: the id and time columns of DataFrames in and out.
    """

    channels: tuple[str, ...]
    time_axis: TimeAxis
    static_names: tuple[str, ...] = ()
    label_name: str | None = None
    id_name: str = "id"
    time_name: str = "time"

    @classmethod
    def of(cls, data: SeriesDataset) -> DataSchema:
        """The schema of ``data`` (the training data)."""
        return cls(
            tuple(data.channels),
            data.time_axis,
            tuple(data.static_names),
            data.label_name,
            data.id_name,
            data.time_name,
        )

    def to_dict(self) -> dict:
        return {
            "channels": list(self.channels),
            "time_axis": self.time_axis.to_dict(),
            "static_names": list(self.static_names),
            "label_name": self.label_name,
            "id_name": self.id_name,
            "time_name": self.time_name,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DataSchema:
        axis = d["time_axis"]
        return cls(
            tuple(d["channels"]),
            axis if isinstance(axis, TimeAxis) else TimeAxis.from_dict(axis),
            tuple(d["static_names"]),
            d["label_name"],
            d["id_name"],
            d["time_name"],
        )

    def columns(self, **overrides) -> ColumnSpec:
        """The column arguments that read a table laid out like the training data
        (``overrides``: e.g. ``format="long"`` or another ``id_col``)."""
        spec = {
            "id_col": self.id_name,
            "time_col": self.time_name,
            "time_unit": self.time_axis.unit,  # datetimes become floats in the model's unit
            "static_cols": self.static_names,
        }
        return ColumnSpec.of(**{**spec, **overrides})

    def conform(self, data, what: str = "context") -> SeriesDataset:
        """``data`` (a dataset, or a DataFrame with the training's columns) as a dataset
        on the model's channels and time unit, every series with an observed value.

        A wide DataFrame must hold exactly the model's channel columns besides the id,
        time, static and label columns: a missing or an unknown column raises, so nothing
        is silently dropped.

        Raises:
            LatentODEError: naming ``what`` and what differs from the training data.
        """
        ds = self._read(data, what)
        self.check_channels(ds, what)
        if len(ds) == 0:
            raise LatentODEError(
                f"{what} has no series; pass at least one series with an observed value."
            )
        if ds.time_axis.is_datetime != self.time_axis.is_datetime:
            kind = "datetimes" if self.time_axis.is_datetime else "numbers"
            raise LatentODEError(
                f"{what} times must be {kind} like the training data's, not "
                f"{'datetimes' if ds.time_axis.is_datetime else 'numbers'}."
            )
        if ds.time_axis.unit != self.time_axis.unit:
            ds = ds.on_time_axis(*ds.time_axis.expressed_in(self.time_axis))
        empty = [s.id for s in ds if s.n_observed == 0]
        if empty:
            raise LatentODEError(
                f"{what} series {empty[:5]} have no observed point; the model needs at least "
                "one observation per series to infer its state."
            )
        if ds.static_names != self.static_names:
            raise LatentODEError(
                f"{what} static covariates {list(ds.static_names)} differ from the training "
                f"data's {list(self.static_names)}."
            )
        return ds

    def check_channels(self, data: SeriesDataset, what: str) -> None:
        """Raise unless ``data`` has the model's channels, in the model's order."""
        have, want = list(data.channels), list(self.channels)
        if have != want:
            missing = [c for c in want if c not in have]
            extra = [c for c in have if c not in want]
            detail = [f"missing {missing}"] if missing else []
            detail += [f"not in the model: {extra}"] if extra else []
            raise LatentODEError(
                f"{what} has channels {have} but the model uses {want} "
                f"({'; '.join(detail) or 'same names, other order'}); read the data with "
                f"channels={want} (in that order), or rename its channels."
            )

    def _read(self, data, what: str) -> SeriesDataset:
        """A dataset as it is; a DataFrame read with the training's column names."""
        if not isinstance(data, pd.DataFrame):
            return as_dataset(data, what)
        columns = self.columns()
        want = list(self.channels)
        absent = [c for c in want if c not in data.columns]
        roles = [columns.id_col, columns.time_col, *columns.static_cols]
        ignore = [self.label_name] if self.label_name else []
        known = {str(c) for c in (*want, *roles, *ignore)}
        extra = [c for c in data.columns if str(c) not in known]
        if absent:
            other = f" It has other column(s) {extra}: rename them." if extra else ""
            raise LatentODEError(
                f"{what} is missing channel column(s) {absent}; the model was trained on "
                f"{want}.{other}"
            )
        if extra:
            raise LatentODEError(
                f"{what} has column(s) {extra} that the model was not trained on (its "
                f"channels are {want}); drop them first, e.g. "
                f"df.drop(columns={extra!r}), so that no data is ignored unseen."
            )
        return from_dataframe(data, columns, channels=want)
