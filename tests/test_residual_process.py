"""The residual process: its marginal likelihood against dense textbook formulas, its
parameters recovered from simulated residuals, its level scale and its file form (the
kriging: ``test_residual_kriging.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from residual_oracles import PROCESS, correlation, random_problem
from scipy.stats import multivariate_normal

import latentode.nn.residual_mle as mle
import latentode.nn.residual_process as rp
from latentode.nn.residual_mle import fit_residual_process
from latentode.nn.residual_process import ResidualProcess, residual_log_marginal


def test_log_marginal_matches_scipy():
    times, _, residuals, mask = random_problem(1)
    t = torch.tensor(times)
    got = residual_log_marginal(
        t, torch.tensor(residuals[0]), torch.tensor(mask), PROCESS.tensors(t)
    )
    for b in range(times.shape[0]):
        for c in range(mask.shape[-1]):
            o = mask[b, :, c] > 0
            tt = times[b, o]
            v, ell, n = PROCESS.variance[c], PROCESS.lengthscale[c], PROCESS.noise[c]
            cov = v * correlation(PROCESS.kernel[c], tt[:, None] - tt[None, :], ell) + n * np.eye(
                o.sum()
            )
            want = multivariate_normal(np.zeros(o.sum()), cov).logpdf(residuals[0, b, o, c])
            assert got[b, c].item() == pytest.approx(want, rel=1e-10)


def test_log_marginal_with_gradients_equals_the_in_place_path_and_passes_gradcheck():
    """The kernel is built in place unless autograd records it: both give the same
    density, and the recorded one has the right gradient in v, ℓ and n."""
    times, _, residuals, mask = random_problem(2)
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
    times, _, residuals, mask = random_problem(2, n_t=9)
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
    cov = v * correlation(process.kernel[c], tt[:, None] - tt[None, :], ell) + n * np.eye(
        keep.sum()
    )
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


def _simulate(kernel: str, v: float, ell: float, n: float, n_b: int, n_t: int, seed: int):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 1, (n_b, n_t)), axis=1)
    r = np.zeros((n_b, n_t, 1))
    for b in range(n_b):
        tt = times[b]
        cov = v * correlation(kernel, tt[:, None] - tt[None, :], ell) + n * np.eye(n_t)
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
    times, query, _, mask = random_problem(3)
    process = ResidualProcess(kernels, (0.5, 2.0), (0.3, 0.05), (0.01, 1e-4))
    params = process.tensors(torch.ones(1, dtype=torch.float64))
    rows = rp.ObservedRows.of(torch.as_tensor(mask))
    t1 = rows.times(torch.as_tensor(times))
    t2 = torch.as_tensor(query)[rows.series]
    got = rp.cross_covariance(rows, t1, t2, params).numpy()
    for i, (c, a, b) in enumerate(zip(rows.channel.tolist(), t1.numpy(), t2.numpy())):
        gap = a[:, None] - b[None, :]
        want = process.variance[c] * correlation(kernels[c], gap, process.lengthscale[c])
        np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-14)
