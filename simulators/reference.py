"""Reference trajectories resampled at the physics rate, computed once per clip with numpy.

Per-step Python work (not the physics) dominates simulation cost, so everything the
tracking loop needs — interpolated poses, reference velocities, PD targets already laid out
as the nested lists PyBullet wants — is prepared here in a few vectorised operations; the
stepping loop only indexes into these lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion
from sccl.motion.kinematics import body_lowest_points, forward_kinematics
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton


@dataclass(frozen=True)
class Reference:
    """A clip sampled at times ``k * dt`` (k = 0..num_steps).

    Velocities are those of the piecewise (slerp / linear) interpolation, i.e. exact
    for the interpolated trajectory. Root angular velocity is in the world frame (what
    ``resetBaseVelocity`` takes); spherical joint velocities are in the joint's child frame
    (what PyBullet's multi-DoF joint states and stable PD use).
    """

    dt: float
    times: np.ndarray  # (N,)
    root_pos: np.ndarray  # (N, 3)
    root_rot: np.ndarray  # (N, 4)
    root_lin_vel: np.ndarray  # (N, 3) world
    root_ang_vel: np.ndarray  # (N, 3) world
    joint_rots: np.ndarray  # (N, 8, 4)
    joint_vels: np.ndarray  # (N, 8, 3) local
    joint_angles: np.ndarray  # (N, 4)
    joint_angle_vels: np.ndarray  # (N, 4)

    @property
    def num_samples(self) -> int:
        return int(self.times.shape[0])


def resample(motion: Motion, dt: float) -> Reference:
    """Interpolate `motion` at the physics time step `dt` (vectorised, no per-step Python)."""
    fps = motion.fps
    num = motion.num_frames
    n_samples = int(np.floor(motion.duration / dt + 1e-9)) + 1
    times = np.arange(n_samples) * dt
    if num == 1:
        i0 = np.zeros(n_samples, dtype=int)
        i1 = i0
        alpha = np.zeros(n_samples)
    else:
        f = times * fps
        i0 = np.clip(np.floor(f + 1e-9).astype(int), 0, num - 2)
        i1 = i0 + 1
        alpha = np.clip(f - i0, 0.0, 1.0)
    a = alpha[:, None]
    root_pos = (1.0 - a) * motion.root_pos[i0] + a * motion.root_pos[i1]
    root_rot = quat.slerp(motion.root_rot[i0], motion.root_rot[i1], alpha)
    joint_rots = quat.slerp(motion.joint_rots[i0], motion.joint_rots[i1], np.repeat(alpha[:, None], len(SPHERICAL_JOINTS), 1))
    joint_angles = (1.0 - a) * motion.joint_angles[i0] + a * motion.joint_angles[i1]
    if num == 1:
        zeros3 = np.zeros((n_samples, 3))
        return Reference(
            dt, times, root_pos, root_rot, zeros3, zeros3, joint_rots,
            np.zeros((n_samples, len(SPHERICAL_JOINTS), 3)), joint_angles, np.zeros((n_samples, len(REVOLUTE_JOINTS))),
        )
    frame_dt = 1.0 / fps
    seg_lin = np.diff(motion.root_pos, axis=0) * fps  # (T-1, 3)
    seg_root_w_local = quat.angular_velocity(motion.root_rot, frame_dt)[:-1]  # body frame, per segment
    seg_joint_w = np.moveaxis(quat.angular_velocity(np.moveaxis(motion.joint_rots, 1, 0), frame_dt), 0, 1)[:-1]
    seg_angle_v = np.diff(motion.joint_angles, axis=0) * fps
    return Reference(
        dt=dt,
        times=times,
        root_pos=root_pos,
        root_rot=root_rot,
        root_lin_vel=seg_lin[i0],
        root_ang_vel=quat.rotate(root_rot, seg_root_w_local[i0]),
        joint_rots=joint_rots,
        joint_vels=seg_joint_w[i0],
        joint_angles=joint_angles,
        joint_angle_vels=seg_angle_v[i0],
    )


def ground_offset(motion: Motion, mode: str = "min", percentile: float = 5.0) -> float:
    """Vertical shift that puts the clip on the ground plane y = 0.

    ``min``: the lowest collision point of the whole clip touches the ground (nothing
    penetrates; the robust choice for generated clips, whose feet may float or sink as a
    whole). ``percentile``: the given percentile of the per-frame lowest points touches it
    (ignores a few outlier frames). ``none``: 0.
    """
    if mode == "none":
        return 0.0
    lowest = body_lowest_points(forward_kinematics(motion)).min(axis=-1)  # (T,)
    if mode == "min":
        level = float(lowest.min())
    elif mode == "percentile":
        level = float(np.percentile(lowest, percentile))
    else:
        raise ValueError(f"ground_align must be 'min', 'percentile' or 'none', got {mode!r}")
    return -level


def ground_align(motion: Motion, mode: str = "min", percentile: float = 5.0) -> tuple[Motion, float]:
    """The clip shifted vertically by :func:`ground_offset`, and the shift (m)."""
    shift = ground_offset(motion, mode, percentile)
    if shift == 0.0:
        return motion, 0.0
    return motion.replace(root_pos=motion.root_pos + np.array([0.0, shift, 0.0])), shift


def total_mass() -> float:
    return load_skeleton().total_mass
