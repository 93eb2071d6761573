"""Independent references for the residual-process tests: the textbook kernels, a
random kriging problem and dense numpy/scipy kriging with the outlying series' mixture."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import multivariate_normal

import latentode.nn.residual_kriging as rk
from latentode.nn.residual_process import ResidualProcess

__all__ = ["PROCESS", "correlation", "dense_condition", "own_ou_fit", "random_problem"]


def correlation(kernel: str, gap: np.ndarray, ell: float) -> np.ndarray:
    d = np.abs(gap) / ell
    if kernel == "ou":
        return np.exp(-d)
    return (1 + math.sqrt(3) * d) * np.exp(-math.sqrt(3) * d)


def random_problem(seed: int, n_b=3, n_t=7, n_q=5, n_c=2, n_s=4):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 1, (n_b, n_t)), axis=1)
    query = rng.uniform(-0.2, 1.3, (n_b, n_q))
    residuals = rng.normal(size=(n_s, n_b, n_t, n_c))
    mask = (rng.random((n_b, n_t, n_c)) < 0.7).astype(float)
    mask[:, 0, :] = 1.0
    residuals[:, mask == 0] = np.nan  # unobserved slots must never be read
    return times, query, residuals, mask


PROCESS = ResidualProcess(("ou", "matern32"), (0.7, 1.3), (0.3, 0.5), (0.05, 0.01))


def own_ou_fit(t: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    """(v, ℓ, n) of the OU process with ℓ = ``rk.OUTLIER_LENGTHSCALE`` most likely for one
    row's residuals ``r`` [S, K] at times ``t`` [K] (all S samples, one scale), by scipy
    densities for each ``n / v`` of ``rk._OWN_NOISE_RATIOS``, ``v`` profiled out: with
    unit variance, v = the mean over samples and points of ``r R⁻¹ r``, and the
    likelihood is ``sum_s log N(r_s; 0, v R)``."""
    ell, best = rk.OUTLIER_LENGTHSCALE, (-math.inf, None)
    for ratio in rk._OWN_NOISE_RATIOS:
        corr = correlation("ou", t[:, None] - t[None, :], ell) + ratio * np.eye(len(t))
        v = max(np.mean([x @ np.linalg.solve(corr, x) for x in r]) / len(t), 1e-12)
        ll = sum(multivariate_normal(np.zeros(len(t)), v * corr).logpdf(x) for x in r)
        if ll > best[0]:
            best = (ll, (v, ell, ratio * v))
    return best[1]


def dense_condition(
    times, query, residuals, mask, process, outlier_prior=rk.OUTLIER_PRIOR, outlying=None
):
    """Textbook kriging per (series, channel) with numpy, over observed points only: the
    mixture of the process (K + nI) and, with prior probability ``outlier_prior``, an
    OU process of variance 100 v and correlation time 10 with the same noise, each
    weighted by its posterior probability from scipy's densities of the context
    residuals; the variance is the mixture's, averaged over the samples. ``outlying``
    [B, C] bool: the rows that may be outlying (None: all). A row with at least
    ``rk.OWN_FIT_MIN_POINTS`` points and a weight above ``rk.OWN_FIT_MIN_WEIGHT`` in
    some sample is kriged, under the outlying hypothesis, with :func:`own_ou_fit`'s
    process (the weights stay those of the fixed one)."""
    n_s, n_b, _, n_c = residuals.shape
    mean = np.zeros((n_s, n_b, query.shape[1], n_c))
    var = np.zeros((n_b, query.shape[1], n_c))

    def krige(t, q, v, ell, n, kernel):
        cov = v * correlation(kernel, t[:, None] - t[None, :], ell) + n * np.eye(len(t))
        cross = v * correlation(kernel, t[:, None] - q[None, :], ell)  # [T, Q]
        weights = np.linalg.solve(cov, cross)  # [T, Q]
        return cov, weights, v - np.sum(cross * weights, axis=0)

    for b in range(n_b):
        for c in range(n_c):
            k, v, ell, n = (
                process.kernel[c],
                process.variance[c],
                process.lengthscale[c],
                process.noise[c],
            )
            o = mask[b, :, c] > 0
            t, r = times[b, o], residuals[:, b, o, c]  # r [S, K]
            cov, weights, var_small = krige(t, query[b], v, ell, n, k)
            v_big = rk.OUTLIER_VARIANCE_RATIO * v
            cov_big, weights_big, var_big = krige(
                t, query[b], v_big, rk.OUTLIER_LENGTHSCALE, n, "ou"
            )
            w = np.zeros(n_s)
            if outlier_prior > 0 and (outlying is None or outlying[b, c]):
                for s in range(n_s):
                    log_ratio = (
                        multivariate_normal(np.zeros(len(t)), cov_big).logpdf(r[s])
                        - multivariate_normal(np.zeros(len(t)), cov).logpdf(r[s])
                        + math.log(outlier_prior / (1 - outlier_prior))
                    )
                    w[s] = 1 / (1 + math.exp(-log_ratio))
            if w.max() > rk.OWN_FIT_MIN_WEIGHT and len(t) >= rk.OWN_FIT_MIN_POINTS:
                _, weights_big, var_big = krige(t, query[b], *own_ou_fit(t, r), "ou")
            mixture_var = np.zeros(query.shape[1])
            for s in range(n_s):
                m_small, m_big = weights.T @ r[s], weights_big.T @ r[s]
                mean[s, b, :, c] = (1 - w[s]) * m_small + w[s] * m_big
                mixture_var += (
                    (1 - w[s]) * var_small
                    + w[s] * var_big
                    + w[s] * (1 - w[s]) * (m_big - m_small) ** 2
                )
            var[b, :, c] = mixture_var / n_s
    return mean, var
