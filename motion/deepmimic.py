"""Reader and writer for the DeepMimic motion format (the clips bundled with PyBullet).

A file is JSON ``{"Loop": "wrap"|"none", "Frames": [[...44 numbers...], ...]}``. Each frame:
duration (s, time to the next frame; the last frame's may be 0), root position (3), root
rotation **w, x, y, z** (4), then chest, neck, right hip (4 each), right knee angle (1),
right ankle, right shoulder (4 each), right elbow angle (1), left hip (4), left knee (1),
left ankle, left shoulder (4 each), left elbow (1).

Clips with a non-uniform frame duration are accepted; :func:`read_clip` returns the
per-frame times so that :mod:`motion.dataset` can resample them exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sccl.motion.clip import Motion, MotionError
from sccl.motion.skeleton import DEEPMIMIC_JOINT_ORDER, REVOLUTE_JOINTS, SPHERICAL_JOINTS

FRAME_WIDTH = 44
CLIP_PREFIX = "humanoid3d_"


def _layout() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Column of each spherical joint (4 wide, w-first) and each revolute joint (1 wide)."""
    col = 8
    sph: list[tuple[str, int]] = []
    rev: list[tuple[str, int]] = []
    for joint in DEEPMIMIC_JOINT_ORDER:
        if joint in REVOLUTE_JOINTS:
            rev.append((joint, col))
            col += 1
        else:
            sph.append((joint, col))
            col += 4
    assert col == FRAME_WIDTH
    return sph, rev


_SPH_COLS, _REV_COLS = _layout()
_SPH_INDEX = {name: SPHERICAL_JOINTS.index(name) for name, _ in _SPH_COLS}
_REV_INDEX = {name: REVOLUTE_JOINTS.index(name) for name, _ in _REV_COLS}


@dataclass(frozen=True)
class RawClip:
    """A clip as read from disk: the motion at its native frames plus their timestamps."""

    motion: Motion
    times: np.ndarray  # (T,) seconds from the first frame

    @property
    def uniform(self) -> bool:
        d = np.diff(self.times)
        return bool(d.size == 0 or np.allclose(d, d[0], rtol=1e-4, atol=1e-7))


def label_from_name(path: str | os.PathLike) -> str:
    """The clip's label from its file name (DeepMimic files have no label field):
    ``humanoid3d_getup_faceup.txt`` -> ``getup_faceup``; ``walk__0007.txt`` -> ``walk``
    (the ``<label>__<name>`` form written by ``sccl sample`` and ``sccl import --label``)."""
    stem = Path(path).stem
    if stem.startswith(CLIP_PREFIX):
        return stem[len(CLIP_PREFIX):]
    return stem.split("__", 1)[0] if "__" in stem[1:] else stem


def frames_to_motion(frames: np.ndarray, fps: float, *, name: str | None, label: str | None, loop: bool) -> Motion:
    """Convert a (T, 44) DeepMimic frame array (duration column ignored) to a Motion."""
    frames = np.asarray(frames, dtype=np.float64)
    wxyz_to_xyzw = [1, 2, 3, 0]
    root_rot = frames[:, 4:8][:, wxyz_to_xyzw]
    joint_rots = np.zeros((frames.shape[0], len(SPHERICAL_JOINTS), 4))
    for joint, col in _SPH_COLS:
        joint_rots[:, _SPH_INDEX[joint]] = frames[:, col:col + 4][:, wxyz_to_xyzw]
    joint_angles = np.zeros((frames.shape[0], len(REVOLUTE_JOINTS)))
    for joint, col in _REV_COLS:
        joint_angles[:, _REV_INDEX[joint]] = frames[:, col]
    return Motion(fps, frames[:, 1:4], root_rot, joint_rots, joint_angles, label=label, name=name, loop=loop)


def motion_to_frames(motion: Motion) -> np.ndarray:
    """The inverse of :func:`frames_to_motion`: a (T, 44) array, uniform durations 1/fps
    (the last frame's duration is 0, as in the bundled files)."""
    t = motion.num_frames
    frames = np.zeros((t, FRAME_WIDTH))
    frames[:, 0] = 1.0 / motion.fps
    frames[-1, 0] = 0.0
    frames[:, 1:4] = motion.root_pos
    xyzw_to_wxyz = [3, 0, 1, 2]
    frames[:, 4:8] = motion.root_rot[:, xyzw_to_wxyz]
    for joint, col in _SPH_COLS:
        frames[:, col:col + 4] = motion.joint_rots[:, _SPH_INDEX[joint]][:, xyzw_to_wxyz]
    for joint, col in _REV_COLS:
        frames[:, col] = motion.joint_angles[:, _REV_INDEX[joint]]
    return frames


