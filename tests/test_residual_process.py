"""The residual process: kriging and marginal likelihood against dense textbook formulas,
the Brownian-bridge limit, and parameter recovery from simulated residuals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import latentode.nn.residual_mle as mle
import latentode.nn.residual_process as rp
from latentode.nn.residual_mle import fit_residual_process
from latentode.nn.residual_process import (
    ResidualProcess,
    condition_residual,
    residual_log_marginal,
)


def _corr(kernel: str, gap: np.ndarray, ell: float) -> np.ndarray:
    d = np.abs(gap) / ell
    if kernel == "ou":
        return np.exp(-d)
    return (1 + math.sqrt(3) * d) * np.exp(-math.sqrt(3) * d)


def _random_problem(seed: int, n_b=3, n_t=7, n_q=5, n_c=2, n_s=4):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 1, (n_b, n_t)), axis=1)
    query = rng.uniform(-0.2, 1.3, (n_b, n_q))
    residuals = rng.normal(size=(n_s, n_b, n_t, n_c))
    mask = (rng.random((n_b, n_t, n_c)) < 0.7).astype(float)
    mask[:, 0, :] = 1.0
    residuals[:, mask == 0] = np.nan  # unobserved slots must never be read
    return times, query, residuals, mask


PROCESS = ResidualProcess(("ou", "matern32"), (0.7, 1.3), (0.3, 0.5), (0.05, 0.01))


def _dense_condition(
    times, query, residuals, mask, process, outlier_prior=rp.OUTLIER_PRIOR, outlying=None
):
    """Textbook kriging per (series, channel) with numpy, over observed points only: the
    mixture of the process (K + nI) and, with prior probability ``outlier_prior``, an
    OU process of variance 100 v and correlation time 10 with the same noise, each
    weighted by its posterior probability from scipy's densities of the context
    residuals; the variance is the mixture's, averaged over the samples. ``outlying``
    [C] bool: the channels that may be outlying (None: all)."""
    n_s, n_b, _, n_c = residuals.shape
    mean = np.zeros((n_s, n_b, query.shape[1], n_c))
    var = np.zeros((n_b, query.shape[1], n_c))
    for b in range(n_b):
        for c in range(n_c):
            k, v, ell, n = (
                process.kernel[c],
                process.variance[c],
                process.lengthscale[c],
                process.noise[c],
            )
            o = mask[b, :, c] > 0
            t = times[b, o]
            cov = v * _corr(k, t[:, None] - t[None, :], ell) + n * np.eye(len(t))
            cross = v * _corr(k, t[:, None] - query[b][None, :], ell)  # [T, Q]
            v_big, ell_big = rp.OUTLIER_VARIANCE_RATIO * v, rp.OUTLIER_LENGTHSCALE
            cov_big = v_big * _corr("ou", t[:, None] - t[None, :], ell_big) + n * np.eye(len(t))
            cross_big = v_big * _corr("ou", t[:, None] - query[b][None, :], ell_big)
            weights = np.linalg.solve(cov, cross)  # [T, Q]
            weights_big = np.linalg.solve(cov_big, cross_big)
            var_small = v - np.sum(cross * weights, axis=0)
            var_big = v_big - np.sum(cross_big * weights_big, axis=0)
            mixture_var = np.zeros(query.shape[1])
            for s in range(n_s):
                r = residuals[s, b, o, c]
                m_small, m_big = weights.T @ r, weights_big.T @ r
                w = 0.0
                if outlier_prior > 0 and (outlying is None or outlying[c]):
                    log_ratio = (
                        multivariate_normal(np.zeros(len(t)), cov_big).logpdf(r)
                        - multivariate_normal(np.zeros(len(t)), cov).logpdf(r)
                        + math.log(outlier_prior / (1 - outlier_prior))
                    )
                    w = 1 / (1 + math.exp(-log_ratio))
                mean[s, b, :, c] = (1 - w) * m_small + w * m_big
                mixture_var += (
                    (1 - w) * var_small + w * var_big + w * (1 - w) * (m_big - m_small) ** 2
                )
            var[b, :, c] = mixture_var / n_s
    return mean, var


@pytest.mark.parametrize("outlying", [None, (True, False)], ids=["all", "first channel"])
@pytest.mark.parametrize("outlier_prior", [rp.OUTLIER_PRIOR, 0.0])
@pytest.mark.parametrize("chunk", [10**9, 1])
def test_conditioning_matches_dense_kriging(chunk, outlier_prior, outlying, monkeypatch):
    """Against the dense mixture; with no prior weight on an outlying series, against
    plain kriging; with the outlying process allowed on one channel only, against the
    mixture there and plain kriging on the other."""
    process = PROCESS
    monkeypatch.setattr(rp, "_CHUNK_ELEMENTS", chunk)  # 1: one series per Cholesky chunk
    monkeypatch.setattr(rp, "OUTLIER_PRIOR", outlier_prior)
    times, query, residuals, mask = _random_problem(0)
    residuals[1, 2] += 4.0  # one path sample of one series far off: its weight moves
    t = torch.tensor(times)
    flags = None if outlying is None else torch.tensor(outlying)
    mean, var = condition_residual(
        t,
        torch.tensor(residuals),
        torch.tensor(mask),
        torch.tensor(query),
        process.tensors(t),
        flags,
    )
    want_mean, want_var = _dense_condition(
        times, query, residuals, mask, process, outlier_prior, outlying
    )
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(var.numpy(), want_var, rtol=1e-9, atol=1e-10)


def test_log_marginal_matches_scipy():
    times, _, residuals, mask = _random_problem(1)
    t = torch.tensor(times)
    got = residual_log_marginal(
        t, torch.tensor(residuals[0]), torch.tensor(mask), PROCESS.tensors(t)
    )
    for b in range(times.shape[0]):
        for c in range(mask.shape[-1]):
            o = mask[b, :, c] > 0
            tt = times[b, o]
            v, ell, n = PROCESS.variance[c], PROCESS.lengthscale[c], PROCESS.noise[c]
            cov = v * _corr(PROCESS.kernel[c], tt[:, None] - tt[None, :], ell) + n * np.eye(o.sum())
            want = multivariate_normal(np.zeros(o.sum()), cov).logpdf(residuals[0, b, o, c])
            assert got[b, c].item() == pytest.approx(want, rel=1e-10)


def test_log_marginal_with_gradients_equals_the_in_place_path_and_passes_gradcheck():
    """The kernel is built in place unless autograd records it: both give the same
    density, and the recorded one has the right gradient in v, ℓ and n."""
    times, _, residuals, mask = _random_problem(2)
    t, r, m = torch.tensor(times), torch.tensor(residuals[0]), torch.tensor(mask)
    v, ell, n, smooth = PROCESS.tensors(t)
    plain = residual_log_marginal(t, r, m, (v, ell, n, smooth))

    def density(v, ell, n):
        return residual_log_marginal(t, r, m, (v, ell, n, smooth))

    leaves = [x.detach().clone().requires_grad_() for x in (v, ell, n)]
    torch.testing.assert_close(density(*leaves), plain, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(density, tuple(leaves), eps=1e-6, atol=1e-6)


def test_predictive_log_density_is_the_joint_minus_the_given_part():
    """With ``given`` points the density is log p(r) - log p(r_given) (scipy, dense),
    whatever the order of given and other points in time."""
    times, _, residuals, mask = _random_problem(2, n_t=9)
    given = (np.random.default_rng(3).random(mask.shape) < 0.5) & (mask > 0)
    t = torch.tensor(times)
    process = PROCESS
    got = residual_log_marginal(
        t, torch.tensor(residuals[0]), torch.tensor(mask), process.tensors(t), torch.tensor(given)
    )
    for b in range(times.shape[0]):
        for c in range(mask.shape[-1]):
            o, g = mask[b, :, c] > 0, given[b, :, c]
            want = _dense_log_pdf(process, times[b], residuals[0, b, :, c], o, c)
            if g.any():
                want -= _dense_log_pdf(process, times[b], residuals[0, b, :, c], g, c)
            assert got[b, c].item() == pytest.approx(want, rel=1e-9, abs=1e-9)


def _dense_log_pdf(process, times: np.ndarray, r: np.ndarray, keep: np.ndarray, c: int) -> float:
    """log N(r[keep]; 0, K + n I) of ``process``'s channel ``c`` at times[keep] (scipy)."""
    v, ell, n = process.variance[c], process.lengthscale[c], process.noise[c]
    tt = times[keep]
    cov = v * _corr(process.kernel[c], tt[:, None] - tt[None, :], ell) + n * np.eye(keep.sum())
    return multivariate_normal(np.zeros(keep.sum()), cov).logpdf(np.atleast_1d(r[keep]))


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_predictive_fit_recovers_simulated_parameters(seed):
    """Fitting log p(others | given) on GP residuals recovers the process. Densities
    given nearby points pin the short-range behaviour: for Matérn-3/2 that is v / ℓ³
    (the microergodic parameter) and the noise, while v alone is looser than in the
    joint fit (seeds 6-8: 0.29-0.76 for 0.5)."""
    times, r, m = _simulate("matern32", v=0.5, ell=0.2, n=0.01, n_b=150, n_t=20, seed=seed)
    given = torch.rand(m.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    fitted = fit_residual_process(times, r, m, given=given)
    assert fitted.kernel == ("matern32",)
    v, ell = fitted.variance[0], fitted.lengthscale[0]
    assert v / ell**3 == pytest.approx(0.5 / 0.2**3, rel=0.3)
    assert ell == pytest.approx(0.2, rel=0.35)
    assert fitted.noise[0] == pytest.approx(0.01, rel=0.5)
    assert 0.5 / 2 < v < 0.5 * 2


def test_long_ou_lengthscale_bridges_linearly_and_far_queries_return_to_the_path(monkeypatch):
    """With ℓ ≫ the gap and no noise, the OU bridge is a Brownian bridge: its mean is
    the straight line between the two residuals; far away the residual decays to 0
    (the process alone: no outlying offset)."""
    monkeypatch.setattr(rp, "OUTLIER_PRIOR", 0.0)
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
    cov = [0.1 * _corr("ou", t[:, None] - t[None, :], 0.05) + 0.01 * np.eye(12) for t in times]
    noise = np.stack([np.linalg.cholesky(c) @ rng.normal(size=12) for c in cov])
    r = torch.tensor(noise - np.array([[0.0], [3.0]])).view(1, 2, 12, 1)
    t = torch.tensor(times)
    m = torch.ones(2, 12, 1, dtype=torch.float64)
    beyond = torch.full((2, 1), 1.5, dtype=torch.float64)
    mean, var = condition_residual(t, r, m, beyond, process.tensors(t))
    assert abs(mean[0, 0, 0, 0].item()) < 0.05
    assert var[0, 0, 0].item() == pytest.approx(0.1, rel=0.05)
    decay = math.exp(-(1.5 - times[1, -1]) / rp.OUTLIER_LENGTHSCALE)
    assert mean[0, 1, 0, 0].item() == pytest.approx(r[0, 1, -1, 0].item() * decay, abs=0.15)
    assert 0.1 < var[1, 0, 0].item() < rp.OUTLIER_VARIANCE_RATIO * 0.1


def _simulate(kernel: str, v: float, ell: float, n: float, n_b: int, n_t: int, seed: int):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 1, (n_b, n_t)), axis=1)
    r = np.zeros((n_b, n_t, 1))
    for b in range(n_b):
        tt = times[b]
        cov = v * _corr(kernel, tt[:, None] - tt[None, :], ell) + n * np.eye(n_t)
        r[b, :, 0] = np.linalg.cholesky(cov) @ rng.normal(size=n_t)
    return torch.tensor(times), torch.tensor(r), torch.ones(n_b, n_t, 1, dtype=torch.float64)


