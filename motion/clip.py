"""The validated motion clip type everything else exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.errors import DataError
from sccl.motion.kinematics import forward_kinematics
from sccl.motion.skeleton import REVOLUTE_JOINTS, REVOLUTE_MIRROR_PERM, SPHERICAL_JOINTS, SPHERICAL_MIRROR_PERM

#: Quaternions whose norm is further than this from 1 are rejected (not silently fixed):
#: the 6-decimal DeepMimic files are within ~1e-5; anything beyond 1e-3 is a data error.
UNIT_QUATERNION_TOLERANCE = 1e-3


class MotionError(DataError):
    """Invalid motion data. The message names the clip/file, the field and the frame."""


@dataclass(frozen=True, eq=False)
class Motion:
    """One clip of the simulation humanoid (y-up, metres, radians, quaternions x,y,z,w).

    Attributes:
        fps: frames per second (> 0).
        root_pos: (T, 3) world position of the root (pelvis) link frame.
        root_rot: (T, 4) world orientation of the root.
        joint_rots: (T, 8, 4) local rotations of the spherical joints, in
            :data:`motion.skeleton.SPHERICAL_JOINTS` order.
        joint_angles: (T, 4) angles of the revolute joints (knees, elbows), in
            :data:`motion.skeleton.REVOLUTE_JOINTS` order.
        label: class label (e.g. ``"walk"``) or None.
        name: where the clip came from (file name), used in error messages.
        loop: whether the clip is cyclic (DeepMimic ``"Loop": "wrap"``).

    Quaternions are validated (finite, unit within tolerance) and stored renormalised.
    """

    fps: float
    root_pos: np.ndarray
    root_rot: np.ndarray
    joint_rots: np.ndarray
    joint_angles: np.ndarray
    label: str | None = None
    name: str | None = None
    loop: bool = False
    _validated: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = self.name or "motion"
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise MotionError(f"{where}: fps must be a number, got {self.fps!r}") from None
        if not np.isfinite(fps) or fps <= 0:
            raise MotionError(f"{where}: fps must be a positive finite number, got {self.fps!r}")
        object.__setattr__(self, "fps", fps)
        arrays = {
            "root_pos": (self.root_pos, (3,)),
            "root_rot": (self.root_rot, (4,)),
            "joint_rots": (self.joint_rots, (len(SPHERICAL_JOINTS), 4)),
            "joint_angles": (self.joint_angles, (len(REVOLUTE_JOINTS),)),
        }
        num_frames = None
        for key, (value, tail) in arrays.items():
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail:
                raise MotionError(f"{where}: {key} must have shape (T, {', '.join(map(str, tail))}), got {arr.shape}")
            if num_frames is None:
                num_frames = arr.shape[0]
            elif arr.shape[0] != num_frames:
                raise MotionError(f"{where}: {key} has {arr.shape[0]} frames but root_pos has {num_frames}")
            if arr.shape[0] == 0:
                raise MotionError(f"{where}: clip has no frames")
            bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
            if bad.any():
                raise MotionError(f"{where}: {key} is not finite at frame {int(np.argmax(bad))}")
            object.__setattr__(self, key, arr)
        for key in ("root_rot", "joint_rots"):
            q = getattr(self, key)
            norm = np.linalg.norm(q, axis=-1)
            off = np.abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE
            if off.any():
                idx = np.argwhere(off)[0]
                detail = "" if key == "root_rot" else f" (joint {SPHERICAL_JOINTS[idx[1]]})"
                raise MotionError(
                    f"{where}: {key} is not a unit quaternion at frame {idx[0]}{detail}: norm {norm[tuple(idx)]:.6f}"
                )
            object.__setattr__(self, key, q / norm[..., None])
        for arr in (self.root_pos, self.root_rot, self.joint_rots, self.joint_angles):
            arr.flags.writeable = False

    # ------------------------------------------------------------------ basics
    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds spanned by the frames (first to last sample)."""
        return (self.num_frames - 1) / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def replace(self, **changes) -> "Motion":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def slice(self, start: int, stop: int) -> "Motion":
        return self.replace(
            root_pos=self.root_pos[start:stop],
            root_rot=self.root_rot[start:stop],
            joint_rots=self.joint_rots[start:stop],
            joint_angles=self.joint_angles[start:stop],
            loop=False,
        )

    def allclose(self, other: "Motion", atol: float = 1e-6) -> bool:
        """Same frames up to `atol` (quaternions compared up to sign)."""
        if self.num_frames != other.num_frames or abs(self.fps - other.fps) > 1e-9:
            return False

        def qclose(a: np.ndarray, b: np.ndarray) -> bool:
            return bool(np.allclose(quat.canonical(a), quat.canonical(b), atol=atol))

        return (
            np.allclose(self.root_pos, other.root_pos, atol=atol)
            and qclose(self.root_rot, other.root_rot)
            and qclose(self.joint_rots, other.joint_rots)
            and np.allclose(self.joint_angles, other.joint_angles, atol=atol)
        )

    # ------------------------------------------------------------- derived data
    def body_positions(self) -> np.ndarray:
        """(T, 15, 3) world positions of every body's link frame (forward kinematics)."""
        return forward_kinematics(self).positions

    def mirrored(self) -> "Motion":
        """Left–right mirror image (reflection through the humanoid's sagittal plane z = 0).

        A reflection M = diag(1, 1, -1) maps a rotation R to M R M, i.e. the quaternion
        (x, y, z, w) to (-x, -y, z, w); left and right joints swap. The skeleton is
        symmetric under this reflection, so mirroring twice is the identity."""
        flip = np.array([-1.0, -1.0, 1.0, 1.0])
        pos = self.root_pos * np.array([1.0, 1.0, -1.0])
        return self.replace(
            root_pos=pos,
            root_rot=self.root_rot * flip,
            joint_rots=self.joint_rots[:, list(SPHERICAL_MIRROR_PERM)] * flip,
            joint_angles=self.joint_angles[:, list(REVOLUTE_MIRROR_PERM)],
            name=f"{self.name}:mirrored" if self.name else None,
        )