#: DeepMimic normalises quaternions when it loads a clip, and the bundled files rely on it:
#: their norms deviate from 1 by up to 0.42 (kick), 0.19 (roll), 0.12 (backflip). The reader
#: therefore normalises norms within this distance of 1 and rejects the rest as corrupt.
FILE_QUATERNION_TOLERANCE = 0.5


def _check_and_normalise_quaternions(arr: np.ndarray, where: str) -> None:
    cols = [("root", 4)] + list(_SPH_COLS)
    for joint, col in cols:
        norm = np.linalg.norm(arr[:, col:col + 4], axis=1)
        off = np.abs(norm - 1.0) > FILE_QUATERNION_TOLERANCE
        if off.any():
            i = int(np.argmax(off))
            raise MotionError(
                f"{where}: frame {i}: {joint} rotation (values {col}-{col + 3}) is not a unit quaternion "
                f"(norm {norm[i]:.4f}; expected 1 within {FILE_QUATERNION_TOLERANCE})"
            )
        arr[:, col:col + 4] /= norm[:, None]


def read_clip(path: str | os.PathLike, label: str | None = None) -> RawClip:
    """Read and validate one DeepMimic file.

    Raises:
        MotionError: naming the file (and frame) for unreadable JSON, a missing ``Frames``
            list, an empty clip, a frame of the wrong width, non-numeric or non-finite
            values, a non-positive duration (except on the last frame), or non-unit quaternions.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MotionError(f"{where}: cannot read file: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MotionError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict) or "Frames" not in data:
        raise MotionError(f"{where}: expected a JSON object with a 'Frames' list")
    frames = data["Frames"]
    if not isinstance(frames, list) or len(frames) == 0:
        raise MotionError(f"{where}: 'Frames' must be a non-empty list of frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != FRAME_WIDTH:
            width = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionError(f"{where}: frame {i} has {width} values, expected {FRAME_WIDTH}")
        for j, v in enumerate(frame):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise MotionError(f"{where}: frame {i} value {j} is {v!r}, expected a number")
    arr = np.asarray(frames, dtype=np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise MotionError(f"{where}: frame {int(np.argmax(bad))} contains a non-finite value (NaN or inf)")
    durations = arr[:, 0]
    if len(frames) > 1:
        nonpos = durations[:-1] <= 0
        if nonpos.any():
            i = int(np.argmax(nonpos))
            raise MotionError(f"{where}: frame {i} has duration {durations[i]:g}, expected > 0 (seconds to the next frame)")
    if durations[-1] < 0:
        raise MotionError(f"{where}: frame {len(frames) - 1} has negative duration {durations[-1]:g}")
    loop_value = data.get("Loop", "none")
    if loop_value not in ("wrap", "none"):
        raise MotionError(f"{where}: 'Loop' must be 'wrap' or 'none', got {loop_value!r}")
    _check_and_normalise_quaternions(arr, where)
    times = np.concatenate([[0.0], np.cumsum(durations[:-1])])
    if len(frames) > 1:
        fps = 1.0 / float(np.median(durations[:-1]))
    else:
        fps = 1.0 / durations[0] if durations[0] > 0 else 30.0
    motion = frames_to_motion(
        arr, fps, name=path.name, label=label if label is not None else label_from_name(path), loop=loop_value == "wrap"
    )
    return RawClip(motion=motion, times=times)


def write_clip(motion: Motion, path: str | os.PathLike) -> Path:
    """Write a clip atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = motion_to_frames(motion)
    body = {"Loop": "wrap" if motion.loop else "none", "Frames": [[float(v) for v in row] for row in frames]}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=None, separators=(",", ":")))
    os.replace(tmp, path)
    return path


def bundled_motion_dir() -> Path:
    """The directory of the 15 ``humanoid3d_*`` clips shipped inside ``pybullet_data``."""
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions"


def list_clip_files(directory: str | os.PathLike | None = None) -> list[Path]:
    """Motion files of a dataset directory (sorted). The bundled directory is filtered to
    the ``humanoid3d_*`` clips (it also holds a quadruped clip)."""
    if directory is None or Path(directory).resolve() == bundled_motion_dir().resolve():
        files = sorted(bundled_motion_dir().glob(f"{CLIP_PREFIX}*.txt"))
    else:
        d = Path(directory)
        if not d.exists():
            raise MotionError(f"{d}: data path does not exist")
        if d.is_file():
            return [d]
        if not d.is_dir():
            raise MotionError(f"{d}: not a motion file or a directory of them")
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".txt", ".json") and not p.name.startswith("."))
    if not files:
        raise MotionError(f"{directory or bundled_motion_dir()}: no motion files (*.txt or *.json in DeepMimic format)")
    return files


def read_directory(directory: str | os.PathLike | None = None) -> list[RawClip]:
    """Read every clip of a dataset directory (default: the bundled clips)."""
    return [read_clip(p) for p in list_clip_files(directory)]