@pytest.mark.parametrize("kernel", ["ou", "matern32"])
def test_fit_recovers_simulated_parameters_and_kernel(kernel):
    times, r, m = _simulate(kernel, v=0.5, ell=0.2, n=0.01, n_b=150, n_t=20, seed=3)
    fitted = fit_residual_process(times, r, m)
    assert fitted.kernel == (kernel,)
    assert fitted.variance[0] == pytest.approx(0.5, rel=0.25)
    assert fitted.lengthscale[0] == pytest.approx(0.2, rel=0.3)
    assert fitted.noise[0] == pytest.approx(0.01, rel=0.5)


def test_channel_with_too_few_points_keeps_a_white_default():
    times, r, m = _simulate("ou", 0.5, 0.2, 0.01, n_b=40, n_t=10, seed=4)
    r2 = torch.cat([r, 3.0 * torch.ones_like(r)], dim=-1)
    m2 = torch.cat([m, torch.zeros_like(m)], dim=-1)
    m2[0, :2, 1] = 1.0  # two observed values only
    fitted = fit_residual_process(times, r2, m2)
    assert fitted.kernel[1] == "ou"
    assert fitted.variance[1] == pytest.approx(4.5) and fitted.noise[1] == pytest.approx(4.5)


def test_round_trip_and_validation():
    assert ResidualProcess.from_dict(PROCESS.to_dict()) == PROCESS
    with pytest.raises(ValueError, match="unknown residual kernel"):
        ResidualProcess(("rbf",), (1.0,), (1.0,), (1.0,))
    with pytest.raises(ValueError, match="positive"):
        ResidualProcess(("ou",), (1.0,), (-1.0,), (1.0,))


