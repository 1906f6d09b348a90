"""Built-in correctors that need no physics: none (identity), ideal (toy), nearest_cluster.

``ideal`` is the paper's idealised correction for the Gaussian toy: the corrected
distribution is π_γ p = (p + γ p*) / (1 + γ), realised per sample by replacing it with a
draw from the target p* with probability γ / (1 + γ).

``nearest_cluster`` is the paper's MNIST corrector: k-means is fitted on real feature
vectors in :meth:`prepare`; a sample moves to its nearest centre (``strength`` 1) or part
of the way toward it (0 < strength < 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from sccl.correctors.base import (
    STATUS_OK, CorrectionResult, Corrector, CorrectorError, SampleOutcome, apply_policy, check_domain,
    count_status, indexed_normal, indexed_uniform,
)

log = logging.getLogger(__name__)


def _check_range(name: str, key: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    if not np.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise CorrectorError(f"corrector {name}: {key}={value!r}, expected a number in [{lo}, {hi}]")


@dataclass
class IdealSettings:
    """Settings of ``ideal`` (see :class:`IdealCorrector`)."""

    gamma: float = 1.0  #: correction strength γ ≥ 0: a sample is replaced with probability γ/(1+γ)
    target_mean: Any = None  #: target mean (D numbers); None: fitted on the real data in prepare()
    target_cov: Any = None  #: target covariance (D×D); default identity when only the mean is given


@dataclass
class NearestClusterSettings:
    """Settings of ``nearest_cluster`` (see :class:`NearestClusterCorrector`)."""

    k: int = 10  #: number of k-means centres
    strength: float = 1.0  #: 1 snaps to the centre, 0 < s < 1 moves part of the way
    seed: int = 0  #: seed of the k-means fit
    iters: int = 100  #: Lloyd iterations at most


class IdentityCorrector(Corrector):
    """``none``: every sample is kept unchanged (the uncorrected self-consuming loop).

    Works on either domain; non-finite vector rows are still counted and rejected."""

    name = "none"
    domain = "any"
    config_keys = ()

    def correct(self, batch: Any, seed: int, *, offset: int = 0) -> CorrectionResult:
        outcomes = [SampleOutcome(STATUS_OK, corrected=batch[i]) for i in range(len(batch))]
        domain = "vector" if isinstance(batch, np.ndarray) else "motion"
        return apply_policy(batch, outcomes, self.policy, domain)


class IdealCorrector(Corrector):
    """``ideal``: replace a sample by a target draw with probability γ/(1+γ) (vector domain).

    Config: ``gamma`` (≥ 0, default 1), and the target Gaussian ``target_mean`` /
    ``target_cov``; without them :meth:`prepare` fits mean and covariance on the real data.
    Diagnostics: ``replaced`` (1/0)."""

    name = "ideal"
    domain = "vector"
    settings_class = IdealSettings

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        settings: IdealSettings = self.settings
        self.gamma = settings.gamma
        _check_range(self.name, "gamma", self.gamma, lo=0.0)
        self.mean: np.ndarray | None = None
        self.chol: np.ndarray | None = None
        if settings.target_mean is not None:
            mean = np.asarray(settings.target_mean, dtype=np.float64).reshape(-1)
            cov_given = settings.target_cov if settings.target_cov is not None else np.eye(mean.size)
            cov = np.asarray(cov_given, dtype=np.float64)
            self._set_target(mean, cov)
        elif settings.target_cov is not None:
            raise CorrectorError("corrector ideal: target_cov given without target_mean")

    def _set_target(self, mean: np.ndarray, cov: np.ndarray) -> None:
        if cov.shape != (mean.size, mean.size):
            raise CorrectorError(f"corrector ideal: target_cov has shape {cov.shape}, expected {(mean.size, mean.size)}")
        try:
            chol = np.linalg.cholesky(cov + 1e-12 * np.eye(mean.size))
        except np.linalg.LinAlgError:
            raise CorrectorError("corrector ideal: target_cov is not positive definite") from None
        self.mean, self.chol = mean, chol

    def prepare(self, reference: Any) -> None:
        if self.mean is not None:
            return
        x = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        if x.shape[0] < 2:
            raise CorrectorError("corrector ideal: prepare() needs at least 2 real samples to fit the target")
        self._set_target(x.mean(0), np.atleast_2d(np.cov(x, rowvar=False)))

    def correct(self, batch: np.ndarray, seed: int, *, offset: int = 0) -> CorrectionResult:
        check_domain(self, batch)
        if self.mean is None:
            raise CorrectorError("corrector ideal: no target; set target_mean/target_cov or call prepare(real_data)")
        n = batch.shape[0]
        flat = batch.reshape(n, -1).astype(np.float64)
        if flat.shape[1] != self.mean.size:
            raise CorrectorError(f"corrector ideal: samples have {flat.shape[1]} dims, target has {self.mean.size}")
        replace = indexed_uniform(seed, offset, n) < self.gamma / (1.0 + self.gamma)
        draws = self.mean + indexed_normal(seed, offset, n, (self.mean.size,)) @ self.chol.T
        out = np.where(replace[:, None], draws, flat).reshape(batch.shape).astype(batch.dtype)
        finite = np.isfinite(out.reshape(n, -1)).all(1)
        status = ["ok" if f else "nan" for f in finite]
        diags = [{"replaced": float(r), "kept": float(f)} for r, f in zip(replace, finite)]
        kept = np.nonzero(finite)[0]
        return CorrectionResult(out[kept], kept.astype(np.int64), status, diags, count_status(status))


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (deterministic for a seed). Returns (k, D) centres."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        assign = _nearest(x, c)
        new = np.stack([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def _nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.argmin(d, axis=1)


class NearestClusterCorrector(Corrector):
    """``nearest_cluster``: move each sample toward its nearest k-means centre (vector domain).

    Config: ``k`` (default 10), ``strength`` in [0, 1] (default 1 = snap to the centre),
    ``seed`` of the k-means fit (default 0), ``iters``. Diagnostics: ``cluster`` and
    ``distance`` (to the centre, before correction)."""

    name = "nearest_cluster"
    domain = "vector"
    settings_class = NearestClusterSettings

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        settings: NearestClusterSettings = self.settings
        self.k, self.strength, self.seed, self.iters = settings.k, settings.strength, settings.seed, settings.iters
        _check_range(self.name, "k", self.k, lo=1)
        _check_range(self.name, "strength", self.strength, lo=0.0, hi=1.0)
        _check_range(self.name, "iters", self.iters, lo=1)
        self.centres: np.ndarray | None = None

    def prepare(self, reference: Any) -> None:
        x = np.asarray(reference, dtype=np.float64)
        x = x.reshape(x.shape[0], -1)
        if x.shape[0] < self.k:
            raise CorrectorError(f"corrector nearest_cluster: k={self.k} but only {x.shape[0]} real samples")
        if not np.isfinite(x).all():
            raise CorrectorError("corrector nearest_cluster: real data contains non-finite values")
        self.centres = kmeans(x, self.k, self.seed, self.iters)
        log.info("nearest_cluster: fitted k=%d centres on %d samples", self.k, x.shape[0])

    def correct(self, batch: np.ndarray, seed: int, *, offset: int = 0) -> CorrectionResult:
        check_domain(self, batch)
        if self.centres is None:
            raise CorrectorError("corrector nearest_cluster: call prepare(real_features) before correct()")
        n = batch.shape[0]
        flat = batch.reshape(n, -1).astype(np.float64)
        if flat.shape[1] != self.centres.shape[1]:
            raise CorrectorError(
                f"corrector nearest_cluster: samples have {flat.shape[1]} dims, centres {self.centres.shape[1]}"
            )
        finite = np.isfinite(flat).all(1)
        safe = np.where(finite[:, None], flat, 0.0)
        assign = _nearest(safe, self.centres)
        target = self.centres[assign]
        dist = np.linalg.norm(target - safe, axis=1)
        out = (safe + self.strength * (target - safe)).reshape(batch.shape).astype(batch.dtype)
        status = ["ok" if f else "nan" for f in finite]
        diags = [
            {"cluster": float(a) if f else np.nan, "distance": float(d) if f else np.nan, "kept": float(f)}
            for a, d, f in zip(assign, dist, finite)
        ]
        kept = np.nonzero(finite)[0]
        return CorrectionResult(out[kept], kept.astype(np.int64), status, diags, count_status(status))
