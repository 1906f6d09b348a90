"""Per-generation collapse metrics of generated motion windows against the real data.

:func:`evaluate_generation` is what the loop calls once per generation. Everything that
depends only on the real data and the frozen evaluator (held-out/train embeddings, kinetic and
geometric features with their normalisers, Gaussian statistics, k-NN radii, nearest-neighbour
distances of held-out windows to training windows) is computed once in a
:class:`ReferenceStats` and cached in memory, so a generation costs a forward pass, batched
forward kinematics and a few small matrix operations.

Reference set. Quality metrics compare with the *held-out* real windows (44 with the bundled
data: FID on so few windows carries a sizeable positive bias, so compare arms and generations
with each other and with the real-data floor from :func:`reference_metrics`, not with numbers
from papers). ``quality/fid_train`` compares with the 520 training windows (lower variance,
but the generator has seen them). All keys are listed in docs/METRICS.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sccl.metrics.fid import average_pairwise_distance, frechet_distance, gaussian_stats
from sccl.metrics.geometric import geometric_features
from sccl.metrics.kinetic import kinetic_features
from sccl.metrics.prdc import knn_radii, prdc

if TYPE_CHECKING:  # pragma: no cover
    from sccl.metrics.evaluator import MotionEvaluator
    from sccl.motion.dataset import MotionDataset

log = logging.getLogger(__name__)

#: Minimum held-out windows to use them as the reference set (else the training windows are used).
MIN_REFERENCE = 12
PRDC_K = 5
DIVERSITY_PAIRS = 200  #: S_d of Action2Motion / MDM
MULTIMODALITY_PAIRS = 20  #: S_l per label


def positions_from_features(features: np.ndarray, fps: float, batch: int = 512) -> np.ndarray:
    """(N, T, 15, 3) forward-kinematics positions of feature windows (start heading 0, origin)."""
    import torch

    from sccl.motion.features import features_to_positions_torch

    x = np.asarray(features, np.float32)
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(features_to_positions_torch(torch.from_numpy(x[i : i + batch]), fps).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, x.shape[1], 15, 3))


class _Normaliser:
    """Per-dimension z-scoring with statistics of the real data, fixed across generations
    (Bailando normalises kinetic/geometric features before FID; fixing the statistics keeps
    generations comparable)."""

    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        self.std = np.maximum(x.std(axis=0), 1e-6)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


@dataclass
class _Space:
    """A feature space's reference: real features, their Gaussian and optional k-NN radii."""

    real: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    radii: np.ndarray | None = None

    @classmethod
    def of(cls, x: np.ndarray, k: int | None = None) -> "_Space":
        mu, cov = gaussian_stats(x)
        return cls(x, mu, cov, knn_radii(x, k) if k is not None and x.shape[0] > k else None)

    def fid(self, x: np.ndarray) -> float:
        return frechet_distance(*gaussian_stats(x), self.mu, self.cov)


class ReferenceStats:
    """Real-data statistics for one (dataset, evaluator) pair; build once, reuse every generation."""

    def __init__(self, dataset: "MotionDataset", evaluator: "MotionEvaluator", k: int = PRDC_K) -> None:
        t0 = time.perf_counter()
        self.fps = float(dataset.fps)
        self.k = k
        self.label_names = list(dataset.label_names)
        held = dataset.heldout if len(dataset.heldout) >= MIN_REFERENCE else dataset.train
        if held is dataset.train:
            log.warning("only %d held-out windows: metrics use the training windows as reference", len(dataset.heldout))
        self.reference_name = "heldout" if held is dataset.heldout else "train"
        self.num_reference = len(held)
        self.emb = _Space.of(evaluator.embed(held.features), k)
        self.emb_train = _Space.of(evaluator.embed(dataset.train.features))
        kin_train = kinetic_features(positions_from_features(dataset.train.features, self.fps), self.fps)
        geo_train = geometric_features(positions_from_features(dataset.train.features, self.fps), self.fps)
        pos_held = positions_from_features(held.features, self.fps)
        self.kin_norm = _Normaliser(kin_train)
        self.geo_norm = _Normaliser(geo_train)
        self.kin = _Space.of(self.kin_norm(kinetic_features(pos_held, self.fps)))
        self.geo = _Space.of(self.geo_norm(geometric_features(pos_held, self.fps)))
        # memorisation: normalised, flattened training windows
        self.feat_mean = dataset.stats.mean.astype(np.float64)
        self.feat_std = dataset.stats.std.astype(np.float64)
        self.train_flat = self._flat(dataset.train.features)
        self._train_sq: np.ndarray | None = None
        self.window = dataset.train.features.shape[1]
        if len(dataset.heldout):
            self.heldout_nn = self.nn_train_distance(dataset.heldout.features)
        else:
            self.heldout_nn = np.array([np.nan])
        self.seconds = time.perf_counter() - t0
        log.info("reference statistics (%s, %d windows) in %.2f s", self.reference_name, self.num_reference, self.seconds)

    def _flat(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float64) - self.feat_mean) / self.feat_std
        return x.reshape(x.shape[0], -1)

    def nn_train_distance(self, features: np.ndarray) -> np.ndarray:
        """RMS (per feature element) distance of each window to its nearest training window,
        in normalised feature space; a copy of a training window scores 0."""
        f = np.asarray(features)
        if f.shape[1] != self.window:
            raise ValueError(f"memorisation needs windows of {self.window} frames, got {f.shape[1]}")
        x = self._flat(f)
        d = np.empty(x.shape[0])
        train = self.train_flat
        if self._train_sq is None:
            self._train_sq = np.einsum("ij,ij->i", train, train)
        # every window against every training window is quadratic in the data (held-out x train
        # at reference time): find the nearest one through one matrix product (|a|^2 + |b|^2 -
        # 2ab, BLAS; ~20x faster than cdist's loop), then measure that pair exactly, so that a
        # copy of a training window still scores exactly 0
        for i in range(0, x.shape[0], 1024):
            xb = x[i : i + 1024]
            approx = self._train_sq[None, :] - 2.0 * (xb @ train.T)
            nearest = approx.argmin(axis=1)
            d[i : i + 1024] = ((xb - train[nearest]) ** 2).sum(axis=1)
        return np.sqrt(d / x.shape[1])


