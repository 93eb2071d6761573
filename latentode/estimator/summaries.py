"""Summaries of network samples as DataFrames, in the user's units and column names.

Each function takes the :class:`~latentode.estimator.prediction.Draws` of one call and
the fitted state, undoes the scaling through the data layer's scalers and time axis,
and returns one row per (series, time) (or per sample, or per series). Output columns
are the id and time columns, then per channel ``<c>`` (mean), ``<c>_std`` and
``<c>_q<pct>``; :func:`check_channel_names` refuses channel names that would collide
with those suffixes.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch

from latentode.errors import LatentODEError
from latentode.estimator.model_file import FittedState
from latentode.estimator.prediction import Draws

#: what the summaries append to a channel's name: its std and its quantiles
_SUFFIX = re.compile(r"(.+)_(std|q\d+(_\d+)?)")


def quantile_name(channel: str, q: float) -> str:
    """The column of quantile ``q`` of ``channel``: ``x_q5`` for 0.05, ``x_q2_5`` for 0.025."""
    return f"{channel}_q{f'{q * 100:g}'.replace('.', '_')}"


def check_channel_names(channels) -> None:
    """Refuse a channel named like another channel's summary column (``x_std`` beside ``x``),
    which would make two prediction columns share one name."""
    names = set(channels)
    for c in channels:
        match = _SUFFIX.fullmatch(c)
        if match and match.group(1) in names:
            raise LatentODEError(
                f"channel {c!r} would share its name with the {match.group(2)!r} column that "
                f"predictions give channel {match.group(1)!r}; rename it (e.g. "
                f"df.rename(columns={{{c!r}: {c.replace('_', '-')!r}}})) before fitting."
            )


def predictive_summary(
    state: FittedState, draws: Draws, quantiles: tuple[float, ...]
) -> pd.DataFrame:
    """Posterior predictive mean, std (incl. observation noise) and quantiles per channel.

    Stds and quantile intervals are widened or narrowed around the mean by the
    calibrated ``interval_scale`` [C] within each series' context window and
    ``forecast_interval_scale`` [C] beyond it. ``attrs["nfe"]`` holds the solver's
    evaluations.
    """
    scaler = state.scaler
    within = torch.as_tensor(state.interval_scale, dtype=torch.float64)  # [C]
    beyond = state.forecast_interval_scale
    beyond = within if beyond is None else torch.as_tensor(beyond, dtype=torch.float64)
    means, stds, qs, times, ids = [], [], [], [], []
    start = 0
    for targets, out in draws.chunks:
        contexts = draws.context[start : start + len(targets)]
        start += len(targets)
        outside = _outside_context(contexts, targets, out["mean"].shape[2])  # [B, T']
        spread = torch.where(outside.unsqueeze(-1), beyond, within).to(out["mean"].dtype)
        mu = out["mean"]  # [S, B, T', C]
        noise = out["noise_std"]  # [C], or [B, T', C] with a residual process
        pred_mean = mu.mean(0)  # [B, T', C]
        pred_std = (mu.var(0, unbiased=False) + noise**2).sqrt()
        if quantiles:  # noise per series from its own stream: independent of the batch
            eps = draws.random.noise_like([t.id for t in targets], [len(t) for t in targets], mu)
            y = mu + noise * eps
            qv = sample_quantiles(y, quantiles)  # [Q, B, T', C]
            qv = pred_mean + spread * (qv - pred_mean)
        for b, tgt in enumerate(targets):
            n = len(tgt)
            means.append(scaler.inverse_values(pred_mean[b, :n].numpy()))
            stds.append(scaler.inverse_std((pred_std[b, :n] * spread[b, :n]).numpy()))
            if quantiles:
                qs.append(scaler.inverse_values(qv[:, b, :n].numpy()))  # [Q, n, C]
            times.append(tgt.times)
            ids.extend([tgt.id] * n)
    n_c = len(state.schema.channels)
    frame = _index_columns(state, draws, ids, times)
    mean_all = np.concatenate(means) if means else np.zeros((0, n_c))
    std_all = np.concatenate(stds) if stds else np.zeros((0, n_c))
    q_all = np.concatenate(qs, axis=1) if qs else None
    for j, c in enumerate(state.schema.channels):
        frame[c] = mean_all[:, j]
        frame[f"{c}_std"] = std_all[:, j]
        for k, q in enumerate(quantiles):
            frame[quantile_name(c, q)] = q_all[k, :, j]
    df = pd.DataFrame(frame)
    df.attrs["nfe"] = draws.nfe
    return df


def sample_quantiles(samples: torch.Tensor, quantiles: tuple[float, ...]) -> torch.Tensor:
    """``torch.quantile(samples, quantiles, dim=0)`` (linear interpolation between order
    statistics), about twice as fast: samples [S, ...] → [Q, ...].

    Each quantile needs only the two order statistics around ``q·(S-1)``, so instead of
    sorting all S samples of every row it takes the smallest (or, for an upper quantile,
    the largest) few with ``topk`` along a contiguous last dimension.
    """
    n = samples.shape[0]
    rows = samples.movedim(0, -1).contiguous()  # [..., S]
    out = []
    for q in quantiles:
        pos = q * (n - 1)
        lo = min(math.floor(pos), n - 1)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        if lo < n // 2:  # order statistics lo and hi from the smallest hi + 1
            low = rows.topk(hi + 1, dim=-1, largest=False, sorted=True).values
            a, b = low[..., lo], low[..., hi]
        else:  # from the largest n - lo, in descending order: statistic k is at n - 1 - k
            high = rows.topk(n - lo, dim=-1, largest=True, sorted=True).values
            a, b = high[..., n - 1 - lo], high[..., n - 1 - hi]
        out.append(a + (b - a) * frac)
    return torch.stack(out)


def _outside_context(contexts, targets, width: int) -> torch.Tensor:
    """[B, width] True where a target time lies before the first or after the last time of
    its series' context (padding: False)."""
    outside = torch.zeros(len(targets), width, dtype=torch.bool)
    for b, (c, t) in enumerate(zip(contexts, targets)):
        if len(c) and len(t):
            flags = (t.times < c.times[0]) | (t.times > c.times[-1])
            outside[b, : len(t)] = torch.from_numpy(flags)
    return outside


