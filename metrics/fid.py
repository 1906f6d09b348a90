"""Fréchet distance between Gaussians fitted to feature sets (FID and its relatives).

FD(N(μ₁,Σ₁), N(μ₂,Σ₂)) = ‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), i.e. the *squared*
2-Wasserstein distance between the two Gaussians. The matrix square root is taken through
symmetric eigendecompositions (Σ₁^½ Σ₂ Σ₁^½ is symmetric PSD), which is exact for
rank-deficient covariances — the usual case here, where the held-out real set (44 windows)
has fewer samples than feature dimensions — and avoids the complex round-off of ``sqrtm``.
"""

from __future__ import annotations

import numpy as np


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((Σ₁^½ Σ₂ Σ₁^½)^½) = tr((Σ₁Σ₂)^½) for PSD matrices."""
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, s1) and N(mu2, s2); ≥ 0."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, cov {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof=1, as the FID literature) of an (N, D) feature set."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need an (N>=2, D) feature array, got {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_samples(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) sample sets."""
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))


def average_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all distinct pairs (Bailando's Div_k / Div_g)."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    sq = np.sum(x * x, axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None)
    iu = np.triu_indices(n, k=1)
    return float(np.sqrt(d2[iu]).mean())
