"""Kriging of the residual process against dense textbook kriging (with the outlying
series' mixture), the Brownian-bridge limit, the outlying series' behaviour beyond its
context, the range bound, and the latent ODE's sampling with the kriged residual."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from residual_oracles import PROCESS, correlation, dense_condition, random_problem

import latentode.nn.residual_kriging as rk
import latentode.nn.residual_process as rp
from latentode.nn.residual_kriging import condition_residual, within_context_range
from latentode.nn.residual_process import ResidualProcess

PER_ROW = ((True, False), (False, True), (True, False))  # [B, C]: the far-off series' first


@pytest.mark.parametrize("n_t", [7, 14], ids=["short rows", "rows for an own fit"])
@pytest.mark.parametrize(
    "outlying", [None, (True, False), PER_ROW], ids=["all", "first channel", "per row"]
)
@pytest.mark.parametrize("outlier_prior", [rk.OUTLIER_PRIOR, 0.0])
@pytest.mark.parametrize("chunk", [10**9, 1])
def test_conditioning_matches_dense_kriging(chunk, outlier_prior, outlying, n_t, monkeypatch):
    """Against the dense mixture; with no prior weight on an outlying series, against
    plain kriging; with the outlying process allowed on one channel only (or on some
    rows), against the mixture there and plain kriging elsewhere. With 14 times, the far-off series'
    rows have enough points for their own process (which must then change the result)."""
    process = PROCESS
    monkeypatch.setattr(rp, "_CHUNK_ELEMENTS", chunk)  # 1: one series per Cholesky chunk
    monkeypatch.setattr(rk, "OUTLIER_PRIOR", outlier_prior)
    times, query, residuals, mask = random_problem(0, n_t=n_t)
    residuals[1, 2] += 4.0  # one path sample of one series far off: its weight moves
    t = torch.tensor(times)
    outlying = None if outlying is None else np.broadcast_to(outlying, mask.shape[::2])  # [B, C]
    flags = None if outlying is None else torch.tensor(outlying.copy())
    args = (t, torch.tensor(residuals), torch.tensor(mask), torch.tensor(query))
    mean, var = condition_residual(*args, process.tensors(t), flags)
    want_mean, want_var = dense_condition(
        times, query, residuals, mask, process, outlier_prior, outlying
    )
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(var.numpy(), want_var, rtol=1e-9, atol=1e-10)
    monkeypatch.setattr(rk, "OWN_FIT_MIN_POINTS", 10**9)  # the fixed outlying process only
    fixed, _ = condition_residual(*args, process.tensors(t), flags)
    own_fit = outlier_prior > 0 and n_t == 14
    assert torch.equal(fixed, mean) != own_fit


def test_long_ou_lengthscale_bridges_linearly_and_far_queries_return_to_the_path(monkeypatch):
    """With ℓ ≫ the gap and no noise, the OU bridge is a Brownian bridge: its mean is
    the straight line between the two residuals; far away the residual decays to 0
    (the process alone: no outlying offset)."""
    monkeypatch.setattr(rk, "OUTLIER_PRIOR", 0.0)
    process = ResidualProcess(("ou",), (1e4,), (1e4,), (1e-10,))
    t = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    r = torch.tensor([[[[2.0], [-1.0]]]], dtype=torch.float64)  # [S=1, B=1, T=2, C=1]
    m = torch.ones(1, 2, 1, dtype=torch.float64)
    q = torch.tensor([[0.25, 0.5, 0.9]], dtype=torch.float64)
    mean, var = condition_residual(t, r, m, q, process.tensors(t))
    np.testing.assert_allclose(
        mean[0, 0, :, 0].numpy(), np.interp([0.25, 0.5, 0.9], [0, 1], [2, -1]), atol=1e-3
    )
    short = ResidualProcess(("ou",), (1.0,), (0.01,), (1e-6,))
    far = torch.tensor([[5.0]], dtype=torch.float64)
    mean, var = condition_residual(t, r, m, far, short.tensors(t))
    assert abs(mean.item()) < 1e-12 and var.item() == pytest.approx(1.0)


def test_an_outlying_series_keeps_its_distance_from_the_path_and_others_do_not():
    """Residuals of the process (v 0.1, ℓ 0.05) around 0 and around -3 (about ten of its
    standard deviations): half a span beyond the context the first has returned to the
    path (mean within 0.05 of 0: the outlying process's weight is small, the variance
    the process's prior one), the second keeps the distance of its last residual as an
    OU process (Markov) does beyond its last point, ``r_last · exp(-gap / ℓ)`` with the
    outlying process's ℓ (within 0.15: the white noise), with a variance between the
    fitted process's prior one and the outlying process's."""
    process = ResidualProcess(("ou",), (0.1,), (0.05,), (0.01,))
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 1, (2, 12)), axis=1)
    cov = [
        0.1 * correlation("ou", t[:, None] - t[None, :], 0.05) + 0.01 * np.eye(12) for t in times
    ]
    noise = np.stack([np.linalg.cholesky(c) @ rng.normal(size=12) for c in cov])
    r = torch.tensor(noise - np.array([[0.0], [3.0]])).view(1, 2, 12, 1)
    t = torch.tensor(times)
    m = torch.ones(2, 12, 1, dtype=torch.float64)
    beyond = torch.full((2, 1), 1.5, dtype=torch.float64)
    mean, var = condition_residual(t, r, m, beyond, process.tensors(t))
    assert abs(mean[0, 0, 0, 0].item()) < 0.05
    assert var[0, 0, 0].item() == pytest.approx(0.1, rel=0.05)
    decay = math.exp(-(1.5 - times[1, -1]) / rk.OUTLIER_LENGTHSCALE)
    assert mean[0, 1, 0, 0].item() == pytest.approx(r[0, 1, -1, 0].item() * decay, abs=0.15)
    assert 0.1 < var[1, 0, 0].item() < rk.OUTLIER_VARIANCE_RATIO * 0.1


def test_rows_may_be_outlying_where_their_level_scale_stays_within_the_ratio():
    """g over observed context points and real queries only, against hand-computed
    flags (OUTLIER_LEVEL_RATIO 3): g = 1 throughout (no level slope) may be outlying;
    100..250 may (ignoring an unobserved 999 and a padded query's 5000); 2..6.4 may not,
    though the context alone spans 2..2.2 (the queries count); 2..5.5 may, though an
    unobserved point has 7."""
    assert rk.OUTLIER_LEVEL_RATIO == 3.0
    g_context = torch.tensor(
        [[[1.0, 100.0], [1.0, 104.0], [1.0, 999.0]], [[2.0, 2.0], [2.1, 7.0], [2.2, 5.5]]]
    )  # [B, T, C]
    mask = torch.tensor(
        [[[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]]
    )
    g_target = torch.tensor([[[1.0, 250.0], [1.0, 5000.0]], [[2.2, 2.2], [6.4, 2.4]]])
    flags = rk.outlying_rows(g_context, mask, g_target, torch.tensor([1, 2]))
    assert flags.tolist() == [[True, True], [False, True]]


LEVELLED = ResidualProcess(
    *(getattr(PROCESS, f) for f in ("kernel", "variance", "lengthscale", "noise")),
    (0.8, 2.5),
    (-0.4, -1.0),
)


@pytest.mark.parametrize(
    ("process", "level_ratio"),
    [(PROCESS, None), (LEVELLED, None), (LEVELLED, 1.07)],
    ids=["plain", "level-scaled", "level-scaled, some rows steady"],
)
def test_latent_ode_sample_adds_the_kriged_residual_of_each_path(process, level_ratio, monkeypatch):
    """With a residual process, each sample is its path plus the kriging of that path's
    residuals at the context, kept within [min(0, min r), max(0, max r)] of those
    residuals (recomputed here from the network's own pieces with the dense numpy
    formulas); the std is the conditional std plus the white noise. With level scales,
    the residuals are divided by g = 1 + b·max(path - z, 0) of the mean path at the
    context, and the kriged mean and std multiplied by g at the query; a row may then be
    outlying only where g varies by at most OUTLIER_LEVEL_RATIO over its context points
    and queries (the untrained network's paths are nearly flat: a ratio of 1.07 splits
    the rows)."""
    if level_ratio is not None:
        monkeypatch.setattr(rk, "OUTLIER_LEVEL_RATIO", level_ratio)
    from latentode.data.batching import collate
    from latentode.data.dataset import make_series
    from latentode.data.scaling import Scaler
    from latentode.models import build_network

    torch.manual_seed(0)
    net = build_network("latent_ode", {"n_channels": 2, "latent_dim": 3, "hidden": 8}).double()
    rng = np.random.default_rng(5)
    series, queries = [], []
    for i, n in enumerate([4, 6]):
        t = np.sort(rng.uniform(0, 2, n))
        mask = rng.random((n, 2)) < 0.7
        mask[:, 0] = True
        series.append(make_series(i, t, rng.normal(size=(n, 2)), mask))
        queries.append(make_series(i, np.sort(rng.uniform(-0.5, 2.5, 3)), np.full((3, 2), np.nan)))
    scaler = Scaler((0.0, 0.0), (1.0, 1.0), 2.0)
    batch = collate(series, scaler, queries, dtype=torch.float64)
    out = net.sample(batch, 5, generator=torch.Generator().manual_seed(1), residual=process)
    z_query, _ = net.latent_paths(out["z0"], batch.target_times)
    z_context, _ = net.latent_paths(out["z0"], batch.times)
    path_q = net.decoder(z_query).detach().numpy()
    path_c = net.decoder(z_context).detach().numpy()
    slope = np.asarray(process.level_slope or (0.0, 0.0))
    zero = np.asarray(process.level_zero or (0.0, 0.0))
    g_c = 1 + slope * np.maximum(path_c.mean(0) - zero, 0)  # [B, T, C]
    g_q = 1 + slope * np.maximum(path_q.mean(0) - zero, 0)  # [B, Q, C]
    assert process is PROCESS or (g_q.max() > 1.5 and g_c.max() > 1.5)  # the scale is used
    observed = batch.mask.numpy() > 0
    g_high = np.maximum(np.where(observed, g_c, 0).max(1), g_q.max(1))  # [B, C]
    g_low = np.minimum(np.where(observed, g_c, np.inf).min(1), g_q.min(1))
    flags = g_high <= rk.OUTLIER_LEVEL_RATIO * g_low
    assert flags.all() if level_ratio is None else flags.any() and not flags.all()
    resid = (batch.values.numpy()[None] - path_c) / g_c
    resid[:, batch.mask.numpy() == 0] = np.nan
    shift, var = dense_condition(
        batch.times.numpy(),
        batch.target_times.numpy(),
        resid,
        batch.mask.numpy(),
        process,
        outlying=flags,
    )
    sd3 = 3 * np.sqrt(process.variance)  # [C]
    high = np.maximum(np.nanmax(resid, axis=2, keepdims=True), sd3)  # [S, B, 1, C]
    low = np.minimum(np.nanmin(resid, axis=2, keepdims=True), -sd3)
    shift = np.clip(shift, low, high)
    np.testing.assert_allclose(out["path"].numpy(), path_q, atol=1e-6)
    np.testing.assert_allclose(out["mean"].numpy(), path_q + g_q * shift, atol=1e-6)
    want_std = g_q * np.sqrt(var + np.asarray(process.noise))
    np.testing.assert_allclose(out["noise_std"].numpy(), want_std, rtol=1e-6)


def test_kriged_residual_stays_within_the_context_range_or_three_prior_stds(monkeypatch):
    """A smooth kernel extrapolates the last two points' slope (here: 0 then 3 a short
    gap apart) well past them. The bound keeps the forecast's residual within [-3 sd,
    max(3, 3 sd)]: at the context's 3 for a process of sd 0.5, at 3 sd = 4.5 for one of
    sd 1.5; a residual inside the range is untouched. (The fitted process alone: with
    an outlying series' process in the mixture, 3 at sd 0.5 would also be damped.)"""
    monkeypatch.setattr(rk, "OUTLIER_PRIOR", 0.0)

    t = torch.tensor([[0.0, 0.2]], dtype=torch.float64)
    r = torch.tensor([[[[0.0], [3.0]]]], dtype=torch.float64)  # [S=1, B=1, T=2, C=1]
    m = torch.ones(1, 2, 1, dtype=torch.float64)
    q = torch.tensor([[0.1, 1.0]], dtype=torch.float64)
    for variance, cap in ((0.25, 3.0), (2.25, 4.5)):
        smooth = ResidualProcess(("matern32",), (variance,), (2.0,), (1e-6,))
        shift, _ = condition_residual(t, r, m, q, smooth.tensors(t))
        assert shift[0, 0, 1, 0] > cap + 1  # unbounded: well past both
        prior_var = torch.tensor([variance], dtype=torch.float64)
        bounded = within_context_range(shift, r, m, prior_var)
        assert bounded[0, 0, 1, 0].item() == pytest.approx(cap)
        assert bounded[0, 0, 0, 0].item() == pytest.approx(shift[0, 0, 0, 0].item())
        negative = within_context_range(-shift, -r, m, prior_var)  # the mirror image
        assert negative[0, 0, 1, 0].item() == pytest.approx(-cap)


def test_an_outlying_random_walk_is_bridged_by_its_own_fit_as_linear_interpolation_does(
    monkeypatch,
):
    """A series far from its path whose residual is a random walk (steps of sd 0.1,
    noise 1e-3), under a fitted process that calls half its variance white noise (as a
    process fitted on training series that the network learnt by heart does). Between
    its context points (every other of 60) the best prediction of a random walk is its
    Brownian bridge, linear interpolation. Over five walks, kriging with the series' own
    fitted process errs within 10% of linear interpolation; the fixed outlying process
    (the fitted noise) smooths the walk and errs more than 15% above it."""
    process = ResidualProcess(("ou",), (0.01,), (0.3,), (0.01,))
    errors = {"own": 0.0, "fixed": 0.0, "linear": 0.0}
    own_fit_min_points = rk.OWN_FIT_MIN_POINTS
    for seed in range(5):
        rng = np.random.default_rng(seed)
        times = np.sort(rng.uniform(0, 1, 60))
        walk = 5.0 + np.cumsum(rng.normal(0, 0.1, 60)) + rng.normal(0, 1e-3, 60)
        context, query = times[::2], times[1::2]
        inside = (query > context[0]) & (query < context[-1])
        t, q = torch.tensor(context).view(1, -1), torch.tensor(query).view(1, -1)
        r = torch.tensor(walk[::2]).view(1, 1, -1, 1)
        m = torch.ones(1, len(context), 1, dtype=torch.float64)
        for name, min_points in (("own", own_fit_min_points), ("fixed", 10**9)):
            monkeypatch.setattr(rk, "OWN_FIT_MIN_POINTS", min_points)
            mean, _ = condition_residual(t, r, m, q, process.tensors(t))
            errors[name] += np.sum((mean[0, 0, :, 0].numpy() - walk[1::2])[inside] ** 2)
        linear = np.interp(query, context, walk[::2])
        errors["linear"] += np.sum((linear - walk[1::2])[inside] ** 2)
    assert errors["own"] < 1.1 * errors["linear"]
    assert errors["fixed"] > 1.15 * errors["linear"]
