"""How a dataset's float times map to the user's own time column (numbers or datetimes).

Inside latentode every time is a float64 in ``unit``. When the user's column held
datetimes, the floats count ``unit`` since ``origin`` and :meth:`TimeAxis.to_user`
turns them back into datetimes (same time zone, rounded to the resolution the input
had), so output comes back in the user's units.
"""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from latentode.errors import LatentODEError

#: Length of one unit in nanoseconds, for datetime conversion.
UNIT_NANOSECONDS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_RESOLUTIONS = ("d", "h", "min", "s", "ms", "us", "ns")


@dataclass(frozen=True)
class TimeAxis:
    """The unit of a dataset's float times and, for datetime input, how to get datetimes back.

    Attributes:
        unit: unit of the float times, one of ``UNIT_NANOSECONDS`` (a free label when
            the input times were plain numbers).
        origin: ISO timestamp that float time 0 stands for, or None for numeric input.
        tz: time zone name of the input datetimes, or None (naive).
        resolution: the finest unit the input datetimes used ("s" for whole seconds);
            datetimes coming back are rounded to it so round trips are exact.
    """

    unit: str = "h"
    origin: str | None = None
    tz: str | None = None
    resolution: str = "ns"

    @property
    def is_datetime(self) -> bool:
        return self.origin is not None

    def to_dict(self) -> dict:
        return {
            "unit": self.unit,
            "origin": self.origin,
            "tz": self.tz,
            "resolution": self.resolution,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TimeAxis:
        return cls(**d)

    def to_user(self, times: np.ndarray) -> np.ndarray | pd.DatetimeIndex:
        """Float times [N] in ``unit`` → the user's representation (floats or datetimes)."""
        times = np.asarray(times, dtype=np.float64)
        if not self.is_datetime:
            return times
        step = UNIT_NANOSECONDS[self.resolution]
        ns = np.round(times * UNIT_NANOSECONDS[self.unit] / step).astype(np.int64) * step
        out = pd.to_datetime(ns + pd.Timestamp(self.origin).value, unit="ns")
        if self.tz is not None:
            out = out.tz_localize("UTC").tz_convert(self.tz)
        return out

    def to_user_exact(self, times: np.ndarray) -> np.ndarray | pd.DatetimeIndex:
        """Float times [N] → the user's representation, each datetime exactly as requested.

        :meth:`to_user` rounds datetimes to the data's resolution, which is right for the
        data but would move a requested 01:30 to 02:00 for hourly data: here the
        resolution is the coarsest one that still holds every time exactly.
        """
        times = np.asarray(times, dtype=np.float64)
        if not self.is_datetime or times.size == 0:
            return self.to_user(times)
        ns = times * UNIT_NANOSECONDS[self.unit]  # since the origin
        tol = 0.5 + 8 * np.finfo(np.float64).eps * np.abs(ns)  # float error of the times
        for res in sorted(UNIT_NANOSECONDS, key=UNIT_NANOSECONDS.__getitem__, reverse=True):
            step = UNIT_NANOSECONDS[res]
            if np.all(np.abs(ns - np.round(ns / step) * step) <= tol):
                break
        return replace(self, resolution=res).to_user(times)

    def expressed_in(self, target: TimeAxis) -> tuple[TimeAxis, float]:
        """This axis' float times in ``target``'s unit: (the axis, factor to multiply by).

        Datetimes keep their instants (hours become minutes times 60); plain numbers
        carry no unit of their own, so they are read as ``target``'s (factor 1).
        """
        if not self.is_datetime:
            return target, 1.0
        factor = UNIT_NANOSECONDS[self.unit] / UNIT_NANOSECONDS[target.unit]
        return replace(self, unit=target.unit), factor

    def check_representable(self, times: np.ndarray, what: str) -> None:
        """Refuse float times [N] that no datetime can hold (over 292 years from the origin).

        Raises:
            LatentODEError: naming ``what`` and how far the times are.
        """
        times = np.asarray(times, dtype=np.float64)
        if not self.is_datetime or times.size == 0:
            return
        ns = np.abs(times).max() * UNIT_NANOSECONDS[self.unit]
        if ns >= 2**63:
            raise LatentODEError(
                f"{what} include a datetime about {ns / 3.156e16:.0f} years from the data "
                f"({self.origin}), more than the 292 years datetimes can span; pass times "
                "closer to the data."
            )

    def from_user(self, values, what: str = "times") -> np.ndarray:
        """The user's times (floats or datetimes, same kind as at fit) → float64 [N] in ``unit``.

        Missing values (None, NaN, NaT) give NaN. Naive datetimes for a dataset whose times
        had a time zone are read in that zone.

        Raises:
            LatentODEError: for values of the other kind (datetimes for numeric times,
                numbers or text that is no date for datetime times), and datetimes
                outside the years 1678-2261 that pandas holds in nanoseconds.
        """
        try:
            return self._from_user(values, what)
        except (pd.errors.OutOfBoundsDatetime, OverflowError) as err:
            raise LatentODEError(
                f"{what}: a datetime lies outside the years 1678-2261 that pandas can hold "
                f"in nanoseconds ({str(err).splitlines()[0][:80]}); pass times in that range."
            ) from None

    def _from_user(self, values, what: str) -> np.ndarray:
        if np.ndim(values) == 1 and len(values) == 0:
            return np.zeros(0, dtype=np.float64)
        if isinstance(values, (pd.Series, pd.Index)):
            series = pd.Series(values.array)
        else:
            series = pd.Series(np.asarray(values).reshape(-1))
        present = series.notna().to_numpy()
        dtype = series.dtype
        is_object = pd.api.types.is_object_dtype(dtype)
        if self.is_datetime:
            dt = None
            if pd.api.types.is_datetime64_any_dtype(dtype):
                dt = series
            elif not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                numbers = is_object and any(
                    isinstance(v, (int, float, np.number)) for v in series[present]
                )
                if not numbers:
                    dt = self._parse_datetimes(series)
            if dt is None or (dt.isna().to_numpy() & present).any():
                bad = series[present].iloc[0] if dt is None else series[dt.isna() & present].iloc[0]
                raise LatentODEError(
                    f"{what}: could not read {_plain(bad)!r} as a datetime; this dataset's times "
                    "are datetimes, so pass datetimes or ISO date strings."
                )
            if getattr(dt.dt, "tz", None) is None and self.tz is not None:
                try:
                    dt = dt.dt.tz_localize(self.tz)
                except (ValueError, TypeError) as err:
                    raise LatentODEError(
                        f"{what}: naive datetimes could not be placed in the dataset's time zone "
                        f"{self.tz} ({err}); pass times with a UTC offset."
                    ) from None
            valid = dt.notna().to_numpy()
            out = np.full(len(dt), np.nan)
            ns = _datetime_ns_utc(dt[valid])
            origin = pd.Timestamp(self.origin).value
            since = ns - origin  # exact, unless it wraps around (over ~292 years apart)
            wrapped = np.where(ns < 0, (origin >= 0) & (since >= 0), (origin < 0) & (since < 0))
            if wrapped.any():
                since = np.where(wrapped, ns.astype(np.float64) - float(origin), since)
            out[valid] = since / UNIT_NANOSECONDS[self.unit]
            return out
        datetime_like = (np.datetime64, np.timedelta64, datetime.date, datetime.timedelta)
        if (
            pd.api.types.is_datetime64_any_dtype(dtype)
            or pd.api.types.is_timedelta64_dtype(dtype)
            or (is_object and any(isinstance(v, datetime_like) for v in series[present]))
        ):
            raise LatentODEError(
                f"{what}: this dataset's times are numbers (in {self.unit}), not datetimes; "
                "pass numbers."
            )
        arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(arr) & present
        if bad.any():
            raise LatentODEError(
                f"{what}: could not read {_plain(series[bad].iloc[0])!r} as a number; this "
                f"dataset's times are numbers (in {self.unit})."
            )
        return arr

    def _parse_datetimes(self, series: pd.Series) -> pd.Series:
        """Datetime-like values → datetimes (NaT where unreadable); several offsets → UTC."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pd.to_datetime(series, errors="coerce", format="mixed")
            except (ValueError, TypeError, OverflowError):
                # several UTC offsets: each value on its own, naive ones in self.tz
                stamps = pd.Series([self._timestamp_utc(v) for v in series], dtype=object)
                return pd.to_datetime(stamps, utc=True)

    def _timestamp_utc(self, value) -> pd.Timestamp:
        """One datetime-like → a UTC Timestamp (naive: in ``tz``), NaT if unreadable."""
        try:
            ts = pd.Timestamp(value)
            if ts is pd.NaT:
                return ts
            if ts.tz is None:
                ts = ts.tz_localize(self.tz or "UTC")
            return ts.tz_convert("UTC")
        except (ValueError, TypeError, OverflowError):
            return pd.NaT


def _plain(value):
    """numpy scalar → Python scalar, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _datetime_ns_utc(dt: pd.Series) -> np.ndarray:
    """Datetime Series → int64 nanoseconds since the epoch, in UTC for tz-aware input."""
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    return dt.astype("datetime64[ns]").to_numpy().astype(np.int64)


def datetimes_to_float(dt: pd.Series, unit: str) -> tuple[np.ndarray, TimeAxis]:
    """Datetime Series (NaT allowed) → (float times in ``unit`` since the first day, TimeAxis).

    The origin is midnight of the earliest timestamp, so float times stay small and exact.
    """
    if unit not in UNIT_NANOSECONDS:
        raise LatentODEError(
            f"time_unit={unit!r} is not a known unit; use one of {sorted(UNIT_NANOSECONDS)}."
        )
    tz = None if getattr(dt.dt, "tz", None) is None else str(dt.dt.tz)
    valid = dt.notna().to_numpy()
    ns = np.zeros(len(dt), dtype=np.int64)
    ns[valid] = _datetime_ns_utc(dt[valid])
    origin_ns = int(ns[valid].min()) if valid.any() else 0
    origin_ns -= origin_ns % UNIT_NANOSECONDS["d"]
    resolution = "ns"
    for res in _RESOLUTIONS:
        if np.all(ns[valid] % UNIT_NANOSECONDS[res] == 0):
            resolution = res
            break
    out = (ns - origin_ns).astype(np.float64) / UNIT_NANOSECONDS[unit]
    out[~valid] = np.nan
    origin = pd.Timestamp(origin_ns, unit="ns").isoformat()
    return out, TimeAxis(unit=unit, origin=origin, tz=tz, resolution=resolution)
