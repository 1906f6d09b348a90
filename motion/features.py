"""The learning feature representation of a motion window, and its exact inverse.

In the spirit of HumanML3D, but built on the simulation humanoid's own joints so that the
inverse needs no IK. Per frame (``FEATURE_DIM = 62``):

===========  =====  ===================================================================
slice        width  meaning
===========  =====  ===================================================================
0            1      root yaw velocity about +y (rad/s): heading change to the next frame
1:3          2      planar root velocity (m/s) in the heading frame (forward x, lateral z)
3            1      root height y (m)
4:10         6      root tilt (rotation with the heading removed), 6-D (Zhou et al.)
10:58        48     8 spherical joints, local rotations, 6-D each (SPHERICAL_JOINTS order)
58:62        4      revolute angles (knees, elbows) in radians (REVOLUTE_JOINTS order)
===========  =====  ===================================================================

Heading invariance: a clip rotated about +y and translated on the ground has the same
features. Velocities at frame t describe the step t → t+1; the last frame repeats the
previous step (so the map is exactly invertible on its image and idempotent otherwise).
The inverse integrates the velocities from a given start heading and ground position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion, MotionError
from sccl.motion.kinematics import forward_kinematics_matrices
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS

NUM_SPHERICAL = len(SPHERICAL_JOINTS)
NUM_REVOLUTE = len(REVOLUTE_JOINTS)
FEATURE_DIM = 1 + 2 + 1 + 6 + 6 * NUM_SPHERICAL + NUM_REVOLUTE

SLICES: dict[str, slice] = {
    "root_yaw_vel": slice(0, 1),
    "root_planar_vel": slice(1, 3),
    "root_height": slice(3, 4),
    "root_tilt_6d": slice(4, 10),
    "joint_rot_6d": slice(10, 10 + 6 * NUM_SPHERICAL),
    "joint_angles": slice(10 + 6 * NUM_SPHERICAL, FEATURE_DIM),
}


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def _step_to_frames(step: np.ndarray) -> np.ndarray:
    """(T-1, ...) per-transition values -> (T, ...) per frame, last frame repeating the previous."""
    if step.shape[0] == 0:
        return np.zeros((1,) + step.shape[1:])
    return np.concatenate([step, step[-1:]], axis=0)


def motion_to_features(motion: Motion) -> np.ndarray:
    """(T, FEATURE_DIM) float64 features of a clip."""
    fps = motion.fps
    heading = quat.heading_angle(motion.root_rot)  # (T,)
    yaw_vel = _step_to_frames(_wrap(np.diff(heading)) * fps)
    inv_yaw = quat.yaw(-heading)  # (T, 4)
    disp = np.diff(motion.root_pos, axis=0) * fps  # world velocity of each step
    disp[:, 1] = 0.0
    local_vel = quat.rotate(inv_yaw[:-1], disp) if len(disp) else disp
    planar = _step_to_frames(local_vel[:, [0, 2]])
    tilt = quat.multiply(inv_yaw, motion.root_rot)
    feats = np.concatenate(
        [
            yaw_vel[:, None],
            planar,
            motion.root_pos[:, 1:2],
            quat.matrix_to_6d(quat.to_matrix(tilt)),
            quat.matrix_to_6d(quat.to_matrix(motion.joint_rots)).reshape(motion.num_frames, -1),
            motion.joint_angles,
        ],
        axis=-1,
    )
    assert feats.shape[1] == FEATURE_DIM
    return feats


def features_to_motion(
    features: np.ndarray,
    fps: float,
    start_heading: float = 0.0,
    start_xz: tuple[float, float] = (0.0, 0.0),
    label: str | None = None,
    name: str | None = None,
) -> Motion:
    """Invert :func:`motion_to_features` given the start heading and ground position.

    Any array of the right shape gives a valid clip: 6-D blocks are projected onto rotations
    by Gram–Schmidt. Raises MotionError (through Motion) if the features are not finite."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != FEATURE_DIM:
        raise MotionError(f"{name or 'features'}: expected shape (T, {FEATURE_DIM}), got {f.shape}")
    t = f.shape[0]
    yaw_vel = f[:, SLICES["root_yaw_vel"]][:, 0]
    heading = start_heading + np.concatenate([[0.0], np.cumsum(yaw_vel[:-1]) / fps])
    planar = f[:, SLICES["root_planar_vel"]]
    local = np.stack([planar[:, 0], np.zeros(t), planar[:, 1]], axis=-1)
    world = quat.rotate(quat.yaw(heading), local) / fps
    root_pos = np.zeros((t, 3))
    root_pos[0, 0], root_pos[0, 2] = start_xz
    root_pos[1:, [0, 2]] = root_pos[0, [0, 2]] + np.cumsum(world[:-1, [0, 2]], axis=0)
    root_pos[:, 1] = f[:, SLICES["root_height"]][:, 0]
    tilt = quat.from_matrix(quat.sixd_to_matrix(f[:, SLICES["root_tilt_6d"]]))
    root_rot = quat.multiply(quat.yaw(heading), tilt)
    joint_rots = quat.from_matrix(quat.sixd_to_matrix(f[:, SLICES["joint_rot_6d"]].reshape(t, NUM_SPHERICAL, 6)))
    return Motion(
        fps, root_pos, quat.canonical(root_rot), joint_rots, f[:, SLICES["joint_angles"]], label=label, name=name
    )


# ----------------------------------------------------------------------------- torch
def sixd_to_matrix_torch(d6: Any) -> Any:
    """Torch version of :func:`motion.quaternion.sixd_to_matrix` (differentiable)."""
    import torch

    a1, a2 = d6[..., :3], d6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1, eps=1e-8)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def features_to_positions_torch(features: Any, fps: float) -> Any:
    """Differentiable world positions (..., T, 15, 3) of every body from features (..., T, 62).

    Start heading 0 and start ground position (0, 0), as :func:`features_to_motion`; used for
    the diffusion model's geometric losses."""
    import torch  # imported here: the motion layer must load without torch

    f = features
    yaw_vel = f[..., 0]
    zeros = torch.zeros_like(yaw_vel[..., :1])
    heading = torch.cat([zeros, torch.cumsum(yaw_vel[..., :-1], dim=-1) / fps], dim=-1)
    c, s = torch.cos(heading), torch.sin(heading)
    vx, vz = f[..., 1], f[..., 2]
    # R_y(heading) applied to (vx, 0, vz)
    wx = (c * vx + s * vz) / fps
    wz = (-s * vx + c * vz) / fps
    px = torch.cat([zeros, torch.cumsum(wx[..., :-1], dim=-1)], dim=-1)
    pz = torch.cat([zeros, torch.cumsum(wz[..., :-1], dim=-1)], dim=-1)
    root_pos = torch.stack([px, f[..., 3], pz], dim=-1)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    ry = torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)
    root_mat = ry @ sixd_to_matrix_torch(f[..., SLICES["root_tilt_6d"]])
    shape = f.shape[:-1] + (NUM_SPHERICAL, 6)
    joint_mats = sixd_to_matrix_torch(f[..., SLICES["joint_rot_6d"]].reshape(shape))
    kin = forward_kinematics_matrices(root_pos, root_mat, joint_mats, f[..., SLICES["joint_angles"]])
    return kin.positions
