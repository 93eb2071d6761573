"""Value, time and static-covariate scaling, fitted on training series only, with inverses.

A channel whose values are all positive (a concentration, a viral load, an income:
values over orders of magnitude) can be modelled on the log scale: ``log(value)`` is
standardised instead of the value. :func:`choose_log_channels` says which (by name, or
``"auto"``: the strongly right-skewed ones), and :meth:`Scaler.mixture_moments` turns a Gaussian
mixture in model units back into a mean and std in the user's units, exactly for both
kinds of channel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError

#: ``log_scale="auto"``: a channel with all training values positive goes on the log
#: scale when their skewness is at least AUTO_LOG_SKEW and that of their logarithms at
#: most AUTO_LOG_SKEW_AFTER in size (the logs are nearly symmetric: a log-normal shape)
AUTO_LOG_SKEW = 2.0
AUTO_LOG_SKEW_AFTER = 1.0
#: fewer observed training values than this, and "auto" leaves a channel linear
AUTO_LOG_MIN_VALUES = 20

LogScale = bool | str | Sequence[str] | None


def skewness(x: np.ndarray) -> float:
    """The sample skewness ``m3 / m2^1.5`` of the values ``x`` [N] (0 for constant x)."""
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d**3)) / m2**1.5 if m2 > 0 else 0.0


def choose_log_channels(
    stacked: np.ndarray, channels: Sequence[str], log_scale: LogScale
) -> tuple[bool, ...]:
    """Which channels to model on the log scale, from the training values ``stacked``
    [N, C] (NaN: not observed).

    ``log_scale``: ``"auto"`` (the skewness rule of :data:`AUTO_LOG_SKEW`), ``False`` or
    None (none), ``True`` (every channel) or a list of channel names. A channel named
    explicitly must have only positive training values.
    """
    n_c = stacked.shape[1]
    if log_scale is None or log_scale is False:
        return (False,) * n_c
    if isinstance(log_scale, str) and log_scale == "auto":
        chosen = []
        for j in range(n_c):
            x = stacked[:, j]
            x = x[~np.isnan(x)]
            ok = x.size >= AUTO_LOG_MIN_VALUES and bool(np.all(x > 0))
            chosen.append(
                ok
                and skewness(x) >= AUTO_LOG_SKEW
                and abs(skewness(np.log(x))) <= AUTO_LOG_SKEW_AFTER
            )
        return tuple(chosen)
    if log_scale is True:
        names = list(channels)
    elif isinstance(log_scale, str) or not isinstance(log_scale, Sequence):
        raise LatentODEError(
            f"log_scale={log_scale!r} is not understood; use 'auto', True, False or a list "
            f"of channel names (channels: {list(channels)})."
        )
    else:
        names = list(log_scale)
    unknown = [c for c in names if c not in channels]
    if unknown:
        raise LatentODEError(
            f"log_scale names channel(s) {unknown} that the data does not have; its "
            f"channels are {list(channels)}."
        )
    for c in names:
        x = stacked[:, list(channels).index(c)]
        lowest = np.nanmin(x) if np.any(~np.isnan(x)) else np.nan
        if not lowest > 0:
            raise LatentODEError(
                f"log_scale: channel {c!r} has the value {lowest:g} in the training data, "
                "and a log scale needs values > 0; leave it out of log_scale."
            )
    return tuple(c in names for c in channels)


def _log_columns(values: np.ndarray, log: np.ndarray) -> np.ndarray:
    """A float64 copy of ``values`` [..., C] with the channels where ``log`` [C] is True
    replaced by their logarithms (values checked positive by the caller)."""
    out = np.array(values, dtype=np.float64)
    out[..., log] = np.log(out[..., log])
    return out


#: where a series' model clock starts (the ``origin`` of :class:`~latentode.LatentODE`):
#: a time shared by the training data, or each series' first context time
ORIGINS = ("shared", "context")
#: series start together when at least half of them start within this share of the
#: longest span after the earliest start (see :func:`common_start`)
TOGETHER_WITHIN = 0.25


def common_start(data: SeriesDataset, time_scale: float) -> float | None:
    """The earliest first time of ``data``'s series if the series start together (at
    least half of them within :data:`TOGETHER_WITHIN` x ``time_scale`` of it: at a dose,
    a birth, an admission), else None: series in calendar time that start apart share
    no moment a common origin could stand for."""
    first = np.array([s.times[0] for s in data if len(s)], dtype=np.float64)
    start = first.min()
    together = np.mean(first - start <= TOGETHER_WITHIN * time_scale) >= 0.5
    return float(start) if together else None


@dataclass(frozen=True)
class Scaler:
    """Standardises each channel (or its logarithm) and rescales time, with exact inverses.

    ``model_value = (g(value) - mean[c]) / std[c]`` with ``g = log`` for a log-scale
    channel and the identity otherwise, and ``model_time = (time - origin) / time_scale``,
    where ``origin`` is each series' clock origin (:meth:`series_origin`). Stored as plain
    numbers so a saved model can undo it.

    Attributes:
        mean, std: per-channel mean and standard deviation of the observed training
            values, or of their logarithms (std is 1.0 for a constant channel).
        time_scale: the longest training series' span, in the dataset's time unit
            (1.0 when no series spans any time), so training times lie in [0, 1].
        log: per channel, True where the channel is modelled on the log scale; None:
            no channel is.
        channels: the channel names, for error messages (None: positions instead).
        time_origin: the shared clock origin, the earliest first time of the training
            series when they start together (:func:`common_start`; dataset time unit);
            None: every series' clock starts at its first context time (see
            :meth:`series_origin`).
        nonnegative: per channel, True where every observed training value was >= 0 (a
            concentration, a count, a weight): predictions there are bounded below by 0
            (:meth:`bound`); None: no channel is.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    time_scale: float = 1.0
    log: tuple[bool, ...] | None = None
    channels: tuple[str, ...] | None = None
    time_origin: float | None = None
    nonnegative: tuple[bool, ...] | None = None

    @classmethod
    def fit(
        cls, data: SeriesDataset, log_scale: LogScale = False, shared_origin: bool = False
    ) -> Scaler:
        """Fit on the observed values of ``data`` (padding and missing values never count);
        ``log_scale`` as in :func:`choose_log_channels`; ``shared_origin``: keep
        :func:`common_start` of ``data`` as :attr:`time_origin`."""
        from sklearn.preprocessing import StandardScaler

        if len(data) == 0:
            raise LatentODEError("cannot fit a scaler on an empty dataset.")
        # [N, C]: only what the mask marks observed counts, whatever sits under the mask
        stacked = np.concatenate([np.where(s.mask, s.values, np.nan) for s in data])
        empty = np.flatnonzero(~np.any(~np.isnan(stacked), axis=0))
        if empty.size:
            names = ", ".join(data.channels[i] for i in empty)
            raise LatentODEError(
                f"channel(s) {names} have no observed value in the training data; "
                "drop them (channels=...) or add data."
            )
        log = choose_log_channels(stacked, data.channels, log_scale)
        log = log if any(log) else None
        nonnegative = tuple(bool(v >= 0) for v in np.nanmin(stacked, axis=0))
        with np.errstate(over="ignore", invalid="ignore"):
            logged = stacked if log is None else _log_columns(stacked, np.asarray(log))
            sk = StandardScaler().fit(logged)  # ignores NaN per column
            spans = [s.times[-1] - s.times[0] for s in data if len(s) > 1]
            time_scale = float(max(spans)) if spans and max(spans) > 0 else 1.0
            scaler = cls(
                tuple(map(float, sk.mean_)),
                tuple(map(float, sk.scale_)),
                time_scale,
                log,
                tuple(data.channels) if log is not None else None,
                common_start(data, time_scale) if shared_origin else None,
                nonnegative if any(nonnegative) else None,
            )
            scaled = scaler.transform_values(stacked)  # [N, C]
        # a variance that overflows float64 leaves scikit-learn's scale at 1.0: check var_
        finite = np.isfinite(sk.mean_) & np.isfinite(sk.var_) & np.isfinite(sk.scale_)
        finite &= np.all(np.isfinite(scaled) | np.isnan(stacked), axis=0)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            biggest = np.nanmax(np.abs(stacked[:, bad]))
            raise LatentODEError(
                f"channel {data.channels[bad]!r} cannot be scaled: its values reach "
                f"{biggest:.3g}, so its mean or variance is not a finite number in float64. "
                "Rescale the channel (e.g. divide it by a power of ten) or check it for "
                "wrong values."
            )
        return scaler

    def __post_init__(self):
        for name in ("log", "channels", "nonnegative"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.mean):
                raise ValueError(f"{name} has {len(value)} entries for {len(self.mean)} channels")

    @property
    def log_mask(self) -> np.ndarray:
        """[C] bool: True for the log-scale channels."""
        return np.zeros(len(self.mean), bool) if self.log is None else np.asarray(self.log)

    @property
    def nonnegative_mask(self) -> np.ndarray:
        """[C] bool: True for the channels never negative in training."""
        if self.nonnegative is None:
            return np.zeros(len(self.mean), bool)
        return np.asarray(self.nonnegative)

    def to_dict(self) -> dict:
        out = {"mean": list(self.mean), "std": list(self.std), "time_scale": self.time_scale}
        if self.log is not None:
            out["log"] = list(self.log)
        if self.channels is not None:
            out["channels"] = list(self.channels)
        if self.time_origin is not None:
            out["time_origin"] = self.time_origin
        if self.nonnegative is not None:
            out["nonnegative"] = list(self.nonnegative)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        def flags(name: str) -> tuple[bool, ...] | None:  # None: absent (older files)
            value = d.get(name)
            if value is None:
                return None
            if not (isinstance(value, list | tuple) and all(isinstance(v, bool) for v in value)):
                raise ValueError(f"scaler {name} must be a list of true/false, got {value!r}")
            return tuple(value)

        names = d.get("channels")
        names = None if names is None else tuple(str(c) for c in names)
        origin = d.get("time_origin")  # files written before shared origins have none
        if origin is not None:
            if isinstance(origin, bool) or not isinstance(origin, int | float):
                raise ValueError(f"scaler time_origin must be a number, got {origin!r}")
            if not math.isfinite(origin):
                raise ValueError(f"scaler time_origin must be finite, got {origin!r}")
            origin = float(origin)
        return cls(
            tuple(d["mean"]),
            tuple(d["std"]),
            float(d["time_scale"]),
            flags("log"),
            names,
            origin,
            flags("nonnegative"),
        )

    def transform_values(self, values: np.ndarray) -> np.ndarray:
        """[..., C] original units → standardised (NaN stays NaN).

        Raises:
            LatentODEError: for a value <= 0 in a log-scale channel.
        """
        if self.log is not None:
            log = self.log_mask
            part = values[..., log]
            bad = part <= 0  # NaN (not observed) compares False
            if bad.any():
                first = np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(0))[0]
                j = int(np.flatnonzero(log)[first])
                name = repr(self.channels[j]) if self.channels else f"number {j}"
                raise LatentODEError(
                    f"channel {name} is modelled on the log scale (its training values were "
                    f"all positive), but a value here is {np.nanmin(values[..., j]):g}, and a "
                    "log scale has no place for values <= 0. Check the value, or fit again "
                    "with log_scale=False (or a list of channels that leaves this one out)."
                )
            values = _log_columns(values, log)
        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse_values(self, values: np.ndarray) -> np.ndarray:
        """[..., C] standardised → original units (a log-scale channel's exp)."""
        out = values * np.asarray(self.std) + np.asarray(self.mean)
        if self.log is not None:
            out = np.array(out, dtype=np.float64)
            out[..., self.log_mask] = np.exp(out[..., self.log_mask])
        return out

    def bound(self, values: np.ndarray) -> np.ndarray:
        """[..., C] predictions in original units with each :attr:`nonnegative` channel's
        negative values raised to 0 (NaN stays NaN). For a truth that is >= 0 the bounded
        value is never further from it, and an interval bounded at both ends covers it
        whenever the unbounded one did: a projection onto the values the channel can take."""
        if self.nonnegative is None:
            return values
        return np.where(self.nonnegative_mask & (values < 0), 0.0, values)

    def inverse_std(self, std: np.ndarray) -> np.ndarray:
        """[..., C] a standard deviation in standardised units → original units (for a
        log-scale channel, the std of its logarithm: see :meth:`mixture_moments`)."""
        return std * np.asarray(self.std)

    def mixture_moments(self, means: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std [..., C], in original units, of the equal-weight Gaussian mixture
        ``(1/S) Σ_s N(means[s], std²)`` given in standardised units (means [S, ..., C],
        std [..., C]).

        For a log-scale channel each component is log-normal in original units, with mean
        ``exp(a + b²/2)`` and second moment ``exp(2a + 2b²)`` (``a``, ``b`` the
        component's log-scale mean and std); the mixture averages them.
        """
        centre = means.mean(0)
        mean = self.inverse_values(centre)
        sd = self.inverse_std(np.sqrt(((means - centre) ** 2).mean(0) + std**2))
        if self.log is not None:
            log = self.log_mask
            a = means[..., log] * np.asarray(self.std)[log] + np.asarray(self.mean)[log]
            b2 = (std[..., log] * np.asarray(self.std)[log]) ** 2
            with np.errstate(over="ignore"):
                first = np.exp(a + b2 / 2).mean(0)
                second = np.exp(2 * a + 2 * b2).mean(0)
            mean[..., log] = first
            sd[..., log] = np.sqrt(np.maximum(second - first**2, 0.0))
        return mean, sd

    def inverse_rate(self, rate: np.ndarray) -> np.ndarray:
        """[...] events per unit of model time → events per unit of the dataset's time."""
        return rate / self.time_scale

    def series_origin(self, first: np.ndarray) -> np.ndarray:
        """Clock origins [B] (dataset time unit) of series whose first context times are
        ``first`` [B]: model time 0, where the latent state z0 is inferred.

        Without :attr:`time_origin`, each series' first context time. With it, the shared
        origin for a series that starts within ``time_scale`` (the longest training span)
        after it, and the series' own first context time for one that starts before it
        or later (calendar-time data, where series start years apart: carrying each back
        to the data's start, or a span back, would only lengthen its solves). A context
        that misses a series' first points then still has its origin before them: the
        decoder reaches them forwards, and series aligned at a common start (a dose, a
        birth, an admission) share the time their state z0 describes.
        """
        first = np.asarray(first, dtype=np.float64)
        if self.time_origin is None:
            return first
        within = (first >= self.time_origin) & (first - self.time_origin <= self.time_scale)
        return np.where(within, self.time_origin, first)

    def transform_times(self, times: np.ndarray, origin: float | np.ndarray) -> np.ndarray:
        """Times in the dataset's unit → model time relative to ``origin``."""
        return (times - origin) / self.time_scale

    def inverse_times(self, times: np.ndarray, origin: float | np.ndarray) -> np.ndarray:
        """Model time relative to ``origin`` → times in the dataset's unit."""
        return times * self.time_scale + origin


@dataclass(frozen=True)
class StaticScaler:
    """Standardises static covariates: ``(static - mean) / std``, NaN (unknown) → 0.

    Attributes:
        mean, std: per-covariate mean and standard deviation of the known training
            values (mean 0 for a covariate never known; std 1.0 where it is 0 or unknown).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, data: SeriesDataset) -> StaticScaler | None:
        """Fit on the series' static covariates; None when the data has none."""
        if not data.static_names or len(data) == 0:
            return None
        static = np.stack([s.static for s in data])  # [N, S]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nan_to_num(np.nanmean(static, axis=0))
            std = np.nanstd(static, axis=0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(tuple(map(float, mean)), tuple(map(float, std)))

    def transform(self, static: np.ndarray) -> np.ndarray:
        """[..., S] covariates → standardised, unknown values 0."""
        return np.nan_to_num((static - np.asarray(self.mean)) / np.asarray(self.std))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict | list | None) -> StaticScaler | None:
        """Read :meth:`to_dict`'s output (or the ``[mean, std]`` pair of older files)."""
        if d is None:
            return None
        mean, std = (d["mean"], d["std"]) if isinstance(d, dict) else d
        return cls(tuple(map(float, mean)), tuple(map(float, std)))
