"""From clip files to training windows: resampling, cyclic extension, windows, mirroring,
labels, a deterministic train / held-out split and normalisation statistics.

Split (documented choice). With the bundled data every clip is a different action, so a
split *by clip* would leave labels unseen in training. The default split is therefore *by
time segment*: the last part of each clip (``holdout_fraction`` of its frames, at least one
window) is held out and windows never straddle the cut. Looping clips are first extended
cyclically, so their held-out windows are later cycles of the same motion (different phases
and accumulated drift, not a new performance); this is the honest limit of a 33-second
dataset. A clip too short to give a window on both sides stays entirely in training (see
``sccl data info``). ``split="clip"`` holds out whole clips named in ``holdout_clips``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion, MotionError
from sccl.motion.deepmimic import RawClip, read_directory
from sccl.motion.features import FEATURE_DIM, motion_to_features

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Dataset settings (the ``data`` section of an experiment config)."""

    path: str | None = None  #: directory of DeepMimic-format clips; None = the 15 bundled clips
    fps: float = 20.0  #: every clip is resampled to this rate
    window: int = 30  #: frames per training window
    stride: int = 5  #: frames between window starts
    mirror: bool = True  #: add left-right mirrored copies of every window
    split: str = "time"  #: "time" (tail of every clip held out) or "clip" (whole clips held out)
    holdout_fraction: float = 0.2  #: share of each clip's frames held out (split="time")
    holdout_clips: list[str] = field(default_factory=list)  #: labels held out (split="clip")
    loop_min_seconds: float = 8.0  #: looping clips are extended cyclically to at least this long
    max_train_windows: int | None = None  #: dataset size n: deterministic subsample of train windows
    seed: int = 0  #: seed of that subsample

    def validate(self) -> None:
        def bad(key: str, expected: str) -> MotionError:
            return MotionError(f"data.{key}: expected {expected}, got {getattr(self, key)!r}")

        if not (self.fps > 0):
            raise bad("fps", "a positive number")
        if not (isinstance(self.window, int) and self.window >= 2):
            raise bad("window", "an integer >= 2")
        if not (isinstance(self.stride, int) and self.stride >= 1):
            raise bad("stride", "an integer >= 1")
        if self.split not in ("time", "clip"):
            raise bad("split", "'time' or 'clip'")
        if not (0.0 <= self.holdout_fraction < 1.0):
            raise bad("holdout_fraction", "a number in [0, 1)")
        if self.max_train_windows is not None and self.max_train_windows < 1:
            raise bad("max_train_windows", "a positive integer or null")
        if self.path is not None and not Path(self.path).exists():
            raise MotionError(f"data.path: {self.path} does not exist")


# --------------------------------------------------------------------------- clip ops
def extend_cyclic(raw: RawClip, min_seconds: float) -> RawClip:
    """Repeat a looping clip until it lasts at least `min_seconds`.

    The last frame of a DeepMimic loop is the seam (it matches the next cycle's first frame
    up to the displacement of one cycle). Each new cycle is carried forward by the rigid
    ground-plane transform (heading change about +y and translation) that maps the first
    frame onto the seam, so a walk keeps walking and a spin keeps its orientation continuous."""
    m = raw.motion
    period = float(raw.times[-1])
    if not m.loop or m.num_frames < 2 or period <= 0 or period >= min_seconds:
        return raw
    cycles = int(np.ceil(min_seconds / period))
    h0 = quat.heading_angle(m.root_rot[0])
    h1 = quat.heading_angle(m.root_rot[-1])
    dyaw = quat.yaw(h1 - h0)
    origin = m.root_pos[0] * np.array([1.0, 0.0, 1.0])
    shift = m.root_pos[-1] * np.array([1.0, 0.0, 1.0]) - quat.rotate(dyaw, origin)
    body = slice(0, m.num_frames - 1)
    pos_parts, rot_parts, jr, ja, times = [], [], [], [], []
    cur_rot = np.array([0.0, 0.0, 0.0, 1.0])
    cur_shift = np.zeros(3)
    for k in range(cycles):
        pos_parts.append(quat.rotate(cur_rot, m.root_pos[body]) + cur_shift)
        rot_parts.append(quat.multiply(cur_rot, m.root_rot[body]))
        jr.append(m.joint_rots[body])
        ja.append(m.joint_angles[body])
        times.append(raw.times[body] + k * period)
        cur_shift = quat.rotate(dyaw, cur_shift) + shift
        cur_rot = quat.multiply(dyaw, cur_rot)
    # closing seam frame
    pos_parts.append(quat.rotate(cur_rot, m.root_pos[:1]) + cur_shift)
    rot_parts.append(quat.multiply(cur_rot, m.root_rot[:1]))
    jr.append(m.joint_rots[:1])
    ja.append(m.joint_angles[:1])
    times.append(np.array([cycles * period]))
    ext = m.replace(
        root_pos=np.concatenate(pos_parts),
        root_rot=np.concatenate(rot_parts),
        joint_rots=np.concatenate(jr),
        joint_angles=np.concatenate(ja),
    )
    return RawClip(motion=ext, times=np.concatenate(times))


