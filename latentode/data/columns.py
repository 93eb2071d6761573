"""Which columns of a table say what: the column specification, validated once.

:class:`ColumnSpec` is what :func:`~latentode.read_csv`, :func:`~latentode.from_dataframe`,
:func:`~latentode.iter_csv`, ``fit`` and the command line take as their column
arguments (``id_col=``, ``time_col=``, ``format=``...). Building one checks the
arguments themselves (known format, unit and duplicate policy, distinct role columns,
``label_col`` or ``labels`` but not both); the checks against a table's contents happen
when it is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import pandas as pd

from latentode.data.time_axis import UNIT_NANOSECONDS
from latentode.errors import LatentODEError

#: values of ``duplicates=``: what to do with several values for one (id, time, channel)
DUPLICATE_POLICIES = ("error", "mean", "first", "last")
FORMATS = ("wide", "long")


@dataclass(frozen=True)
class ColumnSpec:
    """How a table's columns map onto series: ids, times, channels, statics and labels.

    Attributes:
        id_col, time_col: columns with the series id and the time stamp. Times are
            numbers (in any unit; ``time_unit`` labels it) or datetimes (converted to
            floats in ``time_unit`` and converted back on output).
        format: ``"wide"`` (every other column is a channel) or ``"long"`` (one row per
            measurement in ``variable_col`` / ``value_col``).
        variable_col, value_col: the long format's variable-name and value columns.
        channels: keep only these channels (wide: columns, long: variable names), in
            this order; None: every channel.
        static_cols: per-series static covariates (constant within a series; NaN =
            unknown). In long format they may also be variable names.
        label_col: a per-series label column (e.g. mortality 0/1).
        labels: a separate id,label table (CSV path or DataFrame) instead of ``label_col``.
        time_unit: unit of the float times: ns, us, ms, s, min, h (default) or d.
        duplicates: several different values for the same (id, time, channel):
            ``"error"`` (default), ``"mean"``, ``"first"`` or ``"last"``. Rows that
            repeat the same value, or fill different channels, are merged.
        drop_empty: drop series or channels with no observed value (with a warning
            that counts them) instead of raising.

    Raises:
        LatentODEError: for an unknown format, unit or policy, both ``label_col`` and
            ``labels``, a channel named twice, or two roles given the same column.
    """

    id_col: str = "id"
    time_col: str = "time"
    format: str = "wide"
    variable_col: str = "variable"
    value_col: str = "value"
    channels: tuple[str, ...] | None = None
    static_cols: tuple[str, ...] = ()
    label_col: str | None = None
    labels: str | Path | pd.DataFrame | None = field(default=None, compare=False)
    time_unit: str = "h"
    duplicates: str = "error"
    drop_empty: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise LatentODEError(f"format must be 'wide' or 'long', got {self.format!r}.")
        if self.duplicates not in DUPLICATE_POLICIES:
            raise LatentODEError(
                f"duplicates={self.duplicates!r} is not a policy; use one of {DUPLICATE_POLICIES}."
            )
        if self.time_unit not in UNIT_NANOSECONDS:
            raise LatentODEError(
                f"time_unit={self.time_unit!r} is not a known unit; use one of "
                f"{list(UNIT_NANOSECONDS)}."
            )
        if self.label_col is not None and self.labels is not None:
            raise LatentODEError("give either label_col= or labels=, not both.")
        # column names are compared as text (a DataFrame may have integer column names)
        for name in ("id_col", "time_col", "variable_col", "value_col"):
            object.__setattr__(self, name, str(getattr(self, name)))
        if self.label_col is not None:
            object.__setattr__(self, "label_col", str(self.label_col))
        object.__setattr__(self, "static_cols", _names(self.static_cols))
        if self.channels is not None:
            channels = _names(self.channels)
            repeated = sorted({c for c in channels if channels.count(c) > 1})
            if repeated:
                raise LatentODEError(f"channels= names {repeated} more than once; list each once.")
            object.__setattr__(self, "channels", channels)
        roles = self.roles()
        if len(set(roles.values())) < len(roles):
            shown = ", ".join(f"{k}={v!r}" for k, v in roles.items())
            raise LatentODEError(f"{shown}: each must name a different column.")

    def roles(self) -> dict[str, str]:
        """The columns that must be distinct: id and time (and variable, value in long)."""
        roles = {"id_col": self.id_col, "time_col": self.time_col}
        if self.format == "long":
            roles.update(variable_col=self.variable_col, value_col=self.value_col)
        return roles

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The column arguments' names (``id_col``, ``time_col``, ...)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, columns: ColumnSpec | None = None, **arguments) -> ColumnSpec:
        """``columns`` (default: all defaults) with ``arguments`` replaced.

        Raises:
            LatentODEError: for an argument that is not a column argument (the message
                lists the valid ones), or an invalid value.
        """
        unknown = sorted(set(arguments) - set(cls.names()))
        if unknown:
            raise LatentODEError(
                f"unknown column argument(s) {unknown}; the column arguments are "
                f"{', '.join(cls.names())}."
            )
        if columns is not None and not isinstance(columns, ColumnSpec):
            raise LatentODEError(
                f"columns= must be a ColumnSpec, got {type(columns).__name__}; or pass the "
                "column arguments (id_col=, time_col=, ...) by name."
            )
        base = columns if columns is not None else cls()
        return replace(base, **arguments) if arguments else base

    @classmethod
    def take(cls, arguments: dict) -> dict:
        """Remove the column arguments from ``arguments`` (e.g. ``fit``'s keyword
        arguments) and return them."""
        return {k: arguments.pop(k) for k in list(arguments) if k in cls.names()}


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    """One name or a list of names → a tuple of names as text."""
    if isinstance(value, str):
        return (value,)
    return tuple(str(c) for c in value)
