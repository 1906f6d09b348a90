"""Closed-form distances for the Gaussian toy experiments.

For a toy generator the target is a known Gaussian, so collapse can be measured exactly:
the 2-Wasserstein distance between the Gaussian fitted to the samples and the target,
plus the two things that collapse (mean drift and covariance shrinkage)."""

from __future__ import annotations

import numpy as np

from sccl.metrics.fid import frechet_distance, gaussian_stats


def gaussian_w2(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """2-Wasserstein distance W₂ between two Gaussians (the square root of the Fréchet distance)."""
    return float(np.sqrt(frechet_distance(mu1, s1, mu2, s2)))


def toy_metrics(samples: np.ndarray, target_mean: np.ndarray, target_cov: np.ndarray) -> dict[str, float]:
    """Metrics of (N, D) samples against the target N(target_mean, target_cov).

    Keys: ``toy/w2`` (W₂ of the fitted Gaussian to the target), ``toy/mean_error``
    (‖μ̂ − μ‖), ``toy/cov_trace`` (tr Σ̂; shrinks under collapse), ``toy/cov_logdet``
    (log det Σ̂; −inf once a direction has collapsed), plus the target's own trace/logdet
    as ``toy/target_cov_trace`` / ``toy/target_cov_logdet`` for reference."""
    x = np.asarray(samples, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    mu_t = np.atleast_1d(np.asarray(target_mean, np.float64))
    s_t = np.atleast_2d(np.asarray(target_cov, np.float64))
    if x.shape[1] != mu_t.size:
        raise ValueError(f"samples have dimension {x.shape[1]} but the target mean has {mu_t.size}")
    mu, s = gaussian_stats(x)

    def logdet(m: np.ndarray) -> float:
        sign, val = np.linalg.slogdet(m)
        return float(val) if sign > 0 else float("-inf")

    return {
        "toy/w2": gaussian_w2(mu, s, mu_t, s_t),
        "toy/mean_error": float(np.linalg.norm(mu - mu_t)),
        "toy/cov_trace": float(np.trace(s)),
        "toy/cov_logdet": logdet(s),
        "toy/target_cov_trace": float(np.trace(s_t)),
        "toy/target_cov_logdet": logdet(s_t),
    }