def get_reference_stats(dataset: "MotionDataset", evaluator: "MotionEvaluator") -> ReferenceStats:
    """The cached :class:`ReferenceStats` of this dataset's whole split and the evaluator (built
    on first use). Built on the split, not on a seed's ``data.n`` subsample, so that FID_k/FID_g
    z-scoring, ``fid_train`` and the memorisation distances are the same for every seed."""
    from sccl.metrics.evaluator import split_dataset

    dataset = split_dataset(dataset)
    cache: dict[int, ReferenceStats] = evaluator.__dict__.setdefault("_reference_cache", {})
    ref = cache.get(id(dataset))
    if ref is None:
        ref = cache[id(dataset)] = ReferenceStats(dataset, evaluator)
        # keep the dataset alive while cached so that its id cannot be reused
        evaluator.__dict__.setdefault("_reference_datasets", []).append(dataset)
    return ref


def diversity(emb: np.ndarray, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> float:
    """Action2Motion diversity: mean distance between two random disjoint subsets, paired."""
    n = min(pairs, emb.shape[0] // 2)
    if n < 1:
        return float("nan")
    idx = np.random.default_rng(seed).permutation(emb.shape[0])
    return float(np.linalg.norm(emb[idx[:n]] - emb[idx[n : 2 * n]], axis=1).mean())


def multimodality(emb: np.ndarray, labels: np.ndarray, pairs: int = MULTIMODALITY_PAIRS, seed: int = 0) -> float:
    """Action2Motion multimodality: diversity within each label (S_l pairs), averaged over labels
    with at least two samples."""
    rng = np.random.default_rng(seed)
    values = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = min(pairs, members.size // 2)
        if n < 1:
            continue
        perm = rng.permutation(members)
        values.append(np.linalg.norm(emb[perm[:n]] - emb[perm[n : 2 * n]], axis=1).mean())
    return float(np.mean(values)) if values else float("nan")


def physics_per_sample(features: np.ndarray, fps: float) -> list[dict[str, float]]:
    """Phys-Err and its parts (:func:`sccl.simulators.plausibility.physics_metrics`) of each feature
    window (N, T, 62), measured on the clip the window decodes to — the loop's ``physics/*``
    metrics are the mean of these, so benches that compare samples use the same numbers."""
    from sccl.motion.features import features_to_motion
    from sccl.simulators.plausibility import physics_metrics

    return [physics_metrics(features_to_motion(f, fps)) for f in np.asarray(features)]


def _physics(features: np.ndarray, fps: float, max_samples: int | None, seed: int) -> dict[str, float]:
    try:
        import sccl.simulators.plausibility  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the simulator package is part of the install
        log.warning("physics metrics unavailable (%s)", exc)
        return {}

    idx = np.arange(features.shape[0])
    if max_samples is not None and idx.size > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx.size, max_samples, replace=False))
    rows = physics_per_sample(features[idx], fps)
    if not rows:
        return {}
    return {f"physics/{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


def flatten_correction(summary: dict[str, Any] | None, prefix: str = "correction/") -> dict[str, float]:
    """Numeric entries of a corrector summary as ``correction/...`` keys (nested dicts such as
    failure-reason counts become ``correction/failure/<reason>``); other values are skipped."""
    out: dict[str, float] = {}
    for key, value in (summary or {}).items():
        name = key if key.startswith(prefix) else prefix + key
        if isinstance(value, dict):
            out.update(flatten_correction(value, name.rstrip("/") + "/"))
        elif isinstance(value, (bool, int, float, np.integer, np.floating)):
            out[name] = float(value)
    return out


def evaluate_generation(
    samples_features: np.ndarray,
    sample_labels: np.ndarray | None,
    dataset: "MotionDataset",
    evaluator: "MotionEvaluator",
    *,
    corrector_summary: dict | None = None,
    fps: float | None = None,
    reference: ReferenceStats | None = None,
    physics: bool = True,
    physics_max_samples: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """All motion metrics of one generation's samples (N, T, 62) -> ``{namespaced key: value}``.

    Args:
        samples_features: raw (un-normalised) feature windows from the current generator, before
            correction (physics metrics measure the generator, not the corrector).
        sample_labels: requested label indices (N,) or None (unconditional): recognition
            accuracy and multimodality are NaN without them.
        dataset / evaluator: the real data and the frozen evaluator; reference statistics are
            built once per pair and cached (or pass ``reference``).
        corrector_summary: the corrector's diagnostics, passed through as ``correction/*``.
        fps: frame rate of the samples (default: the dataset's).
        physics_max_samples: evaluate physics on a random subset of this size (cost control).
        seed: seed of the random pairings (diversity, multimodality) and of physics subsetting.
    """
    t0 = time.perf_counter()
    x = np.asarray(samples_features, np.float32)
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"samples_features must be (N>=2, T, D), got {x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)).sum())
        raise ValueError(f"samples_features: {bad} of {x.shape[0]} samples contain non-finite values")
    ref = reference or get_reference_stats(dataset, evaluator)
    fps = float(fps or ref.fps)
    out: dict[str, float] = {}

    emb = evaluator.embed(x)
    out["quality/fid"] = ref.emb.fid(emb)
    out["quality/fid_train"] = ref.emb_train.fid(emb)
    pr = prdc(ref.emb.real, emb, k=ref.k, real_radii=ref.emb.radii)
    out.update({f"quality/{k}": v for k, v in pr.items()})
    out["diversity/diversity"] = diversity(emb, seed=seed)

    pos = positions_from_features(x, fps)
    kin = ref.kin_norm(kinetic_features(pos, fps))
    geo = ref.geo_norm(geometric_features(pos, fps))
    out["quality/fid_k"] = ref.kin.fid(kin)
    out["quality/fid_g"] = ref.geo.fid(geo)
    out["diversity/div_k"] = average_pairwise_distance(kin)
    out["diversity/div_g"] = average_pairwise_distance(geo)

    if sample_labels is not None:
        labels = np.asarray(sample_labels).astype(np.int64).reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"sample_labels has {labels.shape[0]} entries for {x.shape[0]} samples")
        out["quality/recognition_acc"] = float((evaluator.predict(x) == labels).mean())
        out["diversity/multimodality"] = multimodality(emb, labels, seed=seed)
    else:
        out["quality/recognition_acc"] = float("nan")
        out["diversity/multimodality"] = float("nan")

    if x.shape[1] == ref.window:
        nn = ref.nn_train_distance(x)
        out["memorisation/nn_train_dist"] = float(nn.mean())
        out["memorisation/nn_ratio"] = float(nn.mean() / np.nanmean(ref.heldout_nn))
        out["memorisation/copy_fraction"] = float((nn < np.nanmin(ref.heldout_nn)).mean())

    if physics:
        out.update(_physics(x, fps, physics_max_samples, seed))
    out.update(flatten_correction(corrector_summary))
    out["timing/metrics_s"] = time.perf_counter() - t0
    return out


def reference_metrics(dataset: "MotionDataset", evaluator: "MotionEvaluator", **kwargs: Any) -> dict[str, float]:
    """The real-data floor: :func:`evaluate_generation` of the training windows themselves
    (with their labels) against the held-out reference. Log it once next to the curves."""
    return evaluate_generation(dataset.train.features, dataset.train.labels, dataset, evaluator, **kwargs)


def reference_summary(ref: ReferenceStats) -> dict[str, float]:
    """Descriptive figures of the reference set itself (diversity of real windows etc.)."""
    return {
        "reference/num_windows": float(ref.num_reference),
        "reference/diversity": diversity(ref.emb.real),
        "reference/div_k": average_pairwise_distance(ref.kin.real),
        "reference/div_g": average_pairwise_distance(ref.geo.real),
        "reference/heldout_nn_train_dist": float(np.nanmean(ref.heldout_nn)),
    }