def test_only_channels_without_a_level_slope_may_have_outlying_series():
    mixed = ResidualProcess(("ou", "ou"), (1.0, 1.0), (1.0, 1.0), (0.1, 0.1), (0.0, 2.5), (0, 0))
    assert mixed.outlying.tolist() == [True, False]
    assert PROCESS.outlying.tolist() == [True, True]  # no level slopes at all


LEVELLED = ResidualProcess(
    *(getattr(PROCESS, f) for f in ("kernel", "variance", "lengthscale", "noise")),
    (0.8, 2.5),
    (-0.4, -1.0),
)


@pytest.mark.parametrize("process", [PROCESS, LEVELLED], ids=["plain", "level-scaled"])
def test_latent_ode_sample_adds_the_kriged_residual_of_each_path(process):
    """With a residual process, each sample is its path plus the kriging of that path's
    residuals at the context, kept within [min(0, min r), max(0, max r)] of those
    residuals (recomputed here from the network's own pieces with the dense numpy
    formulas); the std is the conditional std plus the white noise. With level scales,
    the residuals are divided by g = 1 + b·max(path - z, 0) of the mean path at the
    context, and the kriged mean and std multiplied by g at the query; those channels
    have no outlying series' process."""
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
    resid = (batch.values.numpy()[None] - path_c) / g_c
    resid[:, batch.mask.numpy() == 0] = np.nan
    shift, var = _dense_condition(
        batch.times.numpy(),
        batch.target_times.numpy(),
        resid,
        batch.mask.numpy(),
        process,
        outlying=process.outlying.numpy(),
    )
    sd3 = 3 * np.sqrt(process.variance)  # [C]
    high = np.maximum(np.nanmax(resid, axis=2, keepdims=True), sd3)  # [S, B, 1, C]
    low = np.minimum(np.nanmin(resid, axis=2, keepdims=True), -sd3)
    shift = np.clip(shift, low, high)
    np.testing.assert_allclose(out["path"].numpy(), path_q, atol=1e-6)
    np.testing.assert_allclose(out["mean"].numpy(), path_q + g_q * shift, atol=1e-6)
    want_std = g_q * np.sqrt(var + np.asarray(process.noise))
    np.testing.assert_allclose(out["noise_std"].numpy(), want_std, rtol=1e-6)


