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
from statistics import NormalDist

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
    """Posterior predictive mean, std (incl. observation noise) and quantiles per channel:
    those of the Gaussian mixture the samples define (each sample's prediction with its
    noise std; quantiles by :func:`mixture_quantiles`).

    Stds and quantile intervals are widened or narrowed around the mean by the
    calibrated ``interval_scale`` [C] within each series' context window and
    ``forecast_interval_scale`` [C] beyond it. A log-scale channel's mixture is
    Gaussian in its logarithm: its quantiles are exact, widened around its median (so
    multiplicatively in the user's units), and its mean and std are the log-normal
    mixture's (:meth:`~latentode.data.scaling.Scaler.mixture_moments`). A channel never
    negative in training has its means and quantiles bounded below by 0
    (:meth:`~latentode.data.scaling.Scaler.bound`); its std stays the mixture's.
    ``attrs["nfe"]`` holds the solver's evaluations, ``attrs["threads"]`` the thread count
    of the network passes.
    """
    scaler = state.scaler
    log = torch.as_tensor(scaler.log_mask)  # [C] log-scale channels
    within = torch.as_tensor(state.interval_scale, dtype=torch.float64)  # [C]
    beyond = state.forecast_interval_scale
    beyond = within if beyond is None else torch.as_tensor(beyond, dtype=torch.float64)
    means, stds, qs, times, ids, lengths = [], [], [], [], [], []
    start = 0
    for targets, out in draws.chunks:
        contexts = draws.context[start : start + len(targets)]
        start += len(targets)
        width = out["mean"].shape[2]
        outside = _outside_context(contexts, targets, width)  # [B, T']
        spread = torch.where(outside.unsqueeze(-1), beyond, within).to(out["mean"].dtype)
        mu = out["mean"]  # [S, B, T', C]
        noise = out["noise_std"]  # [C], or [B, T', C] with a residual process
        pred_mean = mu.mean(0)  # [B, T', C]
        path_var = (mu - pred_mean).square().mean(0)  # (faster than torch's var(0))
        pred_std = (path_var + noise**2).sqrt()
        real = _real_times(targets, width)  # [B, T']: each series' rows, in order
        pred_mean, spread = pred_mean[real], spread[real]  # [n, C]
        means.append(scaler.inverse_values(pred_mean.numpy()))
        stds.append(scaler.inverse_std((pred_std[real] * spread).numpy()))
        sd = noise.expand(mu.shape[1:])[real]  # [n, C]
        centre = pred_mean  # what the calibration widens or narrows the spread around
        if log.any():  # the log-normal mixture's moments, around its median
            centre = pred_mean.clone()
            centre[:, log] = mixture_quantiles(mu[:, real][..., log], sd[:, log], (0.5,))[0]
            stretched = centre + spread * (mu[:, real] - centre)  # [S, n, C]
            m, v = scaler.mixture_moments(
                stretched.double().numpy(), (sd * spread).double().numpy()
            )
            on = scaler.log_mask  # [C] the same, for numpy
            means[-1][:, on], stds[-1][:, on] = m[:, on], v[:, on]
        if quantiles:  # of the samples' Gaussian mixture: no noise draws, no sorting
            qv = mixture_quantiles(mu[:, real], sd, quantiles)  # [Q, n, C]
            qs.append(scaler.inverse_values((centre + spread * (qv - centre)).numpy()))
        times += [t.times for t in targets]
        ids += [t.id for t in targets]
        lengths += [len(t) for t in targets]
    n_c = len(state.schema.channels)
    frame = _index_columns(state, draws, np.repeat(id_array(ids), lengths), times)
    mean_all = scaler.bound(np.concatenate(means)) if means else np.zeros((0, n_c))
    std_all = np.concatenate(stds) if stds else np.zeros((0, n_c))
    q_all = scaler.bound(np.concatenate(qs, axis=1)) if qs else None
    for j, c in enumerate(state.schema.channels):
        frame[c] = mean_all[:, j]
        frame[f"{c}_std"] = std_all[:, j]
        for k, q in enumerate(quantiles):
            frame[quantile_name(c, q)] = q_all[k, :, j]
    df = pd.DataFrame(frame)
    df.attrs.update(nfe=draws.nfe, threads=draws.threads)
    return df


