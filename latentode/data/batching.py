"""Collate series into padded tensors; every series keeps its own time stamps.

A batch is as long as its longest series, never the union of all series' times.
Padding repeats the series' last time (so a time gap over padding is 0) and has
mask 0, so it can touch neither the loss nor its gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from latentode.data.dataset import Series
from latentode.data.scaling import Scaler, StaticScaler
from latentode.errors import LatentODEError


@dataclass
class Batch:
    """Padded tensors for B series (shapes use B batch, T times, C channels, S statics).

    Context (what the encoder reads) and targets (where the decoder is scored) each
    have their own times. Model times are scaled and relative to each series' origin.

    Attributes:
        times: [B, T] context times; padding repeats the last real time.
        values: [B, T, C] scaled values, 0 where not observed.
        mask: [B, T, C] 1.0 where observed.
        lengths: [B] number of real context time points.
        target_times, target_values, target_mask, target_lengths: the same for targets.
        static: [B, S] scaled static covariates (NaN → 0) or None.
        labels: [B] float labels, NaN where unknown, or None.
        origin: [B] float64 origin of each series' model clock, in the dataset's time unit.
        ids: the B series ids.
    """

    times: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    target_times: torch.Tensor
    target_values: torch.Tensor
    target_mask: torch.Tensor
    target_lengths: torch.Tensor
    static: torch.Tensor | None
    labels: torch.Tensor | None
    origin: torch.Tensor
    ids: list

    def __len__(self) -> int:
        return self.times.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (Lightning calls this to move batches)."""
        moved = {
            k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for k, v in self.__dict__.items()
        }
        return Batch(**moved)


def pad_series(
    series: Sequence[Series], origin: np.ndarray, scaler: Scaler
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pad B series to their longest length.

    Returns times [B, T] (model time, padding repeats the last time), values [B, T, C]
    (scaled, 0 where unobserved), mask [B, T, C] (float) and lengths [B].
    """
    n_c = len(scaler.mean)
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    n = len(series)
    times = np.zeros((n, width))
    values = np.zeros((n, width, n_c))
    mask = np.zeros((n, width, n_c))
    if lengths.sum():
        rows = np.repeat(np.arange(n), lengths)
        cols = np.concatenate([np.arange(k) for k in lengths])
        flat_t = np.concatenate([s.times for s in series])
        flat_v = np.concatenate([s.values for s in series])
        flat_m = np.concatenate([s.mask for s in series])
        times[rows, cols] = scaler.transform_times(flat_t, origin[rows])
        observed = np.where(flat_m, flat_v, np.nan)  # what sits under the mask never counts
        values[rows, cols] = np.where(flat_m, scaler.transform_values(observed), 0.0)
        mask[rows, cols] = flat_m
        # padding repeats each series' last time, so its gap is zero
        last = times[np.arange(n), np.maximum(lengths - 1, 0)]
        pad = np.arange(width)[None, :] >= lengths[:, None]
        times = np.where(pad, last[:, None], times)
    return times, values, mask, lengths


def collate(
    context: Sequence[Series],
    scaler: Scaler,
    targets: Sequence[Series] | None = None,
    static_scaler: StaticScaler | None = None,
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """Turn B context series (and optionally B target series) into a :class:`Batch`.

    Each series' clock starts at ``scaler.series_origin`` of its first context time (or
    of its first target time when its context is empty): that time itself, or a shared
    origin before it. Without ``targets`` the context is also the target.
    ``static_scaler`` standardises the static covariates (unknown ones become 0).
    """
    targets = context if targets is None else targets
    if len(targets) != len(context):
        raise LatentODEError(
            f"collate got {len(context)} context series but {len(targets)} target series; "
            "pass the same series, in the same order, to both."
        )
    mismatch = [(c.id, t.id) for c, t in zip(context, targets) if c.id != t.id]
    if mismatch:
        raise LatentODEError(
            f"context and target series differ at ids {mismatch[0]}; pass the same series, "
            "in the same order, to both."
        )
    first = np.array(
        [
            c.times[0] if len(c) else (t.times[0] if len(t) else 0.0)
            for c, t in zip(context, targets)
        ],
        dtype=np.float64,
    )
    origin = scaler.series_origin(first)
    ct, cv, cm, cl = pad_series(context, origin, scaler)
    tt, tv, tm, tl = pad_series(targets, origin, scaler)
    static = None
    if context and context[0].static is not None:
        raw = np.stack([s.static for s in context])  # [B, S]
        if static_scaler is not None:
            raw = static_scaler.transform(raw)
        static = torch.as_tensor(np.nan_to_num(raw), dtype=dtype)
    labels = None
    if any(s.label is not None for s in context):
        labels = torch.tensor(
            [np.nan if s.label is None else s.label for s in context], dtype=dtype
        )

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype)

    return Batch(
        times=tensor(ct),
        values=tensor(cv),
        mask=tensor(cm),
        lengths=torch.as_tensor(cl),
        target_times=tensor(tt),
        target_values=tensor(tv),
        target_mask=tensor(tm),
        target_lengths=torch.as_tensor(tl),
        static=static,
        labels=labels,
        origin=torch.as_tensor(origin, dtype=torch.float64),
        ids=[s.id for s in context],
    )