def test_fit_residual_pads_batches_and_recovers_the_simulated_process():
    """fit_residual on batches of different widths (whole series as targets) around a
    known path (a stub network returns sin(t) as every sample's path): the residual
    process it fits is the one the series were simulated from."""
    from latentode.data.batching import collate
    from latentode.data.dataset import make_series
    from latentode.data.scaling import Scaler
    from latentode.models import fit_residual

    class KnownPath(torch.nn.Module):
        def sample(self, batch, n_samples, generator=None):
            path = torch.sin(batch.target_times).unsqueeze(-1)  # [B, T', 1]
            return {"mean": path.expand(n_samples, -1, -1, -1)}

    scaler = Scaler((0.0,), (1.0,), 1.0)
    batches = []
    for k, n_t in enumerate([12, 20, 30]):  # three batch widths
        times, r, _ = _simulate("matern32", v=0.4, ell=0.3, n=0.02, n_b=60, n_t=n_t, seed=10 + k)
        series = []
        for i, (t, r_i) in enumerate(zip(times.numpy(), r.numpy())):
            t = t - t[0]  # model time 0 at the first (context) point, where the path starts
            series.append(make_series(i, t, np.sin(t)[:, None] + r_i))
        contexts = [s.take(np.arange(len(s)) % 2 == 0) for s in series]
        batches.append(collate(contexts, scaler, series, dtype=torch.float64))
    fitted = fit_residual(KnownPath(), batches, n_samples=2)  # given: the context points
    assert fitted.kernel == ("matern32",)
    assert fitted.variance[0] == pytest.approx(0.4, rel=0.3)
    assert fitted.lengthscale[0] == pytest.approx(0.3, rel=0.35)
    assert fitted.noise[0] == pytest.approx(0.02, rel=0.5)


