"""Value, time and static-covariate scaling, fitted on training series only, with inverses."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError


@dataclass(frozen=True)
class Scaler:
    """Standardises each channel and rescales time, with exact inverses.

    ``model_value = (value - mean[c]) / std[c]`` and
    ``model_time = (time - origin) / time_scale``, where ``origin`` is each series'
    first context time. Stored as plain numbers so a saved model can undo it.

    Attributes:
        mean, std: per-channel mean and standard deviation of the observed training
            values (std is 1.0 for a constant channel).
        time_scale: the longest training series' span, in the dataset's time unit
            (1.0 when no series spans any time), so training times lie in [0, 1].
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    time_scale: float = 1.0

    @classmethod
    def fit(cls, data: SeriesDataset) -> Scaler:
        """Fit on the observed values of ``data`` (padding and missing values never count)."""
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
        with np.errstate(over="ignore", invalid="ignore"):
            sk = StandardScaler().fit(stacked)  # ignores NaN per column
            spans = [s.times[-1] - s.times[0] for s in data if len(s) > 1]
            time_scale = float(max(spans)) if spans and max(spans) > 0 else 1.0
            scaler = cls(tuple(map(float, sk.mean_)), tuple(map(float, sk.scale_)), time_scale)
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

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "time_scale": self.time_scale}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(tuple(d["mean"]), tuple(d["std"]), float(d["time_scale"]))

    def transform_values(self, values: np.ndarray) -> np.ndarray:
        """[..., C] original units → standardised."""
        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse_values(self, values: np.ndarray) -> np.ndarray:
        """[..., C] standardised → original units."""
        return values * np.asarray(self.std) + np.asarray(self.mean)

    def inverse_std(self, std: np.ndarray) -> np.ndarray:
        """[..., C] a standard deviation in standardised units → original units."""
        return std * np.asarray(self.std)

    def inverse_rate(self, rate: np.ndarray) -> np.ndarray:
        """[...] events per unit of model time → events per unit of the dataset's time."""
        return rate / self.time_scale

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