def resample(raw: RawClip, fps: float) -> Motion:
    """Resample a clip to `fps`: slerp for rotations, linear for positions and angles."""
    m = raw.motion
    times = raw.times
    if m.num_frames == 1:
        return m.replace(fps=fps)
    n = int(np.floor(times[-1] * fps + 1e-9)) + 1
    target = np.arange(n) / fps
    idx = np.clip(np.searchsorted(times, target, side="right") - 1, 0, m.num_frames - 2)
    span = times[idx + 1] - times[idx]
    alpha = np.clip((target - times[idx]) / span, 0.0, 1.0)

    def lerp(a: np.ndarray) -> np.ndarray:
        w = alpha.reshape((-1,) + (1,) * (a.ndim - 1))
        return (1.0 - w) * a[idx] + w * a[idx + 1]

    return m.replace(
        fps=fps,
        root_pos=lerp(m.root_pos),
        root_rot=quat.slerp(m.root_rot[idx], m.root_rot[idx + 1], alpha),
        joint_rots=quat.slerp(m.joint_rots[idx], m.joint_rots[idx + 1], alpha[:, None]),
        joint_angles=lerp(m.joint_angles),
    )


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of all full windows of `window` frames, `stride` apart."""
    return list(range(0, num_frames - window + 1, stride)) if num_frames >= window else []


# ------------------------------------------------------------------------ datasets
@dataclass
class WindowSet:
    """Fixed-length windows: features (N, T, FEATURE_DIM) float32, labels (N,), the clips."""

    features: np.ndarray
    labels: np.ndarray
    motions: list[Motion]
    sources: list[tuple[str, int, bool]]  #: (clip name, start frame, mirrored)

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass
class NormStats:
    """Per-channel mean and std of training features (std floored to avoid blow-ups on
    near-constant channels)."""

    mean: np.ndarray
    std: np.ndarray

    STD_FLOOR = 1e-3

    @classmethod
    def from_features(cls, features: np.ndarray) -> "NormStats":
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        return cls(mean=flat.mean(axis=0), std=np.maximum(flat.std(axis=0), cls.STD_FLOOR))


@dataclass
class ClipSummary:
    name: str
    label: str
    source_frames: int
    source_fps: float
    duration_s: float
    loop: bool
    frames: int  #: after resampling and cyclic extension
    train_windows: int
    heldout_windows: int


@dataclass
class MotionDataset:
    """The real dataset D_real: fixed for a whole experiment, never overwritten."""

    config: DataConfig
    train: WindowSet
    heldout: WindowSet
    label_names: list[str]
    clips: list[Motion]
    summaries: list[ClipSummary]
    stats: NormStats
    #: the training split before the ``max_train_windows`` (data.n) subsample; None when nothing was dropped
    full_train: WindowSet | None = None

    def split_dataset(self) -> "MotionDataset":
        """This dataset with its whole training split: what the evaluator, the normalisation of
        FID_k/FID_g and the reference statistics are built on. They must depend on the dataset and
        split only: with a per-seed subsample (data.n), seeds would otherwise be scored in
        different embedding spaces and their numbers could not be averaged. Cached, so that
        every caller gets the same object (reference statistics are cached per object)."""
        if self.full_train is None:
            return self
        cached = self.__dict__.get("_split_dataset")
        if cached is None:
            cfg = replace(self.config, max_train_windows=None, seed=0)
            cached = MotionDataset(cfg, self.full_train, self.heldout, self.label_names, self.clips, self.summaries,
                                   NormStats.from_features(self.full_train.features))
            self.__dict__["_split_dataset"] = cached
        return cached

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def window(self) -> int:
        return self.config.window

    def label_index(self, label: str) -> int:
        try:
            return self.label_names.index(label)
        except ValueError:
            raise MotionError(f"unknown label {label!r}; dataset labels: {', '.join(self.label_names)}") from None

    def info(self) -> dict:
        """JSON-friendly summary (what ``sccl data info`` prints)."""
        return {
            "path": self.config.path or "bundled pybullet_data humanoid3d_* clips",
            "clips": len(self.summaries),
            "labels": self.label_names,
            "source_frames": sum(s.source_frames for s in self.summaries),
            "source_fps": sorted({round(s.source_fps, 3) for s in self.summaries}),
            "total_duration_s": round(sum(s.duration_s for s in self.summaries), 3),
            "settings": asdict(self.config),
            "train_windows": len(self.train),
            "heldout_windows": len(self.heldout),
            "feature_dim": FEATURE_DIM,
            "per_clip": [asdict(s) for s in self.summaries],
        }


def _make_windows(items: list[tuple[Motion, str, int, bool]], label_names: list[str], window: int) -> WindowSet:
    if not items:
        return WindowSet(np.zeros((0, window, FEATURE_DIM), np.float32), np.zeros(0, np.int64), [], [])
    motions = [m for m, _, _, _ in items]
    feats = np.stack([motion_to_features(m) for m in motions]).astype(np.float32)
    labels = np.array([label_names.index(m.label) for m in motions], dtype=np.int64)
    return WindowSet(feats, labels, motions, [(name, start, mir) for _, name, start, mir in items])


def build_dataset(config: DataConfig | None = None, raws: list[RawClip] | None = None) -> MotionDataset:
    """Read, resample, extend, window, mirror and split a clip directory."""
    cfg = config or DataConfig()
    cfg.validate()
    raws = raws if raws is not None else read_directory(cfg.path)
    label_names = sorted({r.motion.label or "unlabelled" for r in raws})
    train_items: list[tuple[Motion, str, int, bool]] = []
    held_items: list[tuple[Motion, str, int, bool]] = []
    clips: list[Motion] = []
    summaries: list[ClipSummary] = []
    w = cfg.window
    for raw in raws:
        src = raw.motion
        if src.label is None:
            src = src.replace(label="unlabelled")
            raw = RawClip(src, raw.times)
        clip = resample(extend_cyclic(raw, cfg.loop_min_seconds), cfg.fps)
        clips.append(clip)
        n = clip.num_frames
        if cfg.split == "clip":
            segments = {"held" if src.label in cfg.holdout_clips else "train": (0, n)}
        else:
            held_len = max(int(round(cfg.holdout_fraction * n)), w) if cfg.holdout_fraction > 0 else 0
            if held_len and n - held_len >= w:
                segments = {"train": (0, n - held_len), "held": (n - held_len, n)}
            else:
                segments = {"train": (0, n)}
                if cfg.holdout_fraction > 0:
                    log.debug("%s: too short (%d frames) to hold out a window; used for training only", src.name, n)
        counts = {"train": 0, "held": 0}
        for part, (a, b) in segments.items():
            seg = clip.slice(a, b)
            for start in window_starts(seg.num_frames, w, cfg.stride):
                win = seg.slice(start, start + w).replace(name=f"{src.name}@{a + start}")
                target = train_items if part == "train" else held_items
                target.append((win, src.name, a + start, False))
                counts[part] += 1
                if cfg.mirror:
                    target.append((win.mirrored(), src.name, a + start, True))
                    counts[part] += 1
        if counts["train"] + counts["held"] == 0:
            log.warning("%s: shorter than one window (%d < %d frames); skipped", src.name, n, w)
        summaries.append(
            ClipSummary(
                name=src.name or "?",
                label=src.label,
                source_frames=src.num_frames,
                source_fps=src.fps,
                duration_s=float(raw.times[-1]),
                loop=src.loop,
                frames=n,
                train_windows=counts["train"],
                heldout_windows=counts["held"],
            )
        )
    full: WindowSet | None = None
    if cfg.max_train_windows is not None and len(train_items) > cfg.max_train_windows:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(train_items), cfg.max_train_windows, replace=False))
        full = _make_windows(train_items, label_names, w)
        train = WindowSet(full.features[keep], full.labels[keep], [full.motions[i] for i in keep],
                          [full.sources[i] for i in keep])
    elif train_items:
        train = _make_windows(train_items, label_names, w)
    else:
        raise MotionError(
            f"{cfg.path or 'bundled clips'}: no training windows of {w} frames at {cfg.fps:g} fps; "
            "use shorter data.window or longer clips"
        )
    heldout = _make_windows(held_items, label_names, w)
    return MotionDataset(cfg, train, heldout, label_names, clips, summaries, NormStats.from_features(train.features),
                         full)