def test_in_context_marks_the_target_times_the_context_holds():
    """Context times are a subset of the target times; padding (repeating the last real
    time) must not mark anything."""
    from latentode.data.batching import collate
    from latentode.data.dataset import make_series
    from latentode.data.scaling import Scaler
    from latentode.models.residual_fit import in_context

    whole = [
        make_series("a", np.array([0.0, 1.0, 2.0, 3.0]), np.arange(4.0)[:, None]),
        make_series("b", np.array([0.0, 0.5, 4.0]), np.arange(3.0)[:, None]),
    ]
    contexts = [
        whole[0].take(np.array([True, False, True, False])),
        whole[1].take(np.array([False, True, False])),
    ]
    batch = collate(contexts, Scaler((0.0,), (1.0,), 1.0), whole, dtype=torch.float64)
    got = in_context(batch)
    want = [[True, False, True, False], [False, True, False, False]]
    assert got[:, :4].tolist() == want


def test_kriged_residual_stays_within_the_context_range_or_three_prior_stds(monkeypatch):
    """A smooth kernel extrapolates the last two points' slope (here: 0 then 3 a short
    gap apart) well past them. The bound keeps the forecast's residual within [-3 sd,
    max(3, 3 sd)]: at the context's 3 for a process of sd 0.5, at 3 sd = 4.5 for one of
    sd 1.5; a residual inside the range is untouched. (The fitted process alone: with
    an outlying series' process in the mixture, 3 at sd 0.5 would also be damped.)"""
    from latentode.nn.residual_process import within_context_range

    monkeypatch.setattr(rp, "OUTLIER_PRIOR", 0.0)

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


def test_variance_stays_within_four_mean_squares_of_the_residuals(monkeypatch):
    """Residuals that are straight lines through each series' middle (random slopes):
    the predictive likelihood favours an ever longer, ever larger Matérn-3/2 (without the
    cap: v 47 times the mean square, ℓ 20 times the span); the fit keeps v <= 4x."""
    g = torch.Generator().manual_seed(0)
    t = torch.sort(torch.rand(60, 12, generator=g), 1).values.double()
    slope = torch.randn(60, 1, generator=g).double()
    noise = 0.01 * torch.randn(60, 12, 1, generator=g).double()
    r = (slope * (t - 0.5)).unsqueeze(-1) + noise
    m = torch.ones(60, 12, 1, dtype=torch.float64)
    given = torch.rand(60, 12, 1, generator=g) < 0.5
    mean_square = float((r**2).mean())
    fitted = fit_residual_process(t, r, m, given=given)
    assert fitted.kernel == ("matern32",)
    assert fitted.variance[0] <= mle.VARIANCE_CAP * mean_square
    monkeypatch.setattr(mle, "VARIANCE_CAP", 1e12)
    loose = fit_residual_process(t, r, m, given=given)
    assert loose.variance[0] > 10 * mean_square  # the drift the cap removes