def mixture_quantiles(
    means: torch.Tensor,
    std: torch.Tensor,
    quantiles: tuple[float, ...],
    tol: float = 1e-5,
    max_iter: int = 100,
) -> torch.Tensor:
    """Quantiles of the equal-weight Gaussian mixture ``(1/S) Σ_s N(means[s], std²)`` of
    each element: means [S, ...] and std [...] (the samples' shape without S) → [Q, ...].

    This is the predictive distribution the samples define: each z0 sample's prediction
    plus Gaussian noise (or the residual's conditional std). Its quantiles are solved for
    exactly, rather than estimated from one noise draw per sample (which, at 100 samples,
    put the 5% and 95% quantiles about 0.2 predictive stds from their limit).

    ``F(x) = q`` is solved per element by Newton's method from the moment-matched
    Gaussian's quantile. ``F`` is at most ``q`` at ``min_s means + std·z_q`` and at least
    ``q`` at ``max_s means + std·z_q``; a step that leaves that bracket, which shrinks
    with every evaluation, bisects it instead. An element stops, after one last Newton
    step, when ``|F(x) − q| < tol`` or its bracket is narrower than 1e-6 stds. Where
    ``std`` is 0 the mixture is the samples themselves: their :func:`sample_quantiles`.
    """
    n_s = means.shape[0]
    centre = means.mean(0).reshape(-1)  # [N]; solved relative to it, in means' precision
    flat = means.reshape(n_s, -1) - centre  # [S, N]
    sd = std.expand(means.shape[1:]).reshape(-1).to(flat.dtype)  # [N]
    degenerate = sd <= 0
    # the first pass takes every (non-degenerate) element; later ones only the unsolved
    smooth = (~degenerate).nonzero().flatten() if bool(degenerate.any()) else None
    width = (flat.square().mean(0) + sd.square()).sqrt()  # the moment-matched std
    lowest, highest = flat.min(0).values, flat.max(0).values
    out = []
    for q in quantiles:
        z = NormalDist().inv_cdf(q)
        lo, hi = lowest + sd * z, highest + sd * z
        x = torch.minimum(torch.maximum(width * z, lo), hi)
        if smooth is not None:
            x[degenerate] = sample_quantiles(flat[:, degenerate], (q,))[0]
        active = smooth
        for _ in range(max_iter):
            xa, sa, la, ha, fa = (
                t if active is None else t[..., active] for t in (x, sd, lo, hi, flat)
            )
            u = (xa - fa) / sa  # [S, n_active]
            gap = 0.5 * torch.erfc(-u * _SQRT_HALF).mean(0) - q  # F(x) - q
            density = torch.exp(-0.5 * u.square()).mean(0) / (sa * _SQRT_2PI)
            la = torch.where(gap < 0, xa, la)
            ha = torch.where(gap > 0, xa, ha)
            step = xa - gap / density
            inside = (step > la) & (step < ha)  # False for NaN or inf too
            done = (gap.abs() < tol) | (ha - la < 1e-6 * sa)
            xa = torch.where(inside, step, torch.where(done, xa, 0.5 * (la + ha)))
            if active is None:
                x, lo, hi = xa, la, ha
                active = (~done).nonzero().flatten()
            else:
                x[active], lo[active], hi[active] = xa, la, ha
                active = active[~done]
            if active.numel() == 0:
                break
        out.append((x + centre).reshape(means.shape[1:]))
    return torch.stack(out)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


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


def _real_times(targets, width: int) -> torch.Tensor:
    """[B, width] True at each target series' own times (its first ``len`` columns)."""
    lengths = torch.tensor([len(t) for t in targets])
    return torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)


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
            vals = state.scaler.bound(state.scaler.inverse_values(mu[:, b, :n].numpy()))
            part = pd.DataFrame(vals.reshape(-1, vals.shape[-1]), columns=list(schema.channels))
            part.insert(0, "sample", np.repeat(np.arange(n_samples), n))
            user_times = draws.context.time_axis.to_user_exact(tgt.times)
            part.insert(0, schema.time_name, np.tile(user_times, n_samples))
            part.insert(0, schema.id_name, [tgt.id] * len(part))
            rows.append(part)
    df = pd.concat(rows, ignore_index=True)
    df.attrs.update(nfe=draws.nfe, threads=draws.threads)
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


def _index_columns(state: FittedState, draws: Draws, ids: np.ndarray, times: list) -> dict:
    """The id and time columns of a per-(id, time) frame (``ids``: the id column, one per
    row, as :func:`id_array` makes it), times in the user's form."""
    flat = np.concatenate(times) if times else []
    return {
        state.schema.id_name: ids,
        state.schema.time_name: draws.context.time_axis.to_user_exact(flat),
    }


def _per_time_frame(state: FittedState, draws: Draws, parts: list, names: list) -> pd.DataFrame:
    """Rows [n_i, K] per target series (in ``draws``' order) → id, time and ``names`` columns."""
    targets = [t for chunk_targets, _ in draws.chunks for t in chunk_targets]
    ids = np.repeat(id_array([t.id for t in targets]), [len(t) for t in targets])
    frame = _index_columns(state, draws, ids, [t.times for t in targets])
    values = np.concatenate(parts) if parts else np.zeros((0, len(names)))
    frame.update({name: values[:, k] for k, name in enumerate(names)})
    return pd.DataFrame(frame)
