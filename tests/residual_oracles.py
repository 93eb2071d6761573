"""Independent references for the residual-process tests: the textbook kernels, a
random kriging problem and dense numpy/scipy kriging with the outlying series' mixture."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import multivariate_normal

import latentode.nn.residual_kriging as rk
from latentode.nn.residual_process import ResidualProcess

__all__ = ["PROCESS", "correlation", "dense_condition", "random_problem"]


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


def dense_condition(
    times, query, residuals, mask, process, outlier_prior=rk.OUTLIER_PRIOR, outlying=None
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
            cov = v * correlation(k, t[:, None] - t[None, :], ell) + n * np.eye(len(t))
            cross = v * correlation(k, t[:, None] - query[b][None, :], ell)  # [T, Q]
            v_big, ell_big = rk.OUTLIER_VARIANCE_RATIO * v, rk.OUTLIER_LENGTHSCALE
            cov_big = v_big * correlation("ou", t[:, None] - t[None, :], ell_big) + n * np.eye(
                len(t)
            )
            cross_big = v_big * correlation("ou", t[:, None] - query[b][None, :], ell_big)
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