def test_fit_recovers_a_level_scale_and_keeps_none_where_there_is_none():
    """Residuals simulated as g·u, u an OU process and g = 1 + 3·(path - z) along a
    path rising from z to 4 above it: the fit finds slope 3 on that channel. The same
    unscaled residuals give slope 0, and a channel without an origin (it can be
    negative) gets none."""
    times, u, m = _simulate("ou", v=0.5, ell=0.2, n=0.01, n_b=150, n_t=20, seed=6)
    path = 4.0 * times.unsqueeze(-1) - 1.0  # [B, T, 1]: 0 to 4 above z = -1
    scaled = (1.0 + 3.0 * (path + 1.0)) * u
    r = torch.cat([scaled, u, scaled], dim=-1)
    fitted = fit_residual_process(
        times,
        r,
        m.expand(-1, -1, 3),
        path=path.expand(-1, -1, 3),
        level_zero=torch.tensor([-1.0, -1.0, float("nan")], dtype=torch.float64),
    )
    assert fitted.level_slope == (3.0, 0.0, 0.0)
    assert fitted.level_zero == (-1.0, -1.0, 0.0)
    assert fitted.variance[0] == pytest.approx(0.5, rel=0.25)  # u's own scale
    assert fitted.variance[1] == pytest.approx(0.5, rel=0.25)
    assert fitted.variance[2] > 20 * fitted.variance[0]  # the unscaled fit sees g² in v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refining_the_best_two_slopes_fits_what_refining_every_slope_fits(monkeypatch, seed):
    """The refinement visits only each channel's REFINED_VERSIONS most likely slopes; on
    residuals with slopes 0, 0.3, 1 and 10 (and a channel without an origin), visiting
    all six finds the same processes, to the bit."""
    times, u, m = _simulate("matern32", v=0.3, ell=0.1, n=0.02, n_b=60, n_t=15, seed=seed)
    path = 3.0 * times.unsqueeze(-1) - 0.5  # [B, T, 1]
    b = torch.tensor([0.0, 0.3, 1.0, 10.0, 0.0], dtype=torch.float64)
    r = (1.0 + b * (path + 0.5)) * u.expand(-1, -1, 5).roll(seed, dims=0)
    kwargs = {
        "given": torch.rand(*r.shape, generator=torch.Generator().manual_seed(seed)) < 0.5,
        "path": path.expand(-1, -1, 5),
        "level_zero": torch.tensor([-0.5] * 4 + [float("nan")], dtype=torch.float64),
    }
    assert mle.REFINED_VERSIONS == 2
    two = fit_residual_process(times, r, m.expand(-1, -1, 5), **kwargs)
    monkeypatch.setattr(mle, "REFINED_VERSIONS", len(mle.LEVEL_SLOPES))
    every = fit_residual_process(times, r, m.expand(-1, -1, 5), **kwargs)
    assert two == every
    assert two.level_slope[4] == 0.0 and two.level_slope[3] >= 3.0  # the check can fail


def test_level_scale_formula_round_trip_and_validation():
    process = ResidualProcess(
        ("ou", "ou"), (1.0, 1.0), (1.0, 1.0), (0.1, 0.1), (2.0, 0.0), (-0.5, 0.3)
    )
    path = torch.tensor([[-1.0, 5.0], [0.5, 0.2]])
    expected = torch.tensor([[1.0, 1.0], [1.0 + 2.0 * 1.0, 1.0]])  # below z: 1
    torch.testing.assert_close(process.level_scale(path), expected)
    torch.testing.assert_close(PROCESS.level_scale(path), torch.ones_like(path))
    assert ResidualProcess.from_dict(process.to_dict()) == process
    assert "level_slope" not in PROCESS.to_dict()  # files of models without level scales
    with pytest.raises(ValueError, match="level slopes must be finite and >= 0"):
        ResidualProcess(("ou",), (1.0,), (1.0,), (1.0,), (-1.0,), (0.0,))
    with pytest.raises(ValueError, match="come together"):
        ResidualProcess(("ou",), (1.0,), (1.0,), (1.0,), (1.0,), None)
    with pytest.raises(ValueError, match="one entry per channel"):
        ResidualProcess(("ou",), (1.0,), (1.0,), (1.0,), (1.0, 2.0), (0.0, 0.0))


def test_level_scales_need_the_path():
    times, u, m = _simulate("ou", v=0.5, ell=0.2, n=0.01, n_b=5, n_t=6, seed=1)
    with pytest.raises(ValueError, match="needs the path"):
        fit_residual_process(times, u, m, level_zero=torch.zeros(1, dtype=torch.float64))


@pytest.mark.parametrize("kernels", [("ou", "ou"), ("matern32", "matern32"), ("ou", "matern32")])
def test_the_kriging_cross_covariance_is_the_textbook_kernel(kernels) -> None:
    """The fewer-pass cross-covariance of prediction against v·ρ(|t - t'| / ℓ) in numpy."""
    times, query, _, mask = _random_problem(3)
    process = ResidualProcess(kernels, (0.5, 2.0), (0.3, 0.05), (0.01, 1e-4))
    params = process.tensors(torch.ones(1, dtype=torch.float64))
    rows = rp.ObservedRows.of(torch.as_tensor(mask))
    t1 = rows.times(torch.as_tensor(times))
    t2 = torch.as_tensor(query)[rows.series]
    got = rp._cross_covariance(rows, t1, t2, params).numpy()
    for i, (c, a, b) in enumerate(zip(rows.channel.tolist(), t1.numpy(), t2.numpy())):
        gap = a[:, None] - b[None, :]
        want = process.variance[c] * _corr(kernels[c], gap, process.lengthscale[c])
        np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-14)
