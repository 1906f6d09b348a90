"""D_real for an arm: motion windows from clip files, or draws from the toy Gaussian.

Built deterministically from the config, so every process (driver, Ray arm tasks) that
builds it gets the same arrays; cached per process because arms of a sweep share it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

import numpy as np

from sccl.loop.config import DataSection
from sccl.motion.dataset import DataConfig, MotionDataset, build_dataset


@dataclass
class RealData:
    kind: str  #: "motion" or "gaussian"
    train_x: np.ndarray  #: (n, ...) float32 — motion: (n, T, 62) features; toy: (n, D)
    train_labels: np.ndarray | None
    heldout_x: np.ndarray
    heldout_labels: np.ndarray | None
    label_names: list[str]
    fps: float
    dataset: MotionDataset | None = None  #: the motion dataset (None for the toy)
    target_mean: np.ndarray | None = None  #: toy target distribution
    target_cov: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.train_x.shape[0])

    def label_frequencies(self) -> np.ndarray | None:
        if self.train_labels is None:
            return None
        counts = np.bincount(self.train_labels, minlength=len(self.label_names)).astype(np.float64)
        return counts / counts.sum()


def motion_data_config(section: DataSection) -> DataConfig:
    return DataConfig(
        path=section.path,
        fps=section.fps,
        window=section.window,
        stride=section.stride,
        mirror=section.mirror,
        split=section.split,
        holdout_fraction=section.holdout_fraction,
        holdout_clips=list(section.holdout_clips),
        loop_min_seconds=section.loop_min_seconds,
        max_train_windows=section.n,
    )


def gaussian_real_data(section: DataSection, seed: int) -> RealData:
    """The toy's D_real: ``n`` training and ``heldout_n`` held-out draws from N(mean, cov)."""
    d = section.dim
    mean = np.asarray(section.mean if section.mean is not None else np.zeros(d), dtype=np.float64)
    cov = np.asarray(section.cov if section.cov is not None else np.eye(d), dtype=np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7001]))
    train = rng.multivariate_normal(mean, cov, size=section.n)
    held = rng.multivariate_normal(mean, cov, size=section.heldout_n)
    return RealData("gaussian", train, None, held, None, [], 1.0, None, mean, cov)


def motion_real_data(section: DataSection, seed: int) -> RealData:
    """Motion's D_real: feature windows of the clip files, split into training and held-out."""
    cfg = motion_data_config(section)
    cfg.seed = seed
    ds = build_dataset(cfg)
    return RealData(
        "motion", ds.train.features, ds.train.labels, ds.heldout.features, ds.heldout.labels,
        list(ds.label_names), ds.fps, ds,
    )


#: ``data.kind`` → the function that builds its D_real (the task of each kind is in
#: :mod:`sccl.loop.tasks`).
LOADERS = {"gaussian": gaussian_real_data, "motion": motion_real_data}


@functools.lru_cache(maxsize=4)
def _load(section_json: str, seed: int) -> RealData:
    section = DataSection(**json.loads(section_json))
    return LOADERS[section.kind](section, seed)


def load_real_data(section: DataSection, seed: int) -> RealData:
    """The arm's D_real (fixed for the whole run; never overwritten)."""
    return _load(json.dumps(dataclasses.asdict(section), sort_keys=True), seed)
