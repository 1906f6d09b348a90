"""Gaussian toy generators fitted by maximum likelihood on vectors.

They make closed-form collapse checks possible: refitting a Gaussian k times on N of its own
samples with the ``ddof=0`` (MLE) variance estimator gives E[σ²ₖ] = ((N−1)/N)^k σ², while
``ddof=1`` (unbiased) keeps E[σ²ₖ] = σ². Everything is float64 numpy; ``fit`` ignores ``steps``
(closed form) and ``labels``; ``sample`` ignores ``labels``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sccl.generators.base import CheckpointError, Generator, GeneratorConfigError, ProgressFn

log = logging.getLogger(__name__)

_COVARIANCES = ("full", "diag")


@dataclass
class GaussianSettings:
    """Settings of ``gaussian`` (see :class:`GaussianGenerator`)."""

    ddof: int = 0  #: 0 = maximum likelihood, 1 = unbiased covariance
    covariance: str = "full"  #: "full" or "diag"
    device: str | None = None  #: accepted and ignored (numpy): checkpoints are loaded with one


@dataclass
class GaussianMixtureSettings:
    """Settings of ``gaussian_mixture`` (see :class:`GaussianMixtureGenerator`)."""

    n_components: int = 3
    covariance: str = "full"
    ddof: int = 0
    max_iter: int = 200
    tol: float = 1e-6
    reg_covar: float = 1e-9
    device: str | None = None  #: accepted and ignored (numpy): checkpoints are loaded with one


def _check_x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise GeneratorConfigError(f"x must be an (N, D) array of vectors with N > 0, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise GeneratorConfigError("x contains non-finite values")
    return x


def _sample_normal(rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray, n: int, diag: bool) -> np.ndarray:
    z = rng.standard_normal((n, mean.shape[0]))
    if diag:
        return mean + z * np.sqrt(np.maximum(cov, 0.0))
    # eigh rather than Cholesky: a rank-deficient (collapsed) covariance must still sample.
    w, v = np.linalg.eigh(cov)
    return mean + (z * np.sqrt(np.clip(w, 0.0, None))) @ v.T


class GaussianGenerator(Generator):
    """One Gaussian, fitted in closed form.

    Config: ``ddof`` (0 = MLE, the default; 1 = unbiased), ``covariance`` (``"full"`` default
    or ``"diag"``). Fit gives exactly ``x.mean(0)`` and ``np.cov(x, rowvar=False, ddof=ddof)``
    (``np.var(x, 0, ddof=ddof)`` for ``"diag"``)."""

    name = "gaussian"
    settings_class = GaussianSettings
    uses_preset = False

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        self.config.setdefault("ddof", 0)
        self.config.setdefault("covariance", "full")
        if self.config["covariance"] not in _COVARIANCES:
            raise GeneratorConfigError(f"covariance must be one of {_COVARIANCES}, got {self.config['covariance']!r}")
        ddof = self.config["ddof"]
        if not isinstance(ddof, (int, np.integer)) or isinstance(ddof, bool) or ddof < 0:
            raise GeneratorConfigError(f"ddof must be a non-negative integer, got {ddof!r}")
        self.mean: np.ndarray | None = None
        self.cov: np.ndarray | None = None
        self.n_fitted = 0

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None

    @property
    def diag(self) -> bool:
        return self.config["covariance"] == "diag"

    def fit(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        steps: int,
        seed: int,
        *,
        continue_training: bool = True,
        progress: ProgressFn | None = None,
    ) -> dict:
        x = _check_x(x)
        ddof = int(self.config["ddof"])
        if x.shape[0] <= ddof:
            raise GeneratorConfigError(f"need more than ddof={ddof} samples, got {x.shape[0]}")
        self.mean = x.mean(axis=0)
        if self.diag:
            self.cov = x.var(axis=0, ddof=ddof)
        else:
            self.cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=ddof))
        self.n_fitted = int(x.shape[0])
        nll = float(-self.log_likelihood(x).mean())
        if progress is not None:
            progress(1, nll)
        return {"loss": nll, "steps": 0, "n": self.n_fitted}

    def variance(self) -> np.ndarray:
        """Per-dimension variance (the diagonal of the covariance)."""
        if self.cov is None:
            raise GeneratorConfigError("generator is not fitted")
        return self.cov.copy() if self.diag else np.diag(self.cov).copy()

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """Per-sample log density under the fitted Gaussian (pseudo-inverse if singular)."""
        x = _check_x(x)
        cov = np.diag(self.cov) if self.diag else self.cov
        return _gauss_logpdf(x, self.mean, cov)

    def sample(self, n: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
        if self.mean is None:
            raise GeneratorConfigError("cannot sample from an unfitted Gaussian generator: call fit first")
        rng = np.random.default_rng(seed)
        return _sample_normal(rng, self.mean, self.cov, int(n), self.diag)

    def state_dict(self) -> dict:
        tensors = {} if self.mean is None else {"mean": self.mean.copy(), "cov": self.cov.copy()}
        return self._base_state({"n_fitted": self.n_fitted, "dim": None if self.mean is None else int(self.mean.shape[0])}, tensors)

    def load_state_dict(self, state: dict) -> None:
        t = state["tensors"]
        if not t:
            self.mean = self.cov = None
            return
        if set(t) != {"mean", "cov"}:
            raise CheckpointError(f"Gaussian state needs tensors mean and cov, got {sorted(t)}")
        mean, cov = np.asarray(t["mean"], np.float64), np.asarray(t["cov"], np.float64)
        d = mean.shape[0]
        if mean.shape != (d,) or cov.shape != ((d,) if self.diag else (d, d)):
            raise CheckpointError(f"Gaussian state has mean {mean.shape} and cov {cov.shape}, inconsistent with covariance={self.config['covariance']!r}")
        self.mean, self.cov = mean, cov
        self.n_fitted = int(state["meta"].get("n_fitted", 0))


def _gauss_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    keep = w > max(w.max(), 0.0) * 1e-12
    if not keep.any():
        return np.full(x.shape[0], np.inf)
    proj = (x - mean) @ v[:, keep]
    maha = (proj**2 / w[keep]).sum(axis=1)
    return -0.5 * (maha + np.log(w[keep]).sum() + keep.sum() * np.log(2 * np.pi))


class GaussianMixtureGenerator(Generator):
    """A K-component Gaussian mixture fitted by EM (maximum likelihood).

    Config: ``n_components`` (default 3), ``covariance`` (``"full"``/``"diag"``), ``ddof``
    (component covariances divide by Nₖ − ddof, Nₖ the soft count, so K = 1 equals
    :class:`GaussianGenerator` exactly), ``max_iter`` (200), ``tol`` (1e-6 on the mean
    log-likelihood), ``reg_covar`` (1e-9 added to variances for stability). Initialised with
    k-means++ from the fit ``seed``; with ``continue_training=True`` EM starts from the
    current parameters (warm start across generations)."""

    name = "gaussian_mixture"
    settings_class = GaussianMixtureSettings
    uses_preset = False

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        c = self.config
        c.setdefault("n_components", 3)
        c.setdefault("covariance", "full")
        c.setdefault("ddof", 0)
        c.setdefault("max_iter", 200)
        c.setdefault("tol", 1e-6)
        c.setdefault("reg_covar", 1e-9)
        if c["covariance"] not in _COVARIANCES:
            raise GeneratorConfigError(f"covariance must be one of {_COVARIANCES}, got {c['covariance']!r}")
        if int(c["n_components"]) < 1:
            raise GeneratorConfigError(f"n_components must be >= 1, got {c['n_components']!r}")
        self.weights: np.ndarray | None = None
        self.means: np.ndarray | None = None
        self.covs: np.ndarray | None = None  # (K, D, D) or (K, D)

    @property
    def is_fitted(self) -> bool:
        return self.means is not None

    @property
    def diag(self) -> bool:
        return self.config["covariance"] == "diag"

    def _full_covs(self) -> np.ndarray:
        return np.stack([np.diag(c) for c in self.covs]) if self.diag else self.covs

    def _log_resp(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        covs = self._full_covs()
        logp = np.stack([_gauss_logpdf(x, m, c) for m, c in zip(self.means, covs)], axis=1)
        logp = logp + np.log(np.maximum(self.weights, 1e-300))
        mx = logp.max(axis=1, keepdims=True)
        ll = (mx + np.log(np.exp(logp - mx).sum(axis=1, keepdims=True)))[:, 0]
        return logp - ll[:, None], ll

    def _init(self, x: np.ndarray, k: int, rng: np.random.Generator) -> None:
        n, d = x.shape
        centers = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min([((x - c) ** 2).sum(1) for c in centers], axis=0)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centers.append(x[rng.choice(n, p=p)])
        resp = np.zeros((n, k))
        resp[np.arange(n), np.argmin([((x - c) ** 2).sum(1) for c in centers], axis=0)] = 1.0
        self._m_step(x, resp)

    def _m_step(self, x: np.ndarray, resp: np.ndarray) -> None:
        ddof = int(self.config["ddof"])
        reg = float(self.config["reg_covar"])
        nk = resp.sum(axis=0) + 1e-12
        self.weights = nk / nk.sum()
        self.means = (resp.T @ x) / nk[:, None]
        covs = []
        for j in range(resp.shape[1]):
            diff = x - self.means[j]
            denom = max(nk[j] - ddof, 1e-12)
            if self.diag:
                covs.append((resp[:, j, None] * diff**2).sum(0) / denom + reg)
            else:
                covs.append((resp[:, j, None] * diff).T @ diff / denom + reg * np.eye(x.shape[1]))
        self.covs = np.stack(covs)

    def fit(
        self,
        x: np.ndarray,
        labels: np.ndarray | None,
        steps: int,
        seed: int,
        *,
        continue_training: bool = True,
        progress: ProgressFn | None = None,
    ) -> dict:
        x = _check_x(x)
        k = int(self.config["n_components"])
        if x.shape[0] < k:
            raise GeneratorConfigError(f"need at least n_components={k} samples, got {x.shape[0]}")
        warm = continue_training and self.means is not None and self.means.shape == (k, x.shape[1])
        if not warm:
            self._init(x, k, np.random.default_rng(seed))
        prev = -np.inf
        it = 0
        for it in range(1, int(self.config["max_iter"]) + 1):
            log_resp, ll = self._log_resp(x)
            mean_ll = float(ll.mean())
            self._m_step(x, np.exp(log_resp))
            if progress is not None:
                progress(it, -mean_ll)
            if abs(mean_ll - prev) < float(self.config["tol"]):
                break
            prev = mean_ll
        _, ll = self._log_resp(x)
        return {"loss": float(-ll.mean()), "steps": it, "n": int(x.shape[0])}

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        return self._log_resp(_check_x(x))[1]

    def sample(self, n: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
        if self.means is None:
            raise GeneratorConfigError("cannot sample from an unfitted Gaussian mixture: call fit first")
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(self.weights), size=int(n), p=self.weights / self.weights.sum())
        out = np.empty((int(n), self.means.shape[1]))
        for j in range(len(self.weights)):
            idx = np.flatnonzero(comp == j)
            if idx.size:
                out[idx] = _sample_normal(rng, self.means[j], self.covs[j], idx.size, self.diag)
        return out

    def state_dict(self) -> dict:
        tensors = {} if self.means is None else {"weights": self.weights.copy(), "means": self.means.copy(), "covs": self.covs.copy()}
        return self._base_state({"dim": None if self.means is None else int(self.means.shape[1])}, tensors)

    def load_state_dict(self, state: dict) -> None:
        t = state["tensors"]
        if not t:
            self.weights = self.means = self.covs = None
            return
        if set(t) != {"weights", "means", "covs"}:
            raise CheckpointError(f"Gaussian-mixture state needs tensors weights, means, covs; got {sorted(t)}")
        w, m, c = (np.asarray(t[k], np.float64) for k in ("weights", "means", "covs"))
        k, d = m.shape
        want = (k, d) if self.diag else (k, d, d)
        if w.shape != (k,) or c.shape != want or k != int(self.config["n_components"]):
            raise CheckpointError(f"Gaussian-mixture state shapes weights {w.shape}, means {m.shape}, covs {c.shape} do not match the config")
        self.weights, self.means, self.covs = w, m, c
