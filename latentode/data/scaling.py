"""Per-channel value scaling and the time scale, fitted on training series only."""

from __future__ import annotations

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
        sk = StandardScaler().fit(stacked)  # ignores NaN per column
        spans = [s.times[-1] - s.times[0] for s in data if len(s) > 1]
        time_scale = float(max(spans)) if spans and max(spans) > 0 else 1.0
        return cls(tuple(map(float, sk.mean_)), tuple(map(float, sk.scale_)), time_scale)

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

    def transform_times(self, times: np.ndarray, origin: float | np.ndarray) -> np.ndarray:
        """Times in the dataset's unit → model time relative to ``origin``."""
        return (times - origin) / self.time_scale

    def inverse_times(self, times: np.ndarray, origin: float | np.ndarray) -> np.ndarray:
        """Model time relative to ``origin`` → times in the dataset's unit."""
        return times * self.time_scale + origin