def sample_rows(state: FittedState, draws: Draws, with_noise: bool) -> pd.DataFrame:
    """One row per (id, time, sample) with a value per channel."""
    schema, rows = state.schema, []
    for targets, out in draws.chunks:
        mu = out["mean"]  # [S, B, T', C]
        n_samples = mu.shape[0]
        if with_noise:
            eps = draws.random.noise_like([t.id for t in targets], [len(t) for t in targets], mu)
            mu = mu + out["noise_std"] * eps
        for b, tgt in enumerate(targets):
            n = len(tgt)
            vals = state.scaler.inverse_values(mu[:, b, :n].numpy())  # [S, n, C]
            part = pd.DataFrame(vals.reshape(-1, vals.shape[-1]), columns=list(schema.channels))
            part.insert(0, "sample", np.repeat(np.arange(n_samples), n))
            user_times = draws.context.time_axis.to_user_exact(tgt.times)
            part.insert(0, schema.time_name, np.tile(user_times, n_samples))
            part.insert(0, schema.id_name, [tgt.id] * len(part))
            rows.append(part)
    df = pd.concat(rows, ignore_index=True)
    df.attrs["nfe"] = draws.nfe
    return df


def intensity_rows(state: FittedState, draws: Draws) -> pd.DataFrame:
    """Expected observations per time unit of the data, per channel, averaged over samples."""
    parts = []
    for targets, log_lam in draws.outputs("log_intensity"):
        lam = state.scaler.inverse_rate(log_lam.exp().mean(0).numpy())  # [B, T', C]
        parts += [lam[b, : len(t)] for b, t in enumerate(targets)]
    return _per_time_frame(state, draws, parts, list(state.schema.channels))


def latent_rows(state: FittedState, draws: Draws) -> pd.DataFrame:
    """Latent state per (id, time): ``z<k>`` (mean over samples) and ``z<k>_std``."""
    parts = []
    for targets, z in draws.outputs("z"):
        mean, std = z.mean(0).numpy(), z.std(0, unbiased=False).numpy()  # [B, T', L]
        parts += [np.hstack([mean[b, : len(t)], std[b, : len(t)]]) for b, t in enumerate(targets)]
    n_l = parts[0].shape[1] // 2
    names = [f"z{k}" for k in range(n_l)] + [f"z{k}_std" for k in range(n_l)]
    return _per_time_frame(state, draws, parts, names)


def label_probabilities(state: FittedState, draws: Draws) -> pd.DataFrame:
    """Per series: the label's probability ``p``, averaged over samples."""
    probs = [torch.sigmoid(logits).mean(0).numpy() for _, logits in draws.outputs("label_logits")]
    ids = id_array(draws.context.ids)
    return pd.DataFrame({state.schema.id_name: ids, "p": np.concatenate(probs)})


def posterior_frame(state: FittedState, ids: list, mean: np.ndarray, std: np.ndarray):
    """q(z0 | context) per series: columns ``z0_<k>`` (mean [N, L]) and ``z0_<k>_std``."""
    n_l = mean.shape[1]
    cols = [f"z0_{k}" for k in range(n_l)] + [f"z0_{k}_std" for k in range(n_l)]
    df = pd.DataFrame(np.hstack([mean, std]), columns=cols)
    df.insert(0, state.schema.id_name, id_array(ids))
    return df


def id_array(ids: list) -> np.ndarray:
    """Series ids as a column: int64 when every id is an integer, else objects."""
    arr = np.empty(len(ids), dtype=object)
    arr[:] = ids
    if ids and all(isinstance(i, (int, np.integer)) for i in ids):
        return arr.astype(np.int64)
    return arr


def _index_columns(state: FittedState, draws: Draws, ids: list, times: list) -> dict:
    """The id and time columns of a per-(id, time) frame, times in the user's form."""
    flat = np.concatenate(times) if times else []
    return {
        state.schema.id_name: id_array(ids),
        state.schema.time_name: draws.context.time_axis.to_user_exact(flat),
    }


def _per_time_frame(state: FittedState, draws: Draws, parts: list, names: list) -> pd.DataFrame:
    """Rows [n_i, K] per target series (in ``draws``' order) → id, time and ``names`` columns."""
    targets = [t for chunk_targets, _ in draws.chunks for t in chunk_targets]
    ids = [t.id for t in targets for _ in range(len(t))]
    frame = _index_columns(state, draws, ids, [t.times for t in targets])
    values = np.concatenate(parts) if parts else np.zeros((0, len(names)))
    frame.update({name: values[:, k] for k, name in enumerate(names)})
    return pd.DataFrame(frame)
